"""The storage Protocols and the records they exchange.

Backends translate their own exceptions into the domain errors here exactly once; nothing
above this layer sees asyncpg or sqlite3.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable
from uuid import UUID

import msgspec

__all__ = ["NewUser", "StorageUnavailable", "User", "UserStore"]


class StorageUnavailable(Exception):
    """The backing store cannot be reached; callers answer 503."""


class NewUser(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    email: str
    email_normalized: str
    password_hash: str | None
    name: str | None
    roles: tuple[str, ...] = ()
    created_at: float


class User(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    email: str
    email_normalized: str
    password_hash: str | None
    name: str | None
    roles: tuple[str, ...]
    disabled: bool
    created_at: float
    updated_at: float
    email_verified: bool = False


class UserStore(Protocol):
    """Accounts. Emails are looked up by their normalised key."""

    async def create_user(self, user: NewUser) -> User:
        """Insert; raise :class:`service.errors.EmailTaken` if the normalised email exists."""
        ...

    async def get_user(self, user_id: UUID) -> User | None: ...

    async def get_user_by_email(self, email_normalized: str) -> User | None: ...

    async def delete_user(self, user_id: UUID) -> bool:
        """Remove an account (used to undo a signup whose session could not start)."""
        ...

    async def set_password_hash(self, user_id: UUID, password_hash: str, now: float) -> None:
        """Store a new hash; the account's mailed link tokens die with the old password."""
        ...

    async def set_disabled(self, user_id: UUID, disabled: bool, now: float) -> User | None: ...

    async def set_roles(self, user_id: UUID, roles: Sequence[str], now: float) -> User | None: ...

    async def set_name(self, user_id: UUID, name: str | None, now: float) -> User | None: ...


@runtime_checkable
class Database(UserStore, Protocol):
    """A backend: accounts, external identities (see :mod:`service.store.exchange`), lifecycle."""

    async def user_for_identity(self, issuer: str, subject: str) -> User | None: ...

    async def provision(self, issuer: str, subject: str, user: NewUser, *, link_existing: bool) -> User: ...

    async def migrate(self) -> list[str]:
        """Apply pending migrations; return the versions applied now."""
        ...

    async def ping(self) -> None:
        """Raise :class:`StorageUnavailable` unless a trivial query succeeds."""
        ...

    async def close(self) -> None: ...
