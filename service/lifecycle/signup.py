"""Signup that does not tell whether an address has an account (``IDP_SIGNUP_ENUMERATION_SAFE``).

Only what depends on the input alone is answered at once: the per-IP signup limit, the email's
syntax and the password policy. Then every request gets the same 202; afterwards, in the
background, a new address gets its account and verification link, and an address that already
has an account gets a mail telling its owner that someone tried to sign up with it. The
trade-off (see the README): no tokens at signup, the person signs in once the link is followed,
and a typo in the address is only noticed when no mail arrives.
"""

from __future__ import annotations

from collections.abc import Callable

from service.abuse import AbuseGuard
from service.accounts import Accounts
from service.audit import audit
from service.clock import Clock
from service.emails import normalize_email
from service.errors import EmailTaken
from service.lifecycle.links import Background
from service.lifecycle.verification import EmailVerification
from service.mail.templates import MailRenderer
from service.passwords import check_password_policy
from service.store.base import UserStore
from service.store.mail import AccountTokenStore

__all__ = ["QuietSignup"]


class QuietSignup:
    def __init__(
        self,
        *,
        accounts: Accounts,
        users: UserStore,
        tokens: AccountTokenStore,
        verification: EmailVerification,
        renderer: MailRenderer,
        guard: AbuseGuard,
        clock: Clock,
        background: Background,
        mail_queued: Callable[[], None],
    ) -> None:
        self._accounts = accounts
        self._users = users
        self._tokens = tokens
        self._verification = verification
        self._renderer = renderer
        self._guard = guard
        self._clock = clock
        self._background = background
        self._mail_queued = mail_queued

    async def request(self, email: str, password: str, name: str | None, ip: str) -> None:
        """Check the input, then accept; the caller answers 202 whatever happens next."""
        await self._guard.before_signup(ip)
        normalize_email(email)
        check_password_policy(password)
        self._background.spawn(self._finish(email, password, name))

    async def _finish(self, email: str, password: str, name: str | None) -> None:
        _, normalized = normalize_email(email)
        existing = await self._users.get_user_by_email(normalized)
        if existing is None:
            try:
                user = await self._accounts.create_user(
                    email, password, name, register=self._verification.register
                )
            except EmailTaken:  # created by a concurrent signup since the lookup
                existing = await self._users.get_user_by_email(normalized)
            else:
                audit("signup", user_id=user.id)
                return
        if existing is None:
            return
        notice = self._renderer.render(
            "signup_existing", to=existing.email, user_id=existing.id, now=self._clock()
        )
        await self._tokens.enqueue_with([notice])
        self._mail_queued()
        audit("signup", outcome="existing_account_notified", user_id=existing.id)
