"""The production backend for accounts: PostgreSQL through an asyncpg pool."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

from service.errors import ClientExists, EmailTaken
from service.store.base import NewUser, StorageUnavailable, User
from service.store.migrations import load_migrations
from service.store.sessions import Client

__all__ = ["PostgresClientStore", "PostgresDatabase"]

# pg_advisory_xact_lock key: "idp migrations" as a stable 64-bit number.
MIGRATION_LOCK_KEY = 0x1D9_317A_7105
_INSERT_COLUMNS = "id, email, email_normalized, password_hash, name, roles, disabled, created_at, updated_at"
_USER_COLUMNS = _INSERT_COLUMNS + ", email_verified"
# The server cannot serve the request now, whatever the statement: unreachable, the session cut,
# or (class 57, operator intervention) restarting: 57P03 "the database system is starting up /
# shutting down", 57P01 admin shutdown. asyncpg may also report a session the server terminated
# as InternalClientError "cannot switch to state …; another operation (2) is in progress"
# (MagicStack/asyncpg#784, #1069); its pool then terminates that connection on release.
_UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.OperatorInterventionError,
    asyncpg.InternalClientError,
)


_INSERT_USER = (
    f"INSERT INTO users ({_INSERT_COLUMNS}) "
    f"VALUES ($1, $2, $3, $4, $5, $6, false, $7, $7) RETURNING {_USER_COLUMNS}"
)
_IDENTITY_USER = (
    "SELECT " + ", ".join(f"u.{name.strip()}" for name in _USER_COLUMNS.split(",")) + " FROM identities i "
    "JOIN users u ON u.id = i.user_id WHERE i.issuer = $1 AND i.subject = $2"
)


def _user_values(user: NewUser) -> tuple[object, ...]:
    return (
        user.id,
        user.email,
        user.email_normalized,
        user.password_hash,
        user.name,
        list(user.roles),
        _ts(user.created_at),
    )


def _ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


def _user(row: asyncpg.Record | None) -> User | None:
    if row is None:
        return None
    return User(
        id=row["id"],
        email=row["email"],
        email_normalized=row["email_normalized"],
        password_hash=row["password_hash"],
        name=row["name"],
        roles=tuple(row["roles"]),
        disabled=row["disabled"],
        email_verified=row["email_verified"],
        created_at=row["created_at"].timestamp(),
        updated_at=row["updated_at"].timestamp(),
    )


async def _keep_session(_: object) -> None:
    """Skip asyncpg's per-release ``RESET ALL; UNLISTEN *; …`` round trip: this service sets no
    session state, listens to nothing and only takes transaction-scoped advisory locks, while
    asyncpg still rolls back any open transaction itself."""


class PostgresDatabase:
    """:class:`service.store.base.Database` on PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record]) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, dsn: str, *, pool_size: int = 10) -> PostgresDatabase:
        try:
            pool = await asyncpg.create_pool(
                dsn, min_size=1, max_size=pool_size, command_timeout=10, reset=_keep_session
            )
        except _UNAVAILABLE as exc:
            raise StorageUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
        return cls(pool)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        try:
            return await self._pool.fetchrow(query, *args)
        except _UNAVAILABLE as exc:
            raise StorageUnavailable(str(exc)) from exc

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        try:
            return await self._pool.fetch(query, *args)
        except _UNAVAILABLE as exc:
            raise StorageUnavailable(str(exc)) from exc

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy[asyncpg.Record]]:
        """One connection in one transaction; outages become :class:`StorageUnavailable`."""
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                yield conn
        except _UNAVAILABLE as exc:
            raise StorageUnavailable(str(exc)) from exc

    async def migrate(self) -> list[str]:
        migrations = load_migrations("postgresql")
        async with self._pool.acquire() as conn, conn.transaction():
            # Serialises concurrent start-ups; released when the transaction ends.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
            applied = []
            for version, sql in migrations:
                if version in done:
                    continue
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
                applied.append(version)
            return applied

    async def ping(self) -> None:
        await self.fetchrow("SELECT 1")

    async def close(self) -> None:
        await self._pool.close()

    async def create_user(self, user: NewUser) -> User:
        try:
            row = await self.fetchrow(_INSERT_USER, *_user_values(user))
        except asyncpg.UniqueViolationError as exc:
            raise EmailTaken from exc
        created = _user(row)
        assert created is not None
        return created

    async def get_user(self, user_id: UUID) -> User | None:
        return _user(await self.fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE id = $1", user_id))

    async def get_user_by_email(self, email_normalized: str) -> User | None:
        return _user(
            await self.fetchrow(
                f"SELECT {_USER_COLUMNS} FROM users WHERE email_normalized = $1", email_normalized
            )
        )

    async def delete_user(self, user_id: UUID) -> bool:
        return await self.fetchrow("DELETE FROM users WHERE id = $1 RETURNING id", user_id) is not None

    async def user_for_identity(self, issuer: str, subject: str) -> User | None:
        return _user(await self.fetchrow(_IDENTITY_USER, issuer, subject))

    async def provision(self, issuer: str, subject: str, user: NewUser, *, link_existing: bool) -> User:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                # Serialise provisioning of one identity; released at commit.
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"{issuer} {subject}")
                linked = _user(await conn.fetchrow(_IDENTITY_USER, issuer, subject))
                if linked is not None:
                    return linked
                existing = _user(
                    await conn.fetchrow(
                        f"SELECT {_USER_COLUMNS} FROM users WHERE email_normalized = $1",
                        user.email_normalized,
                    )
                )
                if existing is not None and not link_existing:
                    raise EmailTaken
                target = existing or _user(await conn.fetchrow(_INSERT_USER, *_user_values(user)))
                assert target is not None
                await conn.execute(
                    "INSERT INTO identities (issuer, subject, user_id, created_at) VALUES ($1, $2, $3, $4)",
                    issuer,
                    subject,
                    target.id,
                    _ts(user.created_at),
                )
                return target
        except asyncpg.UniqueViolationError as exc:
            raise EmailTaken from exc
        except _UNAVAILABLE as exc:
            raise StorageUnavailable(str(exc)) from exc

    async def set_password_hash(self, user_id: UUID, password_hash: str, now: float) -> None:
        await self.fetchrow(
            "WITH voided AS (DELETE FROM account_tokens WHERE user_id = $1) "
            "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1",
            user_id,
            password_hash,
            _ts(now),
        )

    async def set_disabled(self, user_id: UUID, disabled: bool, now: float) -> User | None:
        return await self._update(user_id, "disabled", disabled, now)

    async def set_roles(self, user_id: UUID, roles: Sequence[str], now: float) -> User | None:
        return await self._update(user_id, "roles", list(roles), now)

    async def set_name(self, user_id: UUID, name: str | None, now: float) -> User | None:
        return await self._update(user_id, "name", name, now)

    async def _update(self, user_id: UUID, column: str, value: object, now: float) -> User | None:
        return _user(
            await self.fetchrow(
                f"UPDATE users SET {column} = $2, updated_at = $3 WHERE id = $1 RETURNING {_USER_COLUMNS}",
                user_id,
                value,
                _ts(now),
            )
        )


