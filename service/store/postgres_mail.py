"""The outbox and account tokens on PostgreSQL. Claims use ``FOR UPDATE SKIP LOCKED``: two
workers claiming at once each lock different rows, and the lease they write keeps the rows
theirs after the claiming transaction commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

from service.errors import EmailTaken
from service.store.base import NewUser, User
from service.store.mail import (
    AccountChange,
    AccountToken,
    MarkVerified,
    NewMail,
    OutboxRow,
    OutboxState,
    SetEmail,
    SetPassword,
)
from service.store.postgres import _INSERT_USER as INSERT_USER
from service.store.postgres import _USER_COLUMNS as USER_COLUMNS
from service.store.postgres import PostgresDatabase
from service.store.postgres import _ts as timestamp
from service.store.postgres import _user as row_user
from service.store.postgres import _user_values as user_values

__all__ = ["PostgresAccountTokens", "PostgresOutbox"]

_OUTBOX_COLUMNS = (
    "id, message_id, kind, recipient, subject, text_body, html_body, state, attempts, "
    "next_attempt_at, claim, last_error, created_at, sent_at"
)
_INSERT_MAIL = (
    "INSERT INTO mail_outbox (id, message_id, kind, recipient, subject, text_body, html_body, "
    "user_id, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)"
)
Connection = Any  # a pooled asyncpg connection (its proxy type is not part of asyncpg's API)


def _row(row: asyncpg.Record) -> OutboxRow:
    return OutboxRow(
        id=row["id"],
        message_id=row["message_id"],
        kind=row["kind"],
        recipient=row["recipient"],
        subject=row["subject"],
        text_body=row["text_body"],
        html_body=row["html_body"],
        state=row["state"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"].timestamp(),
        claim=row["claim"],
        last_error=row["last_error"],
        created_at=row["created_at"].timestamp(),
        sent_at=row["sent_at"].timestamp() if row["sent_at"] else None,
    )


async def insert_mails(conn: Connection, mails: Sequence[NewMail]) -> None:
    """Enqueue inside the caller's transaction."""
    if mails:
        await conn.executemany(
            _INSERT_MAIL,
            [
                (
                    mail.id,
                    mail.message_id,
                    mail.kind,
                    mail.recipient,
                    mail.subject,
                    mail.text_body,
                    mail.html_body,
                    mail.user_id,
                    timestamp(mail.created_at),
                )
                for mail in mails
            ],
        )


