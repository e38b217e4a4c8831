"""Storage Protocols behind the admin operations: listing accounts with a keyset, and the
audit events kept in the database. (Erasing an account is the lifecycle's
:meth:`service.store.mail.AccountTokenStore.erase_account`, shared with self-deletion.)

Listing is ordered by ``(created_at, id)`` and resumes *after* the last row seen, never at an
offset: a row inserted while someone pages lands after the rows that existed when paging
started (its ``created_at`` is now), so no existing row is skipped or returned twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable
from uuid import UUID

import msgspec

from service.store.base import User

__all__ = [
    "AdminStore",
    "AuditEvent",
    "AuditQuery",
    "AuditStore",
    "StoredAuditEvent",
    "UserDirectory",
    "UserQuery",
]


class UserQuery(msgspec.Struct, frozen=True, kw_only=True):
    email_prefix: str | None = None
    """Matched against the normalised email (``LIKE prefix%`` with ``%``/``_`` escaped)."""
    created_from: float | None = None
    """Inclusive."""
    created_until: float | None = None
    """Exclusive."""
    after: tuple[float, UUID] | None = None
    """The ``(created_at, id)`` of the last row of the previous page."""
    limit: int = 50


class AuditEvent(msgspec.Struct, frozen=True, kw_only=True):
    at: float
    event: str
    outcome: str
    user_id: UUID | None = None
    client_id: str | None = None
    scope: str | None = None
    request_id: str | None = None
    details: dict[str, str] = msgspec.field(default_factory=dict)


class StoredAuditEvent(AuditEvent, frozen=True, kw_only=True):
    id: int


class AuditQuery(msgspec.Struct, frozen=True, kw_only=True):
    user_id: UUID | None = None
    event: str | None = None
    since: float | None = None
    """Inclusive."""
    until: float | None = None
    """Exclusive."""
    before_id: int | None = None
    """Newest first: the id of the last event of the previous page."""
    limit: int = 100


@runtime_checkable
class UserDirectory(Protocol):
    async def list_users(self, query: UserQuery) -> list[User]:
        """Up to ``limit`` accounts after ``query.after`` in ``(created_at, id)`` order."""
        ...


@runtime_checkable
class AuditStore(Protocol):
    async def append_events(self, events: Sequence[AuditEvent]) -> None: ...

    async def query_events(self, query: AuditQuery) -> list[StoredAuditEvent]:
        """Newest first (by id)."""
        ...

    async def prune_events(self, before: float) -> int:
        """Delete events older than ``before``; return how many."""
        ...


@runtime_checkable
class AdminStore(UserDirectory, AuditStore, Protocol):
    """What one SQL backend provides for the admin operations."""


def like_prefix(prefix: str) -> str:
    """A ``LIKE … ESCAPE '\\'`` pattern matching strings that start with ``prefix``."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"
