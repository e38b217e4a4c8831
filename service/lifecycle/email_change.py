"""Changing the account's email address: a confirmation link to the new address, a notice to
the current one, and the change applied only when the link is followed. The unique index on
the normalised address decides a race between two accounts claiming one address: the later
confirmation gets ``email_taken`` and changes nothing."""

from __future__ import annotations

from collections.abc import Callable

from service.audit import audit
from service.clock import Clock
from service.emails import normalize_email
from service.errors import EmailTaken, InvalidCredentials, InvalidLinkToken, InvalidRequest
from service.lifecycle.links import MAX_TOKEN_LENGTH, hash_link_token, new_link_token
from service.mail.settings import MailSettings
from service.mail.templates import MailRenderer
from service.passwords import Match, PasswordService
from service.sessions import Sessions
from service.store.base import User, UserStore
from service.store.mail import AccountToken, AccountTokenStore, SetEmail

__all__ = ["CHANGE", "EmailChange"]

CHANGE = "email_change"
CHANGE_PATH = "/account/email"


class EmailChange:
    def __init__(
        self,
        *,
        users: UserStore,
        tokens: AccountTokenStore,
        passwords: PasswordService,
        sessions: Sessions,
        renderer: MailRenderer,
        settings: MailSettings,
        clock: Clock,
        mail_queued: Callable[[], None],
    ) -> None:
        self._users = users
        self._tokens = tokens
        self._passwords = passwords
        self._sessions = sessions
        self._renderer = renderer
        self._settings = settings
        self._clock = clock
        self._mail_queued = mail_queued

    async def request(self, user: User, new_email: str, password: str) -> None:
        """Mail the link to the new address and a notice to the current one (one transaction)."""
        typed, normalized = normalize_email(new_email)
        if normalized == user.email_normalized:
            raise InvalidRequest("This is already the account's address.")
        stored = user.password_hash
        if stored is None or await self._passwords.verify(stored, password) is Match.NONE:
            audit("email_change_requested", outcome="wrong_password", user_id=user.id)
            raise InvalidCredentials("The current password is incorrect.")
        token, token_hash = new_link_token()
        now, ttl = self._clock(), self._settings.verify_ttl
        link = self._renderer.render(
            "email_change",
            to=typed,
            user_id=user.id,
            now=now,
            link=self._renderer.link(CHANGE_PATH, token),
            lifetime_hours=max(1, ttl // 3600),
        )
        notice = self._renderer.render(
            "email_change_notice", to=user.email, user_id=user.id, now=now, new_email=typed
        )
        record = AccountToken(
            token_hash=token_hash,
            user_id=user.id,
            purpose=CHANGE,
            email=typed,
            created_at=now,
            expires_at=now + ttl,
        )
        await self._tokens.issue_token(record, [link, notice])
        self._mail_queued()
        audit("email_change_requested", user_id=user.id, mail_id=link.id)

    async def is_valid(self, token: str) -> bool:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return False
        return await self._tokens.find_token(hash_link_token(token), CHANGE, self._clock()) is not None

    async def confirm(self, token: str) -> User:
        """Apply the change (the new address counts as verified); every other link dies and the
        sessions' claims carry the new address from their next refresh."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidLinkToken
        token_hash, now = hash_link_token(token), self._clock()
        found = await self._tokens.find_token(token_hash, CHANGE, now)
        if found is None:
            audit("email_changed", outcome="invalid_link")
            raise InvalidLinkToken
        typed, normalized = normalize_email(found.email)
        try:
            changed = await self._tokens.redeem_token(
                token_hash, CHANGE, now, SetEmail(typed, normalized), []
            )
        except EmailTaken:
            audit("email_changed", outcome="email_taken", user_id=found.user_id)
            raise
        if changed is None:
            audit("email_changed", outcome="invalid_link", user_id=found.user_id)
            raise InvalidLinkToken
        await self._sessions.update_claims(changed)
        audit("email_changed", user_id=changed.id)
        return changed
