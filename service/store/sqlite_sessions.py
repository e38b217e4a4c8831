"""Refresh families and clients on the embedded SQLite file.

Each operation is one function on the database's single thread inside ``BEGIN IMMEDIATE``, so
the rotation rules run as one transaction, like the Redis Lua script.
"""

from __future__ import annotations

import json
import sqlite3
from uuid import UUID

import msgspec

from service.errors import ClientExists
from service.store.sessions import AccountClaims, Client, Family, NewFamily, RotateResult
from service.store.sqlite import SqliteDatabase, transaction

__all__ = ["EMPTY_OLD_SEALED", "SqliteClientStore", "SqliteFamilyStore", "SqliteReplayCache"]

_FAMILY_COLUMNS = (
    "id, user_id, client_id, scope, origin, user_agent, created_at, last_used_at, "
    "absolute_expires_at, idle_ttl, claims, amr, auth_time"
)
_CLAIMS = msgspec.json.Decoder(AccountClaims)

EMPTY_OLD_SEALED = (
    "UPDATE refresh_used SET sealed = x'' WHERE family_id = ? AND rotated_at < ? AND length(sealed) > 0"
)
"""Sealed successors are asked for only within the grace window: a rotation empties the older
ones, so a long session keeps ~100 bytes per refresh, not ~1 KB. The partial index
``refresh_used_sealed`` (migration 0005) finds the few rows that still hold one."""