_CLIENT_COLUMNS = (
    "id, name, secret_hash, created_at, redirect_uris, post_logout_redirect_uris, grant_types, scopes, "
    "first_party, id_token_signed_response_alg, token_endpoint_auth_method, jwks, require_mfa"
)


def _client(row: asyncpg.Record | None) -> Client | None:
    if row is None:
        return None
    return Client(
        id=row["id"],
        name=row["name"],
        secret_hash=row["secret_hash"],
        created_at=row["created_at"].timestamp(),
        redirect_uris=tuple(row["redirect_uris"]),
        post_logout_redirect_uris=tuple(row["post_logout_redirect_uris"]),
        grant_types=tuple(row["grant_types"]),
        scopes=tuple(row["scopes"]),
        first_party=row["first_party"],
        id_token_signed_response_alg=row["id_token_signed_response_alg"],
        token_endpoint_auth_method=row["token_endpoint_auth_method"],
        jwks=row["jwks"],
        require_mfa=row["require_mfa"],
    )


class PostgresClientStore:
    """:class:`service.store.sessions.ClientStore` on PostgreSQL."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def create_client(self, client: Client) -> None:
        try:
            await self._db.fetchrow(
                f"INSERT INTO clients ({_CLIENT_COLUMNS}) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                client.id,
                client.name,
                client.secret_hash,
                _ts(client.created_at),
                list(client.redirect_uris),
                list(client.post_logout_redirect_uris),
                list(client.grant_types),
                list(client.scopes),
                client.first_party,
                client.id_token_signed_response_alg,
                client.token_endpoint_auth_method,
                client.jwks,
                client.require_mfa,
            )
        except asyncpg.UniqueViolationError as exc:
            raise ClientExists from exc

    async def get_client(self, client_id: str) -> Client | None:
        return _client(
            await self._db.fetchrow(f"SELECT {_CLIENT_COLUMNS} FROM clients WHERE id = $1", client_id)
        )

    async def list_clients(self) -> list[Client]:
        rows = await self._db.fetch(f"SELECT {_CLIENT_COLUMNS} FROM clients ORDER BY id")
        return [client for row in rows if (client := _client(row)) is not None]

    async def delete_client(self, client_id: str) -> bool:
        row = await self._db.fetchrow("DELETE FROM clients WHERE id = $1 RETURNING id", client_id)
        return row is not None

    async def set_client_secret(self, client_id: str, secret_hash: str) -> bool:
        row = await self._db.fetchrow(
            "UPDATE clients SET secret_hash = $2 WHERE id = $1 AND secret_hash IS NOT NULL RETURNING id",
            client_id,
            secret_hash,
        )
        return row is not None
