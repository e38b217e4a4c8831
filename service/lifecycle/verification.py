"""Email verification: a link mailed at signup (written with the account in one transaction),
a resend that answers the same whether or not the address has an unverified account, and the
confirmation that marks the address verified — only the address the link was sent to.

``IDP_EMAIL_VERIFICATION=required`` refuses sign-in until then (after the password was right);
``optional`` lets the account in with ``email_verified`` false.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from service.abuse import RateLimited, account_key
from service.audit import audit
from service.clock import Clock
from service.emails import normalize_email
from service.errors import EmailNotVerified, InvalidEmail, InvalidLinkToken
from service.lifecycle.links import MAX_TOKEN_LENGTH, Background, hash_link_token, new_link_token
from service.limits import RateLimiter
from service.mail.settings import MailSettings
from service.mail.templates import MailRenderer
from service.store.base import NewUser, User, UserStore
from service.store.mail import AccountToken, AccountTokenStore, MarkVerified, NewMail

__all__ = ["VERIFY", "EmailVerification"]

VERIFY = "email_verification"
VERIFY_PATH = "/account/verify"


class EmailVerification:
    def __init__(
        self,
        *,
        users: UserStore,
        tokens: AccountTokenStore,
        renderer: MailRenderer,
        limiter: RateLimiter,
        settings: MailSettings,
        clock: Clock,
        background: Background,
        mail_queued: Callable[[], None],
    ) -> None:
        self._users = users
        self._tokens = tokens
        self._renderer = renderer
        self._limiter = limiter
        self._settings = settings
        self._clock = clock
        self._background = background
        self._mail_queued = mail_queued

    @property
    def required(self) -> bool:
        return self._settings.verification == "required"

    def _link(self, user_id: UUID, typed: str, normalized: str, now: float) -> tuple[AccountToken, NewMail]:
        token, token_hash = new_link_token()
        ttl = self._settings.verify_ttl
        mail = self._renderer.render(
            "verify_email",
            to=typed,
            user_id=user_id,
            now=now,
            link=self._renderer.link(VERIFY_PATH, token),
            lifetime_hours=max(1, ttl // 3600),
        )
        record = AccountToken(
            token_hash=token_hash,
            user_id=user_id,
            purpose=VERIFY,
            email=normalized,
            created_at=now,
            expires_at=now + ttl,
        )
        return record, mail

    async def register(self, new_user: NewUser) -> User:
        """Create the account together with its verification link and mail."""
        record, mail = self._link(new_user.id, new_user.email, new_user.email_normalized, self._clock())
        created = await self._tokens.register(new_user, record, [mail])
        self._mail_queued()
        audit("email_verification_requested", user_id=created.id, mail_id=mail.id)
        return created

    def check_sign_in(self, user: User) -> None:
        if self.required and not user.email_verified:
            audit("login", outcome="email_not_verified", user_id=user.id)
            raise EmailNotVerified

    async def resend(self, email: str, ip: str) -> None:
        """Accept a resend request; the caller answers 202 whatever happens next."""
        rule = self._settings.request_ip
        decision = await self._limiter.hit(f"verify|{ip}", rule, self._clock())
        if not decision.allowed:
            audit("rate_limited", outcome=rule.name, ip=ip)
            raise RateLimited(rule, decision)
        self._background.spawn(self._resend(email, ip))

    async def _resend(self, email: str, ip: str) -> None:
        try:
            _, normalized = normalize_email(email)
        except InvalidEmail:
            return
        now = self._clock()
        if not (
            await self._limiter.hit(f"mail|{account_key(normalized)}", self._settings.mail_account, now)
        ).allowed:
            audit("email_verification_requested", outcome="rate_limited", ip=ip)
            return
        user = await self._users.get_user_by_email(normalized)
        if user is None or user.disabled or user.email_verified:
            audit("email_verification_requested", outcome="nothing_to_send", ip=ip)
            return
        record, mail = self._link(user.id, user.email, normalized, now)
        await self._tokens.issue_token(record, [mail])
        self._mail_queued()
        audit("email_verification_requested", user_id=user.id, ip=ip, mail_id=mail.id)

    async def is_valid(self, token: str) -> bool:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return False
        return await self._tokens.find_token(hash_link_token(token), VERIFY, self._clock()) is not None

    async def confirm(self, token: str) -> User:
        """Mark the address the link was sent to as verified (once)."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidLinkToken
        token_hash, now = hash_link_token(token), self._clock()
        found = await self._tokens.find_token(token_hash, VERIFY, now)
        if found is None:
            audit("email_verified", outcome="invalid_link")
            raise InvalidLinkToken
        verified = await self._tokens.redeem_token(token_hash, VERIFY, now, MarkVerified(found.email), [])
        if verified is None:
            audit("email_verified", outcome="invalid_link", user_id=found.user_id)
            raise InvalidLinkToken
        audit("email_verified", user_id=verified.id)
        return verified
