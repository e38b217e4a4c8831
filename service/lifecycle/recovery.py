"""Password reset by mail.

``request`` answers the same way for every address: only the per-IP limit is decided before
the answer; looking the account up, rendering and storing the link happen afterwards in the
background, so neither status, body nor timing depends on whether the account exists. The
token (256 bits) is stored hashed with the mail in one transaction; ``confirm`` checks the new
password's policy, redeems the token together with the password change and the owner's notice
in one transaction, then ends every session of the account.
"""

from __future__ import annotations

from collections.abc import Callable

from service.abuse import RateLimited, account_key
from service.audit import audit
from service.clock import Clock
from service.emails import normalize_email
from service.errors import InvalidEmail, InvalidLinkToken
from service.lifecycle.links import MAX_TOKEN_LENGTH, Background, hash_link_token, new_link_token
from service.limits import RateLimiter
from service.mail.settings import MailSettings
from service.mail.templates import MailRenderer
from service.passwords import PasswordService, check_password_policy
from service.sessions import Sessions
from service.store.base import User, UserStore
from service.store.mail import AccountToken, AccountTokenStore, SetPassword

__all__ = ["RESET", "PasswordRecovery"]

RESET = "password_reset"
RESET_PATH = "/account/reset"


class PasswordRecovery:
    def __init__(
        self,
        *,
        users: UserStore,
        tokens: AccountTokenStore,
        passwords: PasswordService,
        sessions: Sessions,
        renderer: MailRenderer,
        limiter: RateLimiter,
        settings: MailSettings,
        clock: Clock,
        background: Background,
        mail_queued: Callable[[], None],
    ) -> None:
        self._users = users
        self._tokens = tokens
        self._passwords = passwords
        self._sessions = sessions
        self._renderer = renderer
        self._limiter = limiter
        self._settings = settings
        self._clock = clock
        self._background = background
        self._mail_queued = mail_queued

    async def request(self, email: str, ip: str) -> None:
        """Accept a reset request; the caller answers 202 whatever happens next."""
        rule = self._settings.request_ip
        decision = await self._limiter.hit(f"reset|{ip}", rule, self._clock())
        if not decision.allowed:
            audit("rate_limited", outcome=rule.name, ip=ip)
            raise RateLimited(rule, decision)
        self._background.spawn(self._send_link(email, ip))

    async def _send_link(self, email: str, ip: str) -> None:
        try:
            _, normalized = normalize_email(email)
        except InvalidEmail:
            audit("password_reset_requested", outcome="invalid_email", ip=ip)
            return
        rule, now = self._settings.mail_account, self._clock()
        if not (await self._limiter.hit(f"mail|{account_key(normalized)}", rule, now)).allowed:
            audit("password_reset_requested", outcome="rate_limited", ip=ip)
            return
        user = await self._users.get_user_by_email(normalized)
        token, token_hash = new_link_token()
        ttl = self._settings.reset_ttl
        # Rendered for unknown addresses too (and thrown away): the event loop does the same
        # work after the answer either way, so the next request's latency cannot tell them apart.
        mail = self._renderer.render(
            RESET,
            to=user.email if user else email,
            user_id=user.id if user else None,
            now=now,
            link=self._renderer.link(RESET_PATH, token),
            lifetime_minutes=ttl // 60,
        )
        if user is None or user.disabled:
            audit("password_reset_requested", outcome="unknown_account", ip=ip)
            return
        record = AccountToken(
            token_hash=token_hash,
            user_id=user.id,
            purpose=RESET,
            email=normalized,
            created_at=now,
            expires_at=now + ttl,
        )
        await self._tokens.issue_token(record, [mail])
        self._mail_queued()
        audit("password_reset_requested", user_id=user.id, ip=ip, mail_id=mail.id)

    async def is_valid(self, token: str) -> bool:
        """Whether a link is still good (the hosted page shows the form or says it expired)."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return False
        return await self._tokens.find_token(hash_link_token(token), RESET, self._clock()) is not None

    async def confirm(self, token: str, new_password: str) -> User:
        """Set the new password with the link; every session of the account ends."""
        cleaned = check_password_policy(new_password)
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidLinkToken
        token_hash, now = hash_link_token(token), self._clock()
        found = await self._tokens.find_token(token_hash, RESET, now)
        user = await self._users.get_user(found.user_id) if found is not None else None
        if found is None or user is None or user.disabled:
            audit("password_reset", outcome="invalid_link")
            raise InvalidLinkToken
        new_hash = await self._passwords.hash(cleaned)
        notice = self._renderer.render("password_changed", to=user.email, user_id=user.id, now=now)
        changed = await self._tokens.redeem_token(
            token_hash, RESET, self._clock(), SetPassword(new_hash), [notice]
        )
        if changed is None:  # used by a concurrent confirm, or expired meanwhile
            audit("password_reset", outcome="invalid_link", user_id=user.id)
            raise InvalidLinkToken
        self._mail_queued()
        await self._sessions.end_all(changed.id, "password_reset")  # the success audit event
        return changed
