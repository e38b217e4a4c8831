"""Audit events in the database as well as the log.

:func:`service.audit.audit` hands each record to :meth:`AuditRecorder.record`, which only
queues it (audit is called from synchronous code); the recorder's task writes the queue in
batches every second, and deletes events older than the retention once an hour. A query first
writes what this process still holds, so an instance reads its own events. Events queued when
the process dies uncleanly are lost to the database (the log line was written already).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from service.clock import Clock
from service.store.admin import AuditEvent, AuditQuery, AuditStore, StoredAuditEvent
from service.store.base import StorageUnavailable

__all__ = ["AuditRecorder"]

logger = logging.getLogger("idp.audit")

MAX_QUEUED = 10_000
FLUSH_INTERVAL = 1.0
PRUNE_INTERVAL = 3600.0
_COLUMNS = ("event", "outcome", "user_id", "client_id", "scope", "request_id")


def _uuid(raw: str | None) -> uuid.UUID | None:
    try:
        return None if raw is None else uuid.UUID(raw)
    except ValueError:
        return None


class AuditRecorder:
    def __init__(self, store: AuditStore, clock: Clock, *, retention_days: int) -> None:
        self._store = store
        self._clock = clock
        self._retention = retention_days * 86400.0
        self._queue: list[AuditEvent] = []
        self._dropped = 0
        self._lock = asyncio.Lock()

    def record(self, record: dict[str, str]) -> None:
        """The :data:`service.audit.AuditSink`: queue one event (bounded: beyond
        ``MAX_QUEUED`` events are counted and dropped rather than growing memory)."""
        if len(self._queue) >= MAX_QUEUED:
            self._dropped += 1
            return
        user_id = _uuid(record.get("user_id"))
        details = {key: value for key, value in record.items() if key not in _COLUMNS}
        if record.get("user_id") and user_id is None:
            details["user_id"] = record["user_id"]
        self._queue.append(
            AuditEvent(
                at=self._clock(),
                event=record.get("event", "unknown"),
                outcome=record.get("outcome", "success"),
                user_id=user_id,
                client_id=record.get("client_id"),
                scope=record.get("scope"),
                request_id=record.get("request_id"),
                details=details,
            )
        )

    async def flush(self) -> int:
        """Write the queued events; on an outage (or a cancellation) they stay queued."""
        async with self._lock:
            batch, self._queue = self._queue, []
            try:
                await self._store.append_events(batch)
            except BaseException:  # an outage, or cancelled at shutdown: the next flush retries
                self._queue = batch + self._queue
                raise
            if self._dropped:
                logger.warning("audit: %d events were not stored (queue full)", self._dropped)
                self._dropped = 0
            return len(batch)

    async def query(self, query: AuditQuery) -> list[StoredAuditEvent]:
        await self.flush()
        return await self._store.query_events(query)

    async def prune(self) -> int:
        """Delete events past the retention; return how many."""
        return await self._store.prune_events(self._clock() - self._retention)

    async def run_forever(self) -> None:
        since_prune = PRUNE_INTERVAL
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            since_prune += FLUSH_INTERVAL
            try:
                await self.flush()
                if since_prune >= PRUNE_INTERVAL:
                    since_prune = 0.0
                    await self.prune()
            except StorageUnavailable as exc:
                logger.warning("audit: cannot store events now: %s", type(exc).__name__)

    async def close(self) -> None:
        """The last flush, at shutdown (an outage then loses the queue, logged)."""
        with contextlib.suppress(StorageUnavailable):
            await self.flush()
