"""Profile changes and account deletion (GDPR Art. 17).

Deletion disables the account first (no new sign-in can slip in), ends every session and
refresh family, then erases the account with its identities, link tokens and every outbox row
about it in one transaction. The audit event keeps the account id, never the address.
"""

from __future__ import annotations

from service.audit import audit
from service.clock import Clock
from service.errors import InvalidCredentials, NotFound
from service.passwords import Match, PasswordService
from service.sessions import Sessions
from service.store.base import User, UserStore
from service.store.mail import AccountTokenStore

__all__ = ["Profiles"]

MAX_NAME_LENGTH = 200


class Profiles:
    def __init__(
        self,
        *,
        users: UserStore,
        tokens: AccountTokenStore,
        passwords: PasswordService,
        sessions: Sessions,
        clock: Clock,
    ) -> None:
        self._users = users
        self._tokens = tokens
        self._passwords = passwords
        self._sessions = sessions
        self._clock = clock

    async def rename(self, user: User, name: str | None) -> User:
        """Set the display name (trimmed; empty clears it)."""
        cleaned = " ".join((name or "").split())[:MAX_NAME_LENGTH] or None
        updated = await self._users.set_name(user.id, cleaned, self._clock())
        if updated is None:
            raise NotFound("No such account.")
        audit("profile_updated", user_id=user.id)
        return updated

    async def delete_own(self, user: User, password: str) -> None:
        """The account's owner deletes it, proving it with the current password."""
        stored = user.password_hash
        if stored is None or await self._passwords.verify(stored, password) is Match.NONE:
            audit("account_deleted", outcome="wrong_password", user_id=user.id)
            raise InvalidCredentials("The current password is incorrect.")
        await self.delete(user, by="self")

    async def delete(self, user: User, *, by: str) -> None:
        await self._users.set_disabled(user.id, True, self._clock())
        ended = await self._sessions.end_all(user.id, "sessions_ended")  # audited there
        if not await self._tokens.erase_account(user.id):
            raise NotFound("No such account.")
        audit("account_deleted", user_id=user.id, by=by, sessions_ended=ended)
