"""Storage Protocols for the mail outbox and the single-use account tokens.

The outbox is written in the transaction of the change that causes a mail (``mails=`` on the
token operations), so a mail exists if and only if its change committed. Claiming a row takes a
lease: the row's ``claim`` is set and its ``next_attempt_at`` moved to the lease's end, so no
other worker picks it until the sender marks it or the lease runs out (a crash: the row is sent
again, with the same ``Message-ID``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol
from uuid import UUID

import msgspec

from service.store.base import NewUser, User

__all__ = [
    "AccountChange",
    "AccountToken",
    "AccountTokenStore",
    "MailOutbox",
    "NewMail",
    "OutboxRow",
    "OutboxState",
    "SetEmail",
    "SetPassword",
]

OutboxState = Literal["pending", "sent", "dead"]


class NewMail(msgspec.Struct, frozen=True, kw_only=True):
    """A rendered message to enqueue."""

    id: UUID
    message_id: str
    kind: str
    recipient: str
    subject: str
    text_body: str
    html_body: str | None = None
    user_id: UUID | None = None
    created_at: float


class OutboxRow(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    message_id: str
    kind: str
    recipient: str
    subject: str
    text_body: str | None
    html_body: str | None
    state: OutboxState
    attempts: int
    next_attempt_at: float
    claim: UUID | None
    last_error: str | None
    created_at: float
    sent_at: float | None


class MailOutbox(Protocol):
    async def enqueue(self, mail: NewMail) -> None: ...

    async def claim(self, now: float, lease: float, limit: int) -> list[OutboxRow]:
        """Take up to ``limit`` due pending rows: each gets a fresh ``claim`` id, one more
        attempt and ``next_attempt_at = now + lease``; rows claimed elsewhere are skipped."""
        ...

    async def mark_sent(self, row_id: UUID, claim: UUID, now: float) -> bool:
        """Sent: clear the bodies. False if the lease was lost (another worker claimed it)."""
        ...

    async def mark_failed(self, row_id: UUID, claim: UUID, error: str, retry_at: float | None) -> bool:
        """Pending again from ``retry_at``, or dead (bodies cleared) when ``retry_at`` is None."""
        ...

    async def list_mail(self, state: OutboxState | None, limit: int) -> list[OutboxRow]:
        """Newest first."""
        ...

    async def count_by_state(self) -> dict[str, int]: ...


class AccountToken(msgspec.Struct, frozen=True, kw_only=True):
    """A single-use link token; ``email`` is the address it was sent to (the new one for an
    email change)."""

    token_hash: str
    user_id: UUID
    purpose: str
    email: str
    created_at: float
    expires_at: float


class SetPassword(msgspec.Struct, frozen=True):
    password_hash: str


class SetEmail(msgspec.Struct, frozen=True):
    email: str
    email_normalized: str


class MarkVerified(msgspec.Struct, frozen=True):
    email_normalized: str


AccountChange = SetPassword | SetEmail | MarkVerified


class AccountTokenStore(Protocol):
    async def issue_token(self, token: AccountToken, mails: Sequence[NewMail]) -> None:
        """Store the token (replacing the account's earlier ones of this purpose) and enqueue
        ``mails``, in one transaction."""
        ...

    async def find_token(self, token_hash: str, purpose: str, now: float) -> AccountToken | None:
        """The unexpired token of this purpose, without using it."""
        ...

    async def register(self, user: NewUser, token: AccountToken, mails: Sequence[NewMail]) -> User:
        """Create the account, its first token and mails in one transaction; a taken email
        raises :class:`service.errors.EmailTaken` and writes nothing."""
        ...

    async def redeem_token(
        self, token_hash: str, purpose: str, now: float, change: AccountChange, mails: Sequence[NewMail]
    ) -> User | None:
        """In one transaction: delete the token (None if gone or expired), apply ``change``,
        delete the account's other tokens when the password or email changed, enqueue ``mails``.
        A taken email raises :class:`service.errors.EmailTaken` and changes nothing."""
        ...

    async def enqueue_with(self, mails: Sequence[NewMail]) -> None:
        """Enqueue several mails at once (one transaction)."""
        ...

    async def erase_account(self, user_id: UUID) -> bool:
        """Delete the account with its identities, tokens and every outbox row about it (the
        rows hold its address), in one transaction. False if there was no such account."""
        ...
