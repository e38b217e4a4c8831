"""The delivery worker: claim due outbox rows, send each, mark it sent or schedule a retry.

At-least-once: a row is marked only after the transport accepted it, so a crash in between
sends it again after its lease, with the same ``Message-ID``. Failures wait an exponentially
growing, jittered delay; after ``max_attempts`` (or at once on a permanent 5xx) the row is dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

import msgspec
from prometheus_client import Counter, Gauge, Histogram

from service.audit import audit
from service.clock import Clock
from service.mail.message import build_email
from service.mail.transports import Transport, TransportError
from service.store.base import StorageUnavailable
from service.store.mail import MailOutbox, OutboxRow

__all__ = ["OUTBOX_DEPTH", "DeliveryWorker", "RetryPolicy", "retry_delay"]

logger = logging.getLogger("idp.mail")

OUTBOX_DEPTH = Gauge("idp_mail_outbox", "Outbox rows by state (pending = the queue depth).", ["state"])
SEND_SECONDS = Histogram(
    "idp_mail_send_seconds",
    "Time to hand one message to the transport.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SEND_FAILURES = Counter("idp_mail_send_failures", "Failed send attempts.", ["kind", "outcome"])
SENT = Counter("idp_mail_sent", "Messages accepted by the transport.", ["kind"])


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    max_attempts: int = 8
    base_delay: float = 30.0
    max_delay: float = 3600.0
    lease: float = 120.0
    """How long a claimed row stays with its worker; longer than a send's timeout."""


def retry_delay(attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Seconds before attempt ``attempt + 1``: base * 2^(attempt-1) capped, "equal jitter"
    (half fixed, half random) so retries of many rows spread out but never come back at once."""
    ceiling: float = min(policy.max_delay, policy.base_delay * 2.0 ** (attempt - 1))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


class DeliveryWorker:
    def __init__(
        self,
        *,
        outbox: MailOutbox,
        transport: Transport,
        sender: str,
        clock: Clock,
        policy: RetryPolicy,
        rng: random.Random | None = None,
        poll_interval: float = 2.0,
        batch: int = 10,
    ) -> None:
        self._outbox = outbox
        self._transport = transport
        self._sender = sender
        self._clock = clock
        self._policy = policy
        self._rng = rng or random.Random()  # noqa: S311 -- jitter, not a secret
        self._poll = poll_interval
        self._batch = batch
        self._wake = asyncio.Event()
        self._depth_at = 0.0

    def wake(self) -> None:
        """Something was enqueued in this process: look now rather than at the next poll."""
        self._wake.set()

    async def run_once(self) -> int:
        """Claim one batch and deliver it; returns how many rows were claimed."""
        rows = await self._outbox.claim(self._clock(), self._policy.lease, self._batch)
        for row in rows:
            await self._deliver(row)
        return len(rows)

    async def _deliver(self, row: OutboxRow) -> None:
        assert row.claim is not None
        started = time.perf_counter()
        try:
            await self._transport.send(build_email(row, self._sender))
        except TransportError as exc:
            SEND_SECONDS.observe(time.perf_counter() - started)
            await self._failed(row, exc)
            return
        SEND_SECONDS.observe(time.perf_counter() - started)
        SENT.labels(kind=row.kind).inc()
        if await self._outbox.mark_sent(row.id, row.claim, self._clock()):
            audit("mail_sent", mail_id=row.id, kind=row.kind, attempt=row.attempts)
        else:  # the lease ran out during the send and another worker took the row
            logger.warning(
                "mail %s sent after its lease ran out; it may arrive twice (same Message-ID)", row.id
            )

    async def _failed(self, row: OutboxRow, exc: TransportError) -> None:
        assert row.claim is not None
        dead = exc.permanent or row.attempts >= self._policy.max_attempts
        retry_at = None if dead else self._clock() + retry_delay(row.attempts, self._policy, self._rng)
        outcome = "dead" if dead else "retry"
        SEND_FAILURES.labels(kind=row.kind, outcome=outcome).inc()
        await self._outbox.mark_failed(row.id, row.claim, exc.reason, retry_at)
        audit(
            "mail_failed",
            outcome=outcome,
            mail_id=row.id,
            kind=row.kind,
            attempt=row.attempts,
            reason=exc.reason,
        )

    async def refresh_depth(self) -> None:
        counts = await self._outbox.count_by_state()
        for state in ("pending", "sent", "dead"):
            OUTBOX_DEPTH.labels(state=state).set(counts.get(state, 0))

    async def run_forever(self) -> None:
        """Deliver until cancelled; an unreachable database is waited out, not fatal."""
        while True:
            claimed = 0
            self._wake.clear()  # before claiming: a wake-up during the claim is not lost
            try:
                claimed = await self.run_once()
                if time.monotonic() - self._depth_at > 10:
                    self._depth_at = time.monotonic()
                    await self.refresh_depth()
            except StorageUnavailable as exc:
                logger.warning("mail worker: storage unavailable (%s); retrying", exc)
            except Exception:
                logger.exception("mail worker: unexpected error; retrying")
            if claimed < self._batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll)
