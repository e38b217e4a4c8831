"""The embedded backend: one SQLite file, one connection on one dedicated thread.

Every operation is a plain function run on that thread, so each one is a transaction of its
own and operations never interleave inside this process; WAL mode and ``BEGIN IMMEDIATE`` keep
several processes (uvicorn workers) on the same file consistent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar
from uuid import UUID

from service.errors import EmailTaken
from service.store.base import NewUser, StorageUnavailable, User
from service.store.migrations import load_migrations

__all__ = ["SqliteDatabase", "transaction"]

T = TypeVar("T")
_INSERT_COLUMNS = "id, email, email_normalized, password_hash, name, roles, disabled, created_at, updated_at"
_USER_COLUMNS = _INSERT_COLUMNS + ", email_verified"


def _user(row: sqlite3.Row | None) -> User | None:
    if row is None:
        return None
    return User(
        id=UUID(row["id"]),
        email=row["email"],
        email_normalized=row["email_normalized"],
        password_hash=row["password_hash"],
        name=row["name"],
        roles=tuple(json.loads(row["roles"])),
        disabled=bool(row["disabled"]),
        email_verified=bool(row["email_verified"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _insert_user(conn: sqlite3.Connection, user: NewUser) -> User:
    row = conn.execute(
        f"INSERT INTO users ({_INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?) RETURNING {_USER_COLUMNS}",
        (
            str(user.id),
            user.email,
            user.email_normalized,
            user.password_hash,
            user.name,
            json.dumps(list(user.roles)),
            user.created_at,
            user.created_at,
        ),
    ).fetchone()
    created = _user(row)
    assert created is not None
    return created


def _identity_user(conn: sqlite3.Connection, issuer: str, subject: str) -> User | None:
    columns = ", ".join(f"u.{name.strip()}" for name in _USER_COLUMNS.split(","))
    row = conn.execute(
        f"SELECT {columns} FROM identities i JOIN users u ON u.id = i.user_id "
        "WHERE i.issuer = ? AND i.subject = ?",
        (issuer, subject),
    ).fetchone()
    return _user(row)


def _owner_only(path: Path) -> None:
    """Create the database file 0600 before SQLite opens it (SQLite gives its ``-wal`` and
    ``-shm`` files the database's mode), and tighten files an earlier version left 0644."""
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            if stat.S_IMODE(file.stat().st_mode) & 0o077:
                file.chmod(0o600)


class SqliteDatabase:
    """:class:`service.store.base.Database` on a local SQLite file."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: Path) -> SqliteDatabase:
        db = cls(path)
        await db.run(db._connect)
        return db

    def _connect(self, _: sqlite3.Connection | None = None) -> None:
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _owner_only(self._path)
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        self._conn = conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._conn is None:
                self._connect()
            assert self._conn is not None
            try:
                return fn(self._conn)
            except sqlite3.OperationalError as exc:
                raise StorageUnavailable(str(exc)) from exc

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def migrate(self) -> list[str]:
        migrations = load_migrations("sqlite")

        def apply(conn: sqlite3.Connection) -> list[str]:
            with transaction(conn):
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations "
                    "(version TEXT PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
                )
                done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
                applied = []
                for version, sql in migrations:
                    if version in done:
                        continue
                    for statement in _statements(sql):
                        conn.execute(statement)
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (?)", (version,))
                    applied.append(version)
                return applied

        return await self.run(apply)

    async def ping(self) -> None:
        await self.run(lambda conn: conn.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        def close(conn: sqlite3.Connection) -> None:
            conn.close()
            self._conn = None

        if self._conn is not None:
            await self.run(close)
        self._executor.shutdown(wait=True)

    async def create_user(self, user: NewUser) -> User:
        def insert(conn: sqlite3.Connection) -> User | None:
            try:
                return _insert_user(conn, user)
            except sqlite3.IntegrityError:
                return None

        created = await self.run(insert)
        if created is None:
            raise EmailTaken
        return created

    async def get_user(self, user_id: UUID) -> User | None:
        return await self.run(
            lambda conn: _user(
                conn.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?", (str(user_id),)).fetchone()
            )
        )

    async def get_user_by_email(self, email_normalized: str) -> User | None:
        return await self.run(
            lambda conn: _user(
                conn.execute(
                    f"SELECT {_USER_COLUMNS} FROM users WHERE email_normalized = ?",
                    (email_normalized,),
                ).fetchone()
            )
        )

    async def delete_user(self, user_id: UUID) -> bool:
        cursor = await self.run(lambda conn: conn.execute("DELETE FROM users WHERE id = ?", (str(user_id),)))
        return cursor.rowcount > 0

    async def user_for_identity(self, issuer: str, subject: str) -> User | None:
        return await self.run(lambda conn: _identity_user(conn, issuer, subject))

    async def provision(self, issuer: str, subject: str, user: NewUser, *, link_existing: bool) -> User:
        def provision(conn: sqlite3.Connection) -> User | None:
            with transaction(conn):
                linked = _identity_user(conn, issuer, subject)
                if linked is not None:
                    return linked
                existing = _user(
                    conn.execute(
                        f"SELECT {_USER_COLUMNS} FROM users WHERE email_normalized = ?",
                        (user.email_normalized,),
                    ).fetchone()
                )
                if existing is not None and not link_existing:
                    return None
                target = existing or _insert_user(conn, user)
                conn.execute(
                    "INSERT INTO identities (issuer, subject, user_id, created_at) VALUES (?, ?, ?, ?)",
                    (issuer, subject, str(target.id), user.created_at),
                )
                return target

        provisioned = await self.run(provision)
        if provisioned is None:
            raise EmailTaken
        return provisioned

    async def set_password_hash(self, user_id: UUID, password_hash: str, now: float) -> None:
        def update(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute(
                    "UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?",
                    (password_hash, now, str(user_id)),
                )
                conn.execute("DELETE FROM account_tokens WHERE user_id = ?", (str(user_id),))

        await self.run(update)

    async def set_disabled(self, user_id: UUID, disabled: bool, now: float) -> User | None:
        return await self._update(user_id, "disabled", int(disabled), now)

    async def set_roles(self, user_id: UUID, roles: Sequence[str], now: float) -> User | None:
        return await self._update(user_id, "roles", json.dumps(list(roles)), now)

    async def set_name(self, user_id: UUID, name: str | None, now: float) -> User | None:
        return await self._update(user_id, "name", name, now)

    async def _update(self, user_id: UUID, column: str, value: object, now: float) -> User | None:
        return await self.run(
            lambda conn: _user(
                conn.execute(
                    f"UPDATE users SET {column} = ?, updated_at = ? WHERE id = ? RETURNING {_USER_COLUMNS}",
                    (value, now, str(user_id)),
                ).fetchone()
            )
        )


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``: takes the write lock up front, so read-then-write
    sequences cannot interleave with another process; rolls back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _statements(sql: str) -> list[str]:
    """Split a migration file into statements (no semicolons inside our literals)."""
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [part.strip() for part in body.split(";") if part.strip()]
