"""The outbox and account tokens on SQLite: each operation one ``BEGIN IMMEDIATE`` transaction
on the database's single thread, so a claim cannot interleave with another process's claim."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence
from uuid import UUID

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
from service.store.sqlite import _USER_COLUMNS as USER_COLUMNS
from service.store.sqlite import SqliteDatabase, transaction
from service.store.sqlite import _insert_user as insert_user
from service.store.sqlite import _user as row_user

__all__ = ["SqliteAccountTokens", "SqliteOutbox"]

_OUTBOX_COLUMNS = (
    "id, message_id, kind, recipient, subject, text_body, html_body, state, attempts, "
    "next_attempt_at, claim, last_error, created_at, sent_at"
)


def _row(row: sqlite3.Row) -> OutboxRow:
    return OutboxRow(
        id=UUID(row["id"]),
        message_id=row["message_id"],
        kind=row["kind"],
        recipient=row["recipient"],
        subject=row["subject"],
        text_body=row["text_body"],
        html_body=row["html_body"],
        state=row["state"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        claim=UUID(row["claim"]) if row["claim"] else None,
        last_error=row["last_error"],
        created_at=row["created_at"],
        sent_at=row["sent_at"],
    )


def insert_mails(conn: sqlite3.Connection, mails: Sequence[NewMail]) -> None:
    """Enqueue inside the caller's transaction."""
    conn.executemany(
        "INSERT INTO mail_outbox (id, message_id, kind, recipient, subject, text_body, html_body, "
        "user_id, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                str(mail.id),
                mail.message_id,
                mail.kind,
                mail.recipient,
                mail.subject,
                mail.text_body,
                mail.html_body,
                str(mail.user_id) if mail.user_id else None,
                mail.created_at,
                mail.created_at,
            )
            for mail in mails
        ],
    )


