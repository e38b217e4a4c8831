"""What ``idp mail list`` and ``idp mail work`` do, given a started runtime (the argument
parsing lives in :mod:`service.cli`). Recipients are shown masked: the listing is for operators
checking delivery, not a mailbox."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import UTC, datetime

import msgspec

from service.emails import mask_email
from service.mail.worker import DeliveryWorker
from service.store.mail import MailOutbox, OutboxRow

__all__ = ["deliver", "list_mail"]


class MailView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    message_id: str
    kind: str
    recipient: str
    state: str
    attempts: int
    next_attempt_at: str | None
    created_at: str
    sent_at: str | None
    last_error: str | None

    @classmethod
    def of(cls, row: OutboxRow) -> MailView:
        return cls(
            id=str(row.id),
            message_id=row.message_id,
            kind=row.kind,
            recipient=mask_email(row.recipient),
            state=row.state,
            attempts=row.attempts,
            next_attempt_at=_rfc3339(row.next_attempt_at) if row.state == "pending" else None,
            created_at=_rfc3339(row.created_at),
            sent_at=_rfc3339(row.sent_at) if row.sent_at is not None else None,
            last_error=row.last_error,
        )


def _rfc3339(ts: float) -> str:
    """As the other ``--json`` listings (``service.cli_support.iso``): ISO 8601 with its offset."""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


async def list_mail(outbox: MailOutbox, *, failed: bool, as_json: bool, limit: int = 100) -> str:
    """The newest rows (dead ones only with ``failed``), as a table or a JSON array."""
    views = [MailView.of(row) for row in await outbox.list_mail("dead" if failed else None, limit)]
    if as_json:
        return msgspec.json.format(msgspec.json.encode(views).decode())
    if not views:
        return "no dead mail" if failed else "no mail"
    lines = [f"{'id':<36}  {'kind':<16} {'state':<7} {'tries':>5}  {'created':<20}  recipient  error"]
    lines.extend(
        f"{v.id:<36}  {v.kind:<16} {v.state:<7} {v.attempts:>5}  {v.created_at:<20}  "
        f"{v.recipient}  {v.last_error or ''}".rstrip()
        for v in views
    )
    return "\n".join(lines)


async def deliver(worker: DeliveryWorker, *, once: bool) -> int:
    """``once``: send what is due now and return how many rows were handled; else run until
    SIGINT/SIGTERM."""
    if once:
        handled = 0
        while claimed := await worker.run_once():
            handled += claimed
        return handled
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    task = asyncio.create_task(worker.run_forever())
    try:
        await stop.wait()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return 0