class PostgresOutbox:
    """:class:`service.store.mail.MailOutbox` on PostgreSQL."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def enqueue(self, mail: NewMail) -> None:
        async with self._db.transaction() as conn:
            await insert_mails(conn, [mail])

    async def claim(self, now: float, lease: float, limit: int) -> list[OutboxRow]:
        rows = await self._db.fetch(
            "UPDATE mail_outbox SET claim = $1, attempts = attempts + 1, next_attempt_at = $2 "
            "WHERE id IN (SELECT id FROM mail_outbox WHERE state = 'pending' AND next_attempt_at <= $3 "
            "ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED) "
            f"RETURNING {_OUTBOX_COLUMNS}",
            uuid.uuid4(),
            timestamp(now + lease),
            timestamp(now),
            limit,
        )
        return sorted((_row(row) for row in rows), key=lambda row: row.created_at)

    async def mark_sent(self, row_id: UUID, claim: UUID, now: float) -> bool:
        row = await self._db.fetchrow(
            "UPDATE mail_outbox SET state = 'sent', sent_at = $3, claim = NULL, text_body = NULL, "
            "html_body = NULL, last_error = NULL WHERE id = $1 AND claim = $2 AND state = 'pending' "
            "RETURNING id",
            row_id,
            claim,
            timestamp(now),
        )
        return row is not None

    async def mark_failed(self, row_id: UUID, claim: UUID, error: str, retry_at: float | None) -> bool:
        if retry_at is None:
            row = await self._db.fetchrow(
                "UPDATE mail_outbox SET state = 'dead', claim = NULL, last_error = $3, text_body = NULL, "
                "html_body = NULL WHERE id = $1 AND claim = $2 AND state = 'pending' RETURNING id",
                row_id,
                claim,
                error,
            )
        else:
            row = await self._db.fetchrow(
                "UPDATE mail_outbox SET claim = NULL, last_error = $3, next_attempt_at = $4 "
                "WHERE id = $1 AND claim = $2 AND state = 'pending' RETURNING id",
                row_id,
                claim,
                error,
                timestamp(retry_at),
            )
        return row is not None

    async def list_mail(self, state: OutboxState | None, limit: int) -> list[OutboxRow]:
        if state is None:
            query = f"SELECT {_OUTBOX_COLUMNS} FROM mail_outbox ORDER BY created_at DESC LIMIT $1"
            rows = await self._db.fetch(query, limit)
        else:
            query = (
                f"SELECT {_OUTBOX_COLUMNS} FROM mail_outbox WHERE state = $2 "
                "ORDER BY created_at DESC LIMIT $1"
            )
            rows = await self._db.fetch(query, limit, state)
        return [_row(row) for row in rows]

    async def count_by_state(self) -> dict[str, int]:
        rows = await self._db.fetch("SELECT state, count(*) AS n FROM mail_outbox GROUP BY state")
        return {row["state"]: row["n"] for row in rows}


def _token(row: asyncpg.Record | None) -> AccountToken | None:
    if row is None:
        return None
    return AccountToken(
        token_hash=row["token_hash"],
        user_id=row["user_id"],
        purpose=row["purpose"],
        email=row["email"],
        created_at=row["created_at"].timestamp(),
        expires_at=row["expires_at"].timestamp(),
    )


async def _apply(conn: Connection, user_id: UUID, change: AccountChange, now: float) -> User | None:
    sql: str
    values: tuple[object, ...]
    if isinstance(change, SetPassword):
        sql, values = "password_hash = $3 WHERE id = $1", (change.password_hash,)
    elif isinstance(change, SetEmail):
        sql = "email = $3, email_normalized = $4, email_verified = true WHERE id = $1"
        values = (change.email, change.email_normalized)
    else:
        assert isinstance(change, MarkVerified)
        sql, values = (
            "email_verified = true WHERE id = $1 AND email_normalized = $3",
            (change.email_normalized,),
        )
    query = f"UPDATE users SET updated_at = $2, {sql} RETURNING {USER_COLUMNS}"
    return row_user(await conn.fetchrow(query, user_id, timestamp(now), *values))


async def _insert_token(conn: Connection, token: AccountToken) -> None:
    await conn.execute(
        "INSERT INTO account_tokens (token_hash, user_id, purpose, email, created_at, expires_at) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        token.token_hash,
        token.user_id,
        token.purpose,
        token.email,
        timestamp(token.created_at),
        timestamp(token.expires_at),
    )


class PostgresAccountTokens:
    """:class:`service.store.mail.AccountTokenStore` on PostgreSQL."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def issue_token(self, token: AccountToken, mails: Sequence[NewMail]) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "DELETE FROM account_tokens WHERE user_id = $1 AND purpose = $2", token.user_id, token.purpose
            )
            await _insert_token(conn, token)
            await insert_mails(conn, mails)

    async def register(self, user: NewUser, token: AccountToken, mails: Sequence[NewMail]) -> User:
        try:
            async with self._db.transaction() as conn:
                created = row_user(await conn.fetchrow(INSERT_USER, *user_values(user)))
                await _insert_token(conn, token)
                await insert_mails(conn, mails)
        except asyncpg.UniqueViolationError as exc:
            raise EmailTaken from exc
        assert created is not None
        return created

    async def find_token(self, token_hash: str, purpose: str, now: float) -> AccountToken | None:
        return _token(
            await self._db.fetchrow(
                "SELECT * FROM account_tokens WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3",
                token_hash,
                purpose,
                timestamp(now),
            )
        )

    async def redeem_token(
        self, token_hash: str, purpose: str, now: float, change: AccountChange, mails: Sequence[NewMail]
    ) -> User | None:
        try:
            async with self._db.transaction() as conn:
                token = _token(
                    await conn.fetchrow(
                        "DELETE FROM account_tokens WHERE token_hash = $1 AND purpose = $2 "
                        "AND expires_at > $3 RETURNING *",
                        token_hash,
                        purpose,
                        timestamp(now),
                    )
                )
                # A verification for an address the account no longer has only uses the token up.
                user = None if token is None else await _apply(conn, token.user_id, change, now)
                if user is None:
                    return None
                if not isinstance(change, MarkVerified):
                    await conn.execute("DELETE FROM account_tokens WHERE user_id = $1", user.id)
                await insert_mails(conn, mails)
                return user
        except asyncpg.UniqueViolationError as exc:
            raise EmailTaken from exc

    async def enqueue_with(self, mails: Sequence[NewMail]) -> None:
        async with self._db.transaction() as conn:
            await insert_mails(conn, mails)

    async def erase_account(self, user_id: UUID) -> bool:
        async with self._db.transaction() as conn:
            await conn.execute("DELETE FROM mail_outbox WHERE user_id = $1", user_id)
            return await conn.fetchrow("DELETE FROM users WHERE id = $1 RETURNING id", user_id) is not None
