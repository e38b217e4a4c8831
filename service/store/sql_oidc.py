"""Authorization codes and consents on PostgreSQL and SQLite (:mod:`service.store.oidc`)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from uuid import UUID

from service.store.oidc import Redemption
from service.store.postgres import PostgresDatabase
from service.store.sqlite import SqliteDatabase, transaction

__all__ = ["PostgresOidcStore", "SqliteOidcStore"]


class PostgresOidcStore:
    """:class:`~service.store.oidc.CodeStore` and :class:`~service.store.oidc.ConsentStore`."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def save_code(self, code_hash: str, record: bytes, *, expires_at: float, purge_at: float) -> None:
        # One statement (its own transaction): the purge rides along as a data-modifying CTE,
        # one round trip instead of BEGIN, DELETE, INSERT, COMMIT.
        await self._db.fetchrow(
            "WITH purged AS (DELETE FROM authorization_codes WHERE purge_at < $5) "
            "INSERT INTO authorization_codes (code_hash, record, expires_at, purge_at) "
            "VALUES ($1, $2, $3, $4)",
            code_hash,
            record,
            expires_at,
            purge_at,
            expires_at - 60,
        )

    async def redeem_code(self, code_hash: str, family_id: str) -> Redemption | None:
        # The first redemption is one statement: only an unused code is marked, so of racing
        # redemptions exactly one gets a row (the others wait on its row lock, then see the
        # code used). Anyone else reads the family the winner recorded, which never changes.
        row = await self._db.fetchrow(
            "UPDATE authorization_codes SET used_family = $2 "
            "WHERE code_hash = $1 AND used_family IS NULL RETURNING record",
            code_hash,
            family_id,
        )
        if row is not None:
            return Redemption(bytes(row["record"]), None)
        row = await self._db.fetchrow(
            "SELECT record, used_family FROM authorization_codes WHERE code_hash = $1", code_hash
        )
        return None if row is None else Redemption(bytes(row["record"]), row["used_family"])

    async def granted_scopes(self, user_id: UUID, client_id: str) -> frozenset[str]:
        row = await self._db.fetchrow(
            "SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2", user_id, client_id
        )
        return frozenset(row["scopes"]) if row else frozenset()

    async def grant_scopes(self, user_id: UUID, client_id: str, scopes: frozenset[str], now: float) -> None:
        await self._db.fetchrow(
            "INSERT INTO consents (user_id, client_id, scopes, granted_at) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (user_id, client_id) DO UPDATE SET granted_at = EXCLUDED.granted_at, "
            "scopes = ARRAY(SELECT DISTINCT unnest(consents.scopes || EXCLUDED.scopes) ORDER BY 1)",
            user_id,
            client_id,
            sorted(scopes),
            datetime.fromtimestamp(now, tz=UTC),
        )

    async def revoke_consent(self, user_id: UUID, client_id: str) -> None:
        await self._db.fetchrow(
            "DELETE FROM consents WHERE user_id = $1 AND client_id = $2", user_id, client_id
        )


class SqliteOidcStore:
    """The same on the embedded SQLite file; each operation is one transaction."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def save_code(self, code_hash: str, record: bytes, *, expires_at: float, purge_at: float) -> None:
        def save(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute("DELETE FROM authorization_codes WHERE purge_at < ?", (expires_at - 60,))
                conn.execute(
                    "INSERT INTO authorization_codes (code_hash, record, expires_at, purge_at) "
                    "VALUES (?, ?, ?, ?)",
                    (code_hash, record, expires_at, purge_at),
                )

        await self._db.run(save)

    async def redeem_code(self, code_hash: str, family_id: str) -> Redemption | None:
        def redeem(conn: sqlite3.Connection) -> Redemption | None:
            with transaction(conn):
                row = conn.execute(
                    "SELECT record, used_family FROM authorization_codes WHERE code_hash = ?", (code_hash,)
                ).fetchone()
                if row is None:
                    return None
                if row["used_family"] is None:
                    conn.execute(
                        "UPDATE authorization_codes SET used_family = ? WHERE code_hash = ?",
                        (family_id, code_hash),
                    )
                return Redemption(bytes(row["record"]), row["used_family"])

        return await self._db.run(redeem)

    async def granted_scopes(self, user_id: UUID, client_id: str) -> frozenset[str]:
        row = await self._db.run(
            lambda conn: conn.execute(
                "SELECT scopes FROM consents WHERE user_id = ? AND client_id = ?", (str(user_id), client_id)
            ).fetchone()
        )
        return frozenset(json.loads(row["scopes"])) if row else frozenset()

    async def grant_scopes(self, user_id: UUID, client_id: str, scopes: frozenset[str], now: float) -> None:
        def grant(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                row = conn.execute(
                    "SELECT scopes FROM consents WHERE user_id = ? AND client_id = ?",
                    (str(user_id), client_id),
                ).fetchone()
                merged = sorted(set(json.loads(row["scopes"]) if row else []) | scopes)
                conn.execute(
                    "INSERT INTO consents (user_id, client_id, scopes, granted_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, "
                    "granted_at = excluded.granted_at",
                    (str(user_id), client_id, json.dumps(merged), now),
                )

        await self._db.run(grant)

    async def revoke_consent(self, user_id: UUID, client_id: str) -> None:
        await self._db.run(
            lambda conn: conn.execute(
                "DELETE FROM consents WHERE user_id = ? AND client_id = ?", (str(user_id), client_id)
            )
        )
