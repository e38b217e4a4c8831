"""The admin-store contract (account listing by keyset, erasure, audit events) on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from service.admin.audit_log import AuditRecorder
from service.audit import add_sink, audit, remove_sink
from service.clock import FrozenClock
from service.store.admin import AdminStore, AuditEvent, AuditQuery, UserQuery
from service.store.base import Database, NewUser, User
from service.store.postgres import PostgresDatabase
from service.store.postgres_admin import PostgresAdminStore
from service.store.sqlite import SqliteDatabase
from service.store.sqlite_admin import SqliteAdminStore

NOW = 1_800_000_000.123456


def admin_store(database: Database) -> AdminStore:
    if isinstance(database, PostgresDatabase):
        return PostgresAdminStore(database)
    assert isinstance(database, SqliteDatabase)
    return SqliteAdminStore(database)


async def add_user(database: Database, email: str, at: float) -> User:
    return await database.create_user(
        NewUser(
            id=uuid.uuid4(),
            email=email,
            email_normalized=email.lower(),
            password_hash=None,
            name=None,
            created_at=at,
        )
    )


async def test_keyset_pages_in_creation_order(database: Database) -> None:
    """Pages of 3 over 10 accounts (several sharing one created_at, to the microsecond) return
    each account once, in (created_at, id) order, the cursor built from the last row read back."""
    store = admin_store(database)
    created = [await add_user(database, f"u{i}@example.com", NOW + i // 3) for i in range(10)]
    seen: list[User] = []
    after = None
    while True:
        page = await store.list_users(UserQuery(after=after, limit=3))
        seen.extend(page)
        if len(page) < 3:
            break
        after = (page[-1].created_at, page[-1].id)
    expected = sorted(created, key=lambda user: (user.created_at, str(user.id)))
    assert [user.id for user in seen] == [user.id for user in expected]


def emails(users: list[User]) -> list[str]:
    return sorted(user.email for user in users)


async def test_prefix_and_range_filters(database: Database) -> None:
    """The prefix matches the start of the normalised email only (LIKE wildcards in it are
    literal); the creation range is [from, until)."""
    store = admin_store(database)
    await add_user(database, "ada@example.com", NOW)
    await add_user(database, "adam@example.com", NOW + 10)
    await add_user(database, "a_b@example.com", NOW + 20)
    await add_user(database, "bob@ada.example", NOW + 30)
    assert emails(await store.list_users(UserQuery(email_prefix="ada"))) == [
        "ada@example.com",
        "adam@example.com",
    ]
    assert emails(await store.list_users(UserQuery(email_prefix="a_"))) == ["a_b@example.com"]
    assert emails(await store.list_users(UserQuery(email_prefix="%"))) == []
    ranged = await store.list_users(UserQuery(created_from=NOW + 10, created_until=NOW + 30))
    assert emails(ranged) == ["a_b@example.com", "adam@example.com"]


async def test_audit_events_query_and_prune(database: Database) -> None:
    """Events read back newest first, filtered by user, event and [since, until), paged by id;
    pruning deletes only events older than the cut."""
    store = admin_store(database)
    ada, bob = uuid.uuid4(), uuid.uuid4()
    await store.append_events(
        [
            AuditEvent(
                at=NOW + i,
                event="login" if i % 2 else "logout",
                outcome="success",
                user_id=ada if i < 6 else bob,
                client_id="c",
                scope=None,
                request_id=f"r{i}",
                details={"ip": "127.0.0.1", "n": str(i)},
            )
            for i in range(10)
        ]
    )
    everything = await store.query_events(AuditQuery(limit=100))
    assert [event.details["n"] for event in everything] == [str(i) for i in reversed(range(10))]
    assert everything[0].at == pytest.approx(NOW + 9)
    by_ada = await store.query_events(AuditQuery(user_id=ada, event="login"))
    assert [event.details["n"] for event in by_ada] == ["5", "3", "1"]
    ranged = await store.query_events(AuditQuery(since=NOW + 2, until=NOW + 4))
    assert [event.details["n"] for event in ranged] == ["3", "2"]
    page = await store.query_events(AuditQuery(before_id=everything[4].id, limit=2))
    assert [event.details["n"] for event in page] == ["4", "3"]
    assert await store.prune_events(NOW + 3) == 3
    assert len(await store.query_events(AuditQuery())) == 7


async def test_audit_event_fields_round_trip_exactly(database: Database) -> None:
    """Every column, absent ones and awkward characters included, reads back as appended."""
    store = admin_store(database)
    user = uuid.uuid4()
    details = {"agent": 'Zoë "quoted" \\ back\tslash\n', "emoji": "🔑", "empty": ""}
    await store.append_events(
        [
            AuditEvent(
                at=NOW,
                event="refresh",
                outcome="grace_replay",
                user_id=user,
                client_id="ç",
                scope="openid email",
                request_id="r-1",
                details=details,
            ),
            AuditEvent(at=NOW + 1, event="e", outcome="success"),
        ]
    )
    bare, full = await store.query_events(AuditQuery(limit=10))
    assert (full.event, full.outcome, full.user_id, full.client_id, full.scope, full.request_id) == (
        "refresh",
        "grace_replay",
        user,
        "ç",
        "openid email",
        "r-1",
    )
    assert full.details == details
    assert (bare.user_id, bare.client_id, bare.scope, bare.request_id, bare.details) == (
        None,
        None,
        None,
        None,
        {},
    )


async def test_concurrent_appends_all_land(database: Database) -> None:
    """Batches appended at once from many tasks are all stored, each once."""
    store = admin_store(database)
    batches = [
        [AuditEvent(at=NOW, event="e", outcome="success", details={"k": f"{b}-{i}"}) for i in range(5)]
        for b in range(8)
    ]
    await asyncio.gather(*(store.append_events(batch) for batch in batches))
    stored = await store.query_events(AuditQuery(limit=100))
    assert sorted(event.details["k"] for event in stored) == sorted(
        f"{b}-{i}" for b in range(8) for i in range(5)
    )


async def test_recorder_stores_audit_lines_and_applies_the_retention(database: Database) -> None:
    """audit() lines reach the database through the recorder (ids in columns, other fields in
    details, a non-UUID user_id kept as a detail); prune() deletes what is older than
    IDP_AUDIT_RETENTION_DAYS and keeps the rest."""
    clock = FrozenClock(NOW)
    recorder = AuditRecorder(admin_store(database), clock, retention_days=30)
    add_sink(recorder.record)
    try:
        user = uuid.uuid4()
        audit("login", user_id=user, ip="127.0.0.1")
        clock.advance(31 * 86400)
        audit("admin_call", client_id="ops", scope="admin:users:read", operation="list_users")
        audit("odd", user_id="not-a-uuid")
    finally:
        remove_sink(recorder.record)
    assert await recorder.flush() == 3
    newest, middle, oldest = await recorder.query(AuditQuery())
    assert (oldest.event, oldest.user_id, oldest.details) == ("login", user, {"ip": "127.0.0.1"})
    assert (middle.client_id, middle.scope, middle.details) == (
        "ops",
        "admin:users:read",
        {"operation": "list_users"},
    )
    assert (newest.user_id, newest.details) == (None, {"user_id": "not-a-uuid"})
    assert await recorder.prune() == 1
    assert [event.event for event in await recorder.query(AuditQuery())] == ["odd", "admin_call"]
