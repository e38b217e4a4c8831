"""The admin stores on SQLite: account listing by keyset, erasure, audit events."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from uuid import UUID

from service.store.admin import AuditEvent, AuditQuery, StoredAuditEvent, UserQuery, like_prefix
from service.store.base import User
from service.store.sqlite import _USER_COLUMNS as USER_COLUMNS
from service.store.sqlite import SqliteDatabase, transaction
from service.store.sqlite import _user as row_user

__all__ = ["SqliteAdminStore"]

_AUDIT_COLUMNS = "id, at, event, outcome, user_id, client_id, scope, request_id, details"


def _event(row: sqlite3.Row) -> StoredAuditEvent:
    return StoredAuditEvent(
        id=row["id"],
        at=row["at"],
        event=row["event"],
        outcome=row["outcome"],
        user_id=UUID(row["user_id"]) if row["user_id"] else None,
        client_id=row["client_id"],
        scope=row["scope"],
        request_id=row["request_id"],
        details=json.loads(row["details"]),
    )


class SqliteAdminStore:
    """:class:`~service.store.admin.UserDirectory` and :class:`~service.store.admin.AuditStore`."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def list_users(self, query: UserQuery) -> list[User]:
        where: list[str] = []
        values: list[object] = []
        if query.email_prefix:
            where.append("email_normalized LIKE ? ESCAPE '\\'")
            values.append(like_prefix(query.email_prefix))
        if query.created_from is not None:
            where.append("created_at >= ?")
            values.append(query.created_from)
        if query.created_until is not None:
            where.append("created_at < ?")
            values.append(query.created_until)
        if query.after is not None:
            where.append("(created_at, id) > (?, ?)")
            values.extend((query.after[0], str(query.after[1])))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = f"SELECT {USER_COLUMNS} FROM users {clause} ORDER BY created_at, id LIMIT ?"
        rows = await self._db.run(lambda conn: conn.execute(sql, (*values, query.limit)).fetchall())
        return [user for user in map(row_user, rows) if user is not None]

    async def append_events(self, events: Sequence[AuditEvent]) -> None:
        rows = [
            (
                event.at,
                event.event,
                event.outcome,
                str(event.user_id) if event.user_id else None,
                event.client_id,
                event.scope,
                event.request_id,
                json.dumps(event.details),
            )
            for event in events
        ]

        def append(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.executemany(
                    "INSERT INTO audit_events (at, event, outcome, user_id, client_id, scope, request_id, "
                    "details) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )

        if rows:
            await self._db.run(append)

    async def query_events(self, query: AuditQuery) -> list[StoredAuditEvent]:
        where: list[str] = []
        values: list[object] = []
        for column, value in (("user_id", query.user_id), ("event", query.event)):
            if value is not None:
                where.append(f"{column} = ?")
                values.append(str(value))
        if query.since is not None:
            where.append("at >= ?")
            values.append(query.since)
        if query.until is not None:
            where.append("at < ?")
            values.append(query.until)
        if query.before_id is not None:
            where.append("id < ?")
            values.append(query.before_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = f"SELECT {_AUDIT_COLUMNS} FROM audit_events {clause} ORDER BY id DESC LIMIT ?"
        rows = await self._db.run(lambda conn: conn.execute(sql, (*values, query.limit)).fetchall())
        return [_event(row) for row in rows]

    async def prune_events(self, before: float) -> int:
        cursor = await self._db.run(
            lambda conn: conn.execute("DELETE FROM audit_events WHERE at < ?", (before,))
        )
        return cursor.rowcount