def _family(row: sqlite3.Row | None) -> Family | None:
    if row is None:
        return None
    return Family(
        id=row["id"],
        user_id=UUID(row["user_id"]),
        client_id=row["client_id"],
        scope=row["scope"],
        origin=row["origin"],
        user_agent=row["user_agent"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        absolute_expires_at=row["absolute_expires_at"],
        idle_ttl=row["idle_ttl"],
        claims=_CLAIMS.decode(row["claims"]),
        amr=tuple((row["amr"] or "").split()),
        auth_time=row["auth_time"],
    )


def _live(family: Family | None, now: float) -> Family | None:
    return family if family is not None and now < family.expires_at else None


def _select_family(conn: sqlite3.Connection, family_id: str) -> Family | None:
    row = conn.execute(
        f"SELECT {_FAMILY_COLUMNS} FROM refresh_families WHERE id = ?", (family_id,)
    ).fetchone()
    return _family(row)


def _delete_family(conn: sqlite3.Connection, family_id: str) -> Family | None:
    row = conn.execute(
        f"DELETE FROM refresh_families WHERE id = ? RETURNING {_FAMILY_COLUMNS}", (family_id,)
    ).fetchone()
    return _family(row)


class SqliteFamilyStore:
    """:class:`service.store.sessions.FamilyStore` on SQLite."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def create_family(self, family: NewFamily) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO refresh_families (id, user_id, client_id, scope, origin, user_agent, "
                "current_hash, created_at, last_used_at, absolute_expires_at, idle_ttl, claims, amr, "
                "auth_time) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    family.id,
                    str(family.user_id),
                    family.client_id,
                    family.scope,
                    family.origin,
                    family.user_agent,
                    family.token_hash,
                    family.created_at,
                    family.created_at,
                    family.absolute_expires_at,
                    family.idle_ttl,
                    msgspec.json.encode(family.claims).decode(),
                    " ".join(family.amr) or None,
                    family.auth_time,
                ),
            )

        await self._db.run(insert)

    async def get_family(self, family_id: str, now: float) -> Family | None:
        return _live(await self._db.run(lambda conn: _select_family(conn, family_id)), now)

    async def rotate(
        self,
        family_id: str,
        *,
        presented_hash: str,
        successor_hash: str,
        sealed_successor: bytes,
        now: float,
        grace: float,
    ) -> RotateResult:
        def rotate(conn: sqlite3.Connection) -> RotateResult:
            with transaction(conn):
                row = conn.execute(
                    "SELECT current_hash, last_used_at, absolute_expires_at, idle_ttl "
                    "FROM refresh_families WHERE id = ?",
                    (family_id,),
                ).fetchone()
                if row is None:
                    return RotateResult("invalid")
                if now >= min(row["absolute_expires_at"], row["last_used_at"] + row["idle_ttl"]):
                    _delete_family(conn, family_id)
                    return RotateResult("invalid")
                if row["current_hash"] == presented_hash:
                    conn.execute(EMPTY_OLD_SEALED, (family_id, now - grace))
                    conn.execute(
                        "INSERT INTO refresh_used (token_hash, family_id, rotated_at, sealed) "
                        "VALUES (?, ?, ?, ?)",
                        (presented_hash, family_id, now, sealed_successor),
                    )
                    conn.execute(
                        "UPDATE refresh_families SET current_hash = ?, last_used_at = ? WHERE id = ?",
                        (successor_hash, now, family_id),
                    )
                    return RotateResult("rotated")
                used = conn.execute(
                    "SELECT rotated_at, sealed FROM refresh_used WHERE token_hash = ? AND family_id = ?",
                    (presented_hash, family_id),
                ).fetchone()
                if used is None:
                    return RotateResult("invalid")
                if now - used["rotated_at"] <= grace:
                    # Empty when a rotation on a clock ahead of ours thought the window over.
                    sealed = bytes(used["sealed"])
                    return RotateResult("grace", sealed=sealed) if sealed else RotateResult("invalid")
                _delete_family(conn, family_id)
                return RotateResult("reuse")

        return await self._db.run(rotate)

    async def owns_token(
        self, family_id: str, token_hash: str, now: float, *, current_only: bool = False
    ) -> bool:
        def owns(conn: sqlite3.Connection) -> bool:
            family = _live(_select_family(conn, family_id), now)
            if family is None:
                return False
            current = conn.execute(
                "SELECT 1 FROM refresh_families WHERE id = ? AND current_hash = ?", (family_id, token_hash)
            ).fetchone()
            if current is not None or current_only:
                return current is not None
            used = conn.execute(
                "SELECT 1 FROM refresh_used WHERE family_id = ? AND token_hash = ?", (family_id, token_hash)
            ).fetchone()
            return used is not None

        return await self._db.run(owns)

    async def revoke_family(self, family_id: str) -> Family | None:
        return await self._db.run(lambda conn: _delete_family(conn, family_id))

    async def list_families(self, user_id: UUID, now: float) -> list[Family]:
        rows = await self._db.run(
            lambda conn: conn.execute(
                f"SELECT {_FAMILY_COLUMNS} FROM refresh_families WHERE user_id = ? ORDER BY created_at",
                (str(user_id),),
            ).fetchall()
        )
        return [family for row in rows if (family := _live(_family(row), now)) is not None]

    async def update_claims(self, user_id: UUID, claims: AccountClaims) -> int:
        encoded = msgspec.json.encode(claims).decode()
        cursor = await self._db.run(
            lambda conn: conn.execute(
                "UPDATE refresh_families SET claims = ? WHERE user_id = ?", (encoded, str(user_id))
            )
        )
        return int(cursor.rowcount)

    async def revoke_user_families(self, user_id: UUID, keep: str | None = None) -> list[Family]:
        def revoke(conn: sqlite3.Connection) -> list[Family]:
            rows = conn.execute(
                f"DELETE FROM refresh_families WHERE user_id = ? AND id IS NOT ? RETURNING {_FAMILY_COLUMNS}",
                (str(user_id), keep),
            ).fetchall()
            return [family for row in rows if (family := _family(row)) is not None]

        return await self._db.run(revoke)

    async def ping(self) -> None:
        await self._db.ping()

    async def close(self) -> None:
        """The database owns the connection; nothing to close here."""


_CLIENT_COLUMNS = (
    "id, name, secret_hash, created_at, redirect_uris, post_logout_redirect_uris, grant_types, scopes, "
    "first_party, id_token_signed_response_alg, token_endpoint_auth_method, jwks, require_mfa"
)


def _client(row: sqlite3.Row | None) -> Client | None:
    if row is None:
        return None
    return Client(
        id=row["id"],
        name=row["name"],
        secret_hash=row["secret_hash"],
        created_at=row["created_at"],
        redirect_uris=tuple(json.loads(row["redirect_uris"])),
        post_logout_redirect_uris=tuple(json.loads(row["post_logout_redirect_uris"])),
        grant_types=tuple(json.loads(row["grant_types"])),
        scopes=tuple(json.loads(row["scopes"])),
        first_party=bool(row["first_party"]),
        id_token_signed_response_alg=row["id_token_signed_response_alg"],
        token_endpoint_auth_method=row["token_endpoint_auth_method"],
        jwks=row["jwks"],
        require_mfa=bool(row["require_mfa"]),
    )


class SqliteClientStore:
    """:class:`service.store.sessions.ClientStore` on SQLite."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def create_client(self, client: Client) -> None:
        values = (
            client.id,
            client.name,
            client.secret_hash,
            client.created_at,
            json.dumps(list(client.redirect_uris)),
            json.dumps(list(client.post_logout_redirect_uris)),
            json.dumps(list(client.grant_types)),
            json.dumps(list(client.scopes)),
            int(client.first_party),
            client.id_token_signed_response_alg,
            client.token_endpoint_auth_method,
            client.jwks,
            int(client.require_mfa),
        )

        def insert(conn: sqlite3.Connection) -> bool:
            try:
                conn.execute(
                    f"INSERT INTO clients ({_CLIENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    values,
                )
            except sqlite3.IntegrityError:
                return False
            return True

        if not await self._db.run(insert):
            raise ClientExists

    async def get_client(self, client_id: str) -> Client | None:
        return await self._db.run(
            lambda conn: _client(
                conn.execute(f"SELECT {_CLIENT_COLUMNS} FROM clients WHERE id = ?", (client_id,)).fetchone()
            )
        )

    async def list_clients(self) -> list[Client]:
        rows = await self._db.run(
            lambda conn: conn.execute(f"SELECT {_CLIENT_COLUMNS} FROM clients ORDER BY id").fetchall()
        )
        return [client for row in rows if (client := _client(row)) is not None]

    async def delete_client(self, client_id: str) -> bool:
        cursor = await self._db.run(
            lambda conn: conn.execute("DELETE FROM clients WHERE id = ?", (client_id,))
        )
        return cursor.rowcount > 0

    async def set_client_secret(self, client_id: str, secret_hash: str) -> bool:
        cursor = await self._db.run(
            lambda conn: conn.execute(
                "UPDATE clients SET secret_hash = ? WHERE id = ? AND secret_hash IS NOT NULL",
                (secret_hash, client_id),
            )
        )
        return cursor.rowcount > 0


class SqliteReplayCache:
    """:class:`service.store.exchange.ReplayCache` on SQLite: the primary key decides."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def remember(self, fingerprint: str, *, expires_at: float, now: float) -> bool:
        def insert(conn: sqlite3.Connection) -> bool:
            with transaction(conn):
                conn.execute("DELETE FROM exchange_replay WHERE expires_at <= ?", (now,))
                cursor = conn.execute(
                    "INSERT INTO exchange_replay (token_hash, expires_at) VALUES (?, ?) "
                    "ON CONFLICT DO NOTHING",
                    (fingerprint, expires_at),
                )
                return cursor.rowcount == 1

        return expires_at > now and await self._db.run(insert)

    async def forget(self, fingerprint: str) -> None:
        await self._db.run(
            lambda conn: conn.execute("DELETE FROM exchange_replay WHERE token_hash = ?", (fingerprint,))
        )
