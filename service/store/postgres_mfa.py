"""Second factors on PostgreSQL (:class:`service.store.mfa.MfaStore`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

from service.store.base import User
from service.store.mfa import FactorSummary, Passkey, PasskeyExists, TotpFactor
from service.store.postgres import _USER_COLUMNS as USER_COLUMNS
from service.store.postgres import PostgresDatabase
from service.store.postgres import _ts as timestamp
from service.store.postgres import _user as row_user

__all__ = ["PostgresMfaStore"]

_PASSKEY_COLUMNS = (
    "credential_id, user_id, name, public_key, sign_count, transports, device_type, backed_up, "
    "created_at, last_used_at"
)
_SUMMARY = (
    "SELECT (SELECT count(*) FROM mfa_totp WHERE user_id = $1 AND confirmed), "
    "(SELECT count(*) FROM mfa_passkeys WHERE user_id = $1), "
    "(SELECT count(*) FROM mfa_recovery_codes WHERE user_id = $1 AND used_at IS NULL)"
)

_SIGN_IN = (
    f"SELECT {USER_COLUMNS}, "
    "EXISTS (SELECT 1 FROM mfa_totp t WHERE t.user_id = users.id AND t.confirmed) AS factor_totp, "
    "(SELECT count(*) FROM mfa_passkeys p WHERE p.user_id = users.id) AS factor_passkeys, "
    "(SELECT count(*) FROM mfa_recovery_codes r WHERE r.user_id = users.id AND r.used_at IS NULL) "
    "AS factor_codes FROM users WHERE email_normalized = $1"
)


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value.timestamp())


def _passkey(row: asyncpg.Record) -> Passkey:
    return Passkey(
        credential_id=bytes(row["credential_id"]),
        user_id=row["user_id"],
        name=row["name"],
        public_key=bytes(row["public_key"]),
        sign_count=row["sign_count"],
        transports=tuple(row["transports"]),
        device_type=row["device_type"],
        backed_up=row["backed_up"],
        created_at=row["created_at"].timestamp(),
        last_used_at=_seconds(row["last_used_at"]),
    )


def _summary(row: asyncpg.Record | None) -> FactorSummary:
    assert row is not None
    return FactorSummary(bool(row[0]), int(row[1]), int(row[2]))


class PostgresMfaStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def summary(self, user_id: UUID) -> FactorSummary:
        return _summary(await self._db.fetchrow(_SUMMARY, user_id))

    async def sign_in_account(self, email_normalized: str) -> tuple[User, FactorSummary] | None:
        row = await self._db.fetchrow(_SIGN_IN, email_normalized)
        user = row_user(row)
        if row is None or user is None:
            return None
        return user, FactorSummary(row["factor_totp"], int(row["factor_passkeys"]), int(row["factor_codes"]))

    async def get_totp(self, user_id: UUID) -> TotpFactor | None:
        row = await self._db.fetchrow(
            "SELECT secret, confirmed, created_at, last_used_at FROM mfa_totp WHERE user_id = $1", user_id
        )
        if row is None:
            return None
        return TotpFactor(
            user_id=user_id,
            secret=bytes(row["secret"]),
            confirmed=row["confirmed"],
            created_at=row["created_at"].timestamp(),
            last_used_at=_seconds(row["last_used_at"]),
        )

    async def begin_totp(self, user_id: UUID, sealed_secret: bytes, now: float) -> bool:
        row = await self._db.fetchrow(
            "INSERT INTO mfa_totp (user_id, secret, confirmed, created_at) VALUES ($1, $2, false, $3) "
            "ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at, "
            "last_step = NULL WHERE NOT mfa_totp.confirmed RETURNING user_id",
            user_id,
            sealed_secret,
            timestamp(now),
        )
        return row is not None

    async def confirm_totp(self, user_id: UUID, now: float) -> bool:
        row = await self._db.fetchrow(
            "UPDATE mfa_totp SET confirmed = true, last_used_at = $2 WHERE user_id = $1 AND NOT confirmed "
            "RETURNING user_id",
            user_id,
            timestamp(now),
        )
        return row is not None

    async def accept_totp_step(self, user_id: UUID, step: int, now: float) -> bool:
        row = await self._db.fetchrow(
            "UPDATE mfa_totp SET last_step = $2, last_used_at = $3 "
            "WHERE user_id = $1 AND (last_step IS NULL OR last_step < $2) RETURNING user_id",
            user_id,
            step,
            timestamp(now),
        )
        return row is not None

    async def delete_totp(self, user_id: UUID) -> bool:
        row = await self._db.fetchrow("DELETE FROM mfa_totp WHERE user_id = $1 RETURNING user_id", user_id)
        return row is not None

    async def replace_recovery_codes(self, user_id: UUID, code_hashes: Sequence[str], now: float) -> None:
        async with self._db.transaction() as conn:
            await conn.execute("DELETE FROM mfa_recovery_codes WHERE user_id = $1", user_id)
            await conn.executemany(
                "INSERT INTO mfa_recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)",
                [(user_id, code_hash, timestamp(now)) for code_hash in code_hashes],
            )

    async def use_recovery_code(self, user_id: UUID, code_hash: str, now: float) -> bool:
        row = await self._db.fetchrow(
            "UPDATE mfa_recovery_codes SET used_at = $3 "
            "WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL RETURNING code_hash",
            user_id,
            code_hash,
            timestamp(now),
        )
        return row is not None

    async def add_passkey(self, passkey: Passkey) -> None:
        try:
            await self._db.fetchrow(
                f"INSERT INTO mfa_passkeys ({_PASSKEY_COLUMNS}) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                passkey.credential_id,
                passkey.user_id,
                passkey.name,
                passkey.public_key,
                passkey.sign_count,
                list(passkey.transports),
                passkey.device_type,
                passkey.backed_up,
                timestamp(passkey.created_at),
                None if passkey.last_used_at is None else timestamp(passkey.last_used_at),
            )
        except asyncpg.UniqueViolationError as exc:
            raise PasskeyExists from exc

    async def get_passkey(self, credential_id: bytes) -> Passkey | None:
        row = await self._db.fetchrow(
            f"SELECT {_PASSKEY_COLUMNS} FROM mfa_passkeys WHERE credential_id = $1", credential_id
        )
        return None if row is None else _passkey(row)

    async def list_passkeys(self, user_id: UUID) -> list[Passkey]:
        rows = await self._db.fetch(
            f"SELECT {_PASSKEY_COLUMNS} FROM mfa_passkeys WHERE user_id = $1 "
            "ORDER BY created_at, credential_id",
            user_id,
        )
        return [_passkey(row) for row in rows]

    async def record_passkey_use(
        self, credential_id: bytes, *, seen_count: int, new_count: int, backed_up: bool, now: float
    ) -> bool:
        row = await self._db.fetchrow(
            "UPDATE mfa_passkeys SET sign_count = $3, backed_up = $4, last_used_at = $5 "
            "WHERE credential_id = $1 AND sign_count = $2 RETURNING credential_id",
            credential_id,
            seen_count,
            new_count,
            backed_up,
            timestamp(now),
        )
        return row is not None

    async def delete_passkey(self, user_id: UUID, credential_id: bytes) -> bool:
        row = await self._db.fetchrow(
            "DELETE FROM mfa_passkeys WHERE user_id = $1 AND credential_id = $2 RETURNING credential_id",
            user_id,
            credential_id,
        )
        return row is not None

    async def reset(self, user_id: UUID) -> FactorSummary:
        async with self._db.transaction() as conn:
            before = _summary(await conn.fetchrow(_SUMMARY, user_id))
            for table in ("mfa_totp", "mfa_recovery_codes", "mfa_passkeys"):
                await conn.execute(f"DELETE FROM {table} WHERE user_id = $1", user_id)
            return before
