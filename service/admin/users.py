"""Account administration shared by the admin API and the ``idp users`` commands.

Every change is audited with its actor (``client:<id>`` for the API, ``cli`` for the command
line) and the account id, never the email. Listing pages with an opaque keyset cursor
(``(created_at, id)`` of the last row), so paging stays exact while accounts are created.
"""

from __future__ import annotations

import base64
import binascii
import unicodedata
import uuid
from collections.abc import Callable, Sequence

import msgspec

from service.accounts import Accounts
from service.admin.access import AdminCaller
from service.audit import audit
from service.clock import Clock
from service.emails import normalize_email
from service.errors import EmailTaken, InvalidEmail, InvalidRequest, NotFound
from service.lifecycle.links import new_link_token
from service.lifecycle.profile import Profiles
from service.lifecycle.recovery import RESET, RESET_PATH
from service.mail.templates import MailRenderer
from service.mfa.service import Mfa
from service.sessions import Sessions
from service.store.admin import UserDirectory, UserQuery
from service.store.base import NewUser, StorageUnavailable, User, UserStore
from service.store.mail import AccountToken, AccountTokenStore
from service.store.mfa import FactorSummary
from service.store.sessions import Family

__all__ = ["INVITATION", "UserAdmin", "UserPage"]

MAX_PAGE = 200
INVITATION = "invitation"
"""The mail kind; its link is a password-reset link (the reset page sets the first password)."""


class UserPage(msgspec.Struct, frozen=True):
    users: list[User]
    next_cursor: str | None


