"""Second factors on SQLite (:class:`service.store.mfa.MfaStore`)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from uuid import UUID

from service.store.base import User
from service.store.mfa import FactorSummary, Passkey, PasskeyExists, TotpFactor
from service.store.sqlite import _USER_COLUMNS as USER_COLUMNS
from service.store.sqlite import SqliteDatabase, transaction
from service.store.sqlite import _user as row_user

__all__ = ["SqliteMfaStore"]

_PASSKEY_COLUMNS = (
    "credential_id, user_id, name, public_key, sign_count, transports, device_type, backed_up, "
    "created_at, last_used_at"
)


def _passkey(row: sqlite3.Row) -> Passkey:
    return Passkey(
        credential_id=bytes(row["credential_id"]),
        user_id=UUID(row["user_id"]),
        name=row["name"],
        public_key=bytes(row["public_key"]),
        sign_count=row["sign_count"],
        transports=tuple(json.loads(row["transports"])),
        device_type=row["device_type"],
        backed_up=bool(row["backed_up"]),
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
    )


def _summary(conn: sqlite3.Connection, user: str) -> FactorSummary:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM mfa_totp WHERE user_id = ? AND confirmed = 1), "
        "(SELECT count(*) FROM mfa_passkeys WHERE user_id = ?), "
        "(SELECT count(*) FROM mfa_recovery_codes WHERE user_id = ? AND used_at IS NULL)",
        (user, user, user),
    ).fetchone()
    return FactorSummary(bool(row[0]), int(row[1]), int(row[2]))


class SqliteMfaStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def summary(self, user_id: UUID) -> FactorSummary:
        return await self._db.run(lambda conn: _summary(conn, str(user_id)))

    async def sign_in_account(self, email_normalized: str) -> tuple[User, FactorSummary] | None:
        def read(conn: sqlite3.Connection) -> tuple[User, FactorSummary] | None:
            row = conn.execute(
                f"SELECT {USER_COLUMNS} FROM users WHERE email_normalized = ?", (email_normalized,)
            ).fetchone()
            user = row_user(row)
            return None if user is None else (user, _summary(conn, str(user.id)))

        return await self._db.run(read)

    async def get_totp(self, user_id: UUID) -> TotpFactor | None:
        row = await self._db.run(
            lambda conn: conn.execute(
                "SELECT secret, confirmed, created_at, last_used_at FROM mfa_totp WHERE user_id = ?",
                (str(user_id),),
            ).fetchone()
        )
        if row is None:
            return None
        return TotpFactor(
            user_id=user_id,
            secret=bytes(row["secret"]),
            confirmed=bool(row["confirmed"]),
            created_at=row["created_at"],
            last_used_at=row["last_used_at"],
        )

    async def begin_totp(self, user_id: UUID, sealed_secret: bytes, now: float) -> bool:
        cursor = await self._db.run(
            lambda conn: conn.execute(
                "INSERT INTO mfa_totp (user_id, secret, confirmed, created_at) VALUES (?, ?, 0, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, "
                "created_at = excluded.created_at, last_step = NULL WHERE mfa_totp.confirmed = 0",
                (str(user_id), sealed_secret, now),
            )
        )
        return cursor.rowcount == 1

    async def confirm_totp(self, user_id: UUID, now: float) -> bool:
        cursor = await self._db.run(
            lambda conn: conn.execute(
                "UPDATE mfa_totp SET confirmed = 1, last_used_at = ? WHERE user_id = ? AND confirmed = 0",
                (now, str(user_id)),
            )
        )
        return cursor.rowcount == 1

    async def accept_totp_step(self, user_id: UUID, step: int, now: float) -> bool:
        cursor = await self._db.run(
            lambda conn: conn.execute(
                "UPDATE mfa_totp SET last_step = ?, last_used_at = ? "
                "WHERE user_id = ? AND (last_step IS NULL OR last_step < ?)",
                (step, now, str(user_id), step),
            )
        )
        return cursor.rowcount == 1

    async def delete_totp(self, user_id: UUID) -> bool:
        cursor = await self._db.run(
            lambda conn: conn.execute("DELETE FROM mfa_totp WHERE user_id = ?", (str(user_id),))
        )
        return cursor.rowcount == 1

    async def replace_recovery_codes(self, user_id: UUID, code_hashes: Sequence[str], now: float) -> None:
        def replace(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute("DELETE FROM mfa_recovery_codes WHERE user_id = ?", (str(user_id),))
                conn.executemany(
                    "INSERT INTO mfa_recovery_codes (user_id, code_hash, created_at) VALUES (?, ?, ?)",
                    [(str(user_id), code_hash, now) for code_hash in code_hashes],
                )

        await self._db.run(replace)

    async def use_recovery_code(self, user_id: UUID, code_hash: str, now: float) -> bool:
        cursor = await self._db.run(
            lambda conn: conn.execute(
                "UPDATE mfa_recovery_codes SET used_at = ? "
                "WHERE user_id = ? AND code_hash = ? AND used_at IS NULL",
                (now, str(user_id), code_hash),
            )
        )
        return cursor.rowcount == 1

    async def add_passkey(self, passkey: Passkey) -> None:
        def insert(conn: sqlite3.Connection) -> bool:
            try:
                conn.execute(
                    f"INSERT INTO mfa_passkeys ({_PASSKEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        passkey.credential_id,
                        str(passkey.user_id),
                        passkey.name,
                        passkey.public_key,
                        passkey.sign_count,
                        json.dumps(list(passkey.transports)),
                        passkey.device_type,
                        int(passkey.backed_up),
                        passkey.created_at,
                        passkey.last_used_at,
                    ),
                )
            except sqlite3.IntegrityError:
                return False
            return True

        if not await self._db.run(insert):
            raise PasskeyExists

    async def get_passkey(self, credential_id: bytes) -> Passkey | None:
        row = await self._db.run(
            lambda conn: conn.execute(
                f"SELECT {_PASSKEY_COLUMNS} FROM mfa_passkeys WHERE credential_id = ?", (credential_id,)
            ).fetchone()
        )
        return None if row is None else _passkey(row)

    async def list_passkeys(self, user_id: UUID) -> list[Passkey]:
        rows = await self._db.run(
            lambda conn: conn.execute(
                f"SELECT {_PASSKEY_COLUMNS} FROM mfa_passkeys WHERE user_id = ? ORDER BY created_at, rowid",
                (str(user_id),),
            ).fetchall()
        )
        return [_passkey(row) for row in rows]

    async def record_passkey_use(
        self, credential_id: bytes, *, seen_count: int, new_count: int, backed_up: bool, now: float
    ) -> bool:
        cursor = await self._db.run(
            lambda conn: conn.execute(
                "UPDATE mfa_passkeys SET sign_count = ?, backed_up = ?, last_used_at = ? "
                "WHERE credential_id = ? AND sign_count = ?",
                (new_count, int(backed_up), now, credential_id, seen_count),
            )
        )
        return cursor.rowcount == 1

    async def delete_passkey(self, user_id: UUID, credential_id: bytes) -> bool:
        cursor = await self._db.run(
            lambda conn: conn.execute(
                "DELETE FROM mfa_passkeys WHERE user_id = ? AND credential_id = ?",
                (str(user_id), credential_id),
            )
        )
        return cursor.rowcount == 1

    async def reset(self, user_id: UUID) -> FactorSummary:
        def reset(conn: sqlite3.Connection) -> FactorSummary:
            user = str(user_id)
            with transaction(conn):
                before = _summary(conn, user)
                for table in ("mfa_totp", "mfa_recovery_codes", "mfa_passkeys"):
                    conn.execute(f"DELETE FROM {table} WHERE user_id = ?", (user,))
                return before

        return await self._db.run(reset)