class SqliteOutbox:
    """:class:`service.store.mail.MailOutbox` on SQLite."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def enqueue(self, mail: NewMail) -> None:
        def enqueue(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                insert_mails(conn, [mail])

        await self._db.run(enqueue)

    async def claim(self, now: float, lease: float, limit: int) -> list[OutboxRow]:
        def claim(conn: sqlite3.Connection) -> list[OutboxRow]:
            with transaction(conn):
                rows = conn.execute(
                    "UPDATE mail_outbox SET claim = ?, attempts = attempts + 1, next_attempt_at = ? "
                    "WHERE id IN (SELECT id FROM mail_outbox WHERE state = 'pending' "
                    "AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?) "
                    f"RETURNING {_OUTBOX_COLUMNS}",
                    (str(uuid.uuid4()), now + lease, now, limit),
                ).fetchall()
            return sorted((_row(row) for row in rows), key=lambda row: row.created_at)

        return await self._db.run(claim)

    async def mark_sent(self, row_id: UUID, claim: UUID, now: float) -> bool:
        cursor = await self._db.run(
            lambda conn: conn.execute(
                "UPDATE mail_outbox SET state = 'sent', sent_at = ?, claim = NULL, text_body = NULL, "
                "html_body = NULL, last_error = NULL WHERE id = ? AND claim = ? AND state = 'pending'",
                (now, str(row_id), str(claim)),
            )
        )
        return cursor.rowcount == 1

    async def mark_failed(self, row_id: UUID, claim: UUID, error: str, retry_at: float | None) -> bool:
        if retry_at is None:
            sql = (
                "UPDATE mail_outbox SET state = 'dead', claim = NULL, last_error = ?, text_body = NULL, "
                "html_body = NULL WHERE id = ? AND claim = ? AND state = 'pending'"
            )
            values: tuple[object, ...] = (error, str(row_id), str(claim))
        else:
            sql = (
                "UPDATE mail_outbox SET claim = NULL, last_error = ?, next_attempt_at = ? "
                "WHERE id = ? AND claim = ? AND state = 'pending'"
            )
            values = (error, retry_at, str(row_id), str(claim))
        cursor = await self._db.run(lambda conn: conn.execute(sql, values))
        return cursor.rowcount == 1

    async def list_mail(self, state: OutboxState | None, limit: int) -> list[OutboxRow]:
        where, values = ("WHERE state = ?", (state, limit)) if state else ("", (limit,))
        rows = await self._db.run(
            lambda conn: conn.execute(
                f"SELECT {_OUTBOX_COLUMNS} FROM mail_outbox {where} ORDER BY created_at DESC LIMIT ?", values
            ).fetchall()
        )
        return [_row(row) for row in rows]

    async def count_by_state(self) -> dict[str, int]:
        rows = await self._db.run(
            lambda conn: conn.execute("SELECT state, count(*) FROM mail_outbox GROUP BY state").fetchall()
        )
        return {row[0]: row[1] for row in rows}


def _token(row: sqlite3.Row | None) -> AccountToken | None:
    if row is None:
        return None
    return AccountToken(
        token_hash=row["token_hash"],
        user_id=UUID(row["user_id"]),
        purpose=row["purpose"],
        email=row["email"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
    )


def _apply(conn: sqlite3.Connection, user_id: str, change: AccountChange, now: float) -> User | None:
    sql: str
    values: tuple[object, ...]
    if isinstance(change, SetPassword):
        sql, values = "password_hash = ? WHERE id = ?", (change.password_hash, user_id)
    elif isinstance(change, SetEmail):
        sql = "email = ?, email_normalized = ?, email_verified = 1 WHERE id = ?"
        values = (change.email, change.email_normalized, user_id)
    else:
        assert isinstance(change, MarkVerified)
        sql, values = (
            "email_verified = 1 WHERE id = ? AND email_normalized = ?",
            (user_id, change.email_normalized),
        )
    row = conn.execute(f"UPDATE users SET updated_at = ?, {sql} RETURNING {USER_COLUMNS}", (now, *values))
    return row_user(row.fetchone())


def _insert_token(conn: sqlite3.Connection, token: AccountToken) -> None:
    conn.execute(
        "INSERT INTO account_tokens (token_hash, user_id, purpose, email, created_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (
            token.token_hash,
            str(token.user_id),
            token.purpose,
            token.email,
            token.created_at,
            token.expires_at,
        ),
    )


class SqliteAccountTokens:
    """:class:`service.store.mail.AccountTokenStore` on SQLite."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def issue_token(self, token: AccountToken, mails: Sequence[NewMail]) -> None:
        def issue(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute(
                    "DELETE FROM account_tokens WHERE user_id = ? AND purpose = ?",
                    (str(token.user_id), token.purpose),
                )
                _insert_token(conn, token)
                insert_mails(conn, mails)

        await self._db.run(issue)

    async def register(self, user: NewUser, token: AccountToken, mails: Sequence[NewMail]) -> User:
        def register(conn: sqlite3.Connection) -> User:
            with transaction(conn):
                created = insert_user(conn, user)
                _insert_token(conn, token)
                insert_mails(conn, mails)
                return created

        try:
            return await self._db.run(register)
        except sqlite3.IntegrityError as exc:
            raise EmailTaken from exc

    async def find_token(self, token_hash: str, purpose: str, now: float) -> AccountToken | None:
        return await self._db.run(
            lambda conn: _token(
                conn.execute(
                    "SELECT * FROM account_tokens WHERE token_hash = ? AND purpose = ? AND expires_at > ?",
                    (token_hash, purpose, now),
                ).fetchone()
            )
        )

    async def redeem_token(
        self, token_hash: str, purpose: str, now: float, change: AccountChange, mails: Sequence[NewMail]
    ) -> User | None:
        def redeem(conn: sqlite3.Connection) -> User | None:
            with transaction(conn):
                token = _token(
                    conn.execute(
                        "DELETE FROM account_tokens WHERE token_hash = ? AND purpose = ? "
                        "AND expires_at > ? RETURNING *",
                        (token_hash, purpose, now),
                    ).fetchone()
                )
                # A verification for an address the account no longer has only uses the token up.
                user = None if token is None else _apply(conn, str(token.user_id), change, now)
                if user is None:
                    return None
                if not isinstance(change, MarkVerified):
                    conn.execute("DELETE FROM account_tokens WHERE user_id = ?", (str(user.id),))
                insert_mails(conn, mails)
                return user

        try:
            return await self._db.run(redeem)
        except sqlite3.IntegrityError as exc:
            raise EmailTaken from exc

    async def enqueue_with(self, mails: Sequence[NewMail]) -> None:
        def enqueue(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                insert_mails(conn, mails)

        await self._db.run(enqueue)

    async def erase_account(self, user_id: UUID) -> bool:
        def erase(conn: sqlite3.Connection) -> bool:
            with transaction(conn):
                conn.execute("DELETE FROM mail_outbox WHERE user_id = ?", (str(user_id),))
                return conn.execute("DELETE FROM users WHERE id = ?", (str(user_id),)).rowcount > 0

        return await self._db.run(erase)