def encode_cursor(user: User) -> str:
    raw = msgspec.json.encode([user.created_at, str(user.id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, user_id = msgspec.json.decode(raw, type=tuple[float, str])
        return created_at, uuid.UUID(user_id)
    except (binascii.Error, ValueError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidRequest("cursor: not a cursor returned by this API.") from exc


def email_prefix_key(prefix: str) -> str:
    """A prefix in the form of normalised emails (NFKC, case-folded); IDN domains are stored in
    punycode, so a prefix reaching into one must be typed that way."""
    return unicodedata.normalize("NFKC", prefix.strip()).casefold()


def check_roles(roles: Sequence[str]) -> list[str]:
    cleaned = sorted({role.strip() for role in roles if role.strip()})
    if len(cleaned) > 32 or any(len(role) > 64 or not role.isprintable() for role in cleaned):
        raise InvalidRequest("roles: at most 32 printable names of at most 64 characters.")
    return cleaned


class UserAdmin:
    def __init__(
        self,
        *,
        accounts: Accounts,
        users: UserStore,
        directory: UserDirectory,
        sessions: Sessions,
        tokens: AccountTokenStore,
        renderer: MailRenderer,
        invite_ttl: int,
        mfa: Mfa,
        profiles: Profiles,
        mail_queued: Callable[[], None],
        clock: Clock,
    ) -> None:
        self._accounts = accounts
        self._users = users
        self._directory = directory
        self._sessions = sessions
        self._tokens = tokens
        self._renderer = renderer
        self._invite_ttl = invite_ttl
        self._mfa = mfa
        self._profiles = profiles
        self._mail_queued = mail_queued
        self._clock = clock

    async def search(
        self,
        *,
        email_prefix: str | None = None,
        created_from: float | None = None,
        created_until: float | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> UserPage:
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(f"limit: between 1 and {MAX_PAGE}.")
        query = UserQuery(
            email_prefix=email_prefix_key(email_prefix) if email_prefix else None,
            created_from=created_from,
            created_until=created_until,
            after=decode_cursor(cursor) if cursor else None,
            limit=limit + 1,
        )
        found = await self._directory.list_users(query)
        page = found[:limit]
        return UserPage(page, encode_cursor(page[-1]) if len(found) > limit else None)

    async def get(self, ref: str | uuid.UUID) -> User:
        """By id, or (the CLI) by email address."""
        user: User | None
        if isinstance(ref, uuid.UUID):
            user = await self._users.get_user(ref)
        elif "@" in ref:
            try:
                user = await self._users.get_user_by_email(normalize_email(ref)[1])
            except InvalidEmail:
                user = None
        else:
            try:
                user = await self._users.get_user(uuid.UUID(ref))
            except ValueError:
                user = None
        if user is None:
            raise NotFound("No such account.")
        return user

    async def create(
        self, caller: AdminCaller, email: str, *, password: str | None, name: str | None, roles: Sequence[str]
    ) -> User:
        """With a password: a ready account. Without: an invitation, a set-password link mailed
        through the outbox (the account, its link and its mail are undone together on failure)."""
        roles = check_roles(roles)
        if password is not None:
            user = await self._accounts.create_user(email, password, name, roles)
            audit("user_created", user_id=user.id, actor=caller.actor)
            return user
        typed, normalized = normalize_email(email)
        if await self._users.get_user_by_email(normalized) is not None:
            raise EmailTaken
        now = self._clock()
        user = await self._users.create_user(
            NewUser(
                id=uuid.uuid4(),
                email=typed,
                email_normalized=normalized,
                password_hash=None,
                name=(name or "").strip() or None,
                roles=tuple(roles),
                created_at=now,
            )
        )
        try:
            await self._send_invitation(user, now)
        except StorageUnavailable:
            await self._users.delete_user(user.id)
            raise
        audit("user_invited", user_id=user.id, actor=caller.actor)
        return user

    async def _send_invitation(self, user: User, now: float) -> None:
        token, token_hash = new_link_token()
        mail = self._renderer.render(
            INVITATION,
            to=user.email,
            user_id=user.id,
            now=now,
            link=self._renderer.link(RESET_PATH, token),
            lifetime_days=max(1, self._invite_ttl // 86400),
        )
        record = AccountToken(
            token_hash=token_hash,
            user_id=user.id,
            purpose=RESET,
            email=user.email_normalized,
            created_at=now,
            expires_at=now + self._invite_ttl,
        )
        await self._tokens.issue_token(record, [mail])
        self._mail_queued()

    async def set_disabled(self, caller: AdminCaller, ref: str | uuid.UUID, disabled: bool) -> User:
        user = await self._accounts.set_user_disabled(await self.get(ref), disabled)
        audit("user_disabled" if disabled else "user_enabled", user_id=user.id, actor=caller.actor)
        return user

    async def set_roles(self, caller: AdminCaller, ref: str | uuid.UUID, roles: Sequence[str]) -> User:
        user = await self._accounts.set_user_roles(await self.get(ref), check_roles(roles))
        audit("user_roles_set", user_id=user.id, actor=caller.actor, roles=",".join(user.roles))
        return user

    async def delete(self, caller: AdminCaller, ref: str | uuid.UUID) -> None:
        """The account deletion its owner can do (``DELETE /v1/me``): disabled, every session
        ended, the account, its identities, link tokens and mail erased; the audit event
        ``account_deleted`` keeps the id and ``by`` = the actor, never the email."""
        await self._profiles.delete(await self.get(ref), by=caller.actor)

    async def reset_mfa(self, caller: AdminCaller, ref: str | uuid.UUID) -> FactorSummary:
        """Remove every second factor and recovery code (the owner is told by mail); return
        what the account had."""
        return await self._mfa.reset(await self.get(ref), caller.actor)

    async def sessions(self, ref: str | uuid.UUID) -> list[Family]:
        return await self._sessions.list((await self.get(ref)).id)

    async def end_session(self, caller: AdminCaller, ref: str | uuid.UUID, session_id: str) -> None:
        user = await self.get(ref)
        await self._sessions.end(user.id, session_id, "session_ended_by_admin")
        audit("admin_session_end", user_id=user.id, actor=caller.actor, sid=session_id)

    async def end_sessions(self, caller: AdminCaller, ref: str | uuid.UUID) -> int:
        user = await self.get(ref)
        ended = await self._sessions.end_all(user.id, "sessions_ended_by_admin")
        audit("admin_sessions_end", user_id=user.id, actor=caller.actor, sessions=ended)
        return ended
