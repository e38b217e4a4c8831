"""Audit events as structured JSON log lines, and the counters that mirror them.

Fields are ids and codes only: never a password, a token, a key or a full email.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
from collections.abc import Callable
from typing import Any

import msgspec
from prometheus_client import Counter

__all__ = ["AUTH_EVENTS", "REQUEST_ID", "AuditSink", "add_sink", "audit", "remove_sink", "request_id_from"]

logger = logging.getLogger("idp.audit")

AUTH_EVENTS = Counter("idp_auth_events", "Authentication events by type and outcome.", ["event", "outcome"])


REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_SAFE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{8,64}")


class _FreshIds:
    """Fresh request ids (16 random hex digits) cut from one ``os.urandom`` call per 256 ids:
    a system call per request cost more than the rest of a JWKS answer's id handling. Random,
    not a counter, so an id tells nobody how many requests a worker served; a forked child
    starts a new batch (``os.register_at_fork``), so parent and child never share ids."""

    __slots__ = ("_at", "_batch")

    _BATCH_BYTES = 2048  # 256 ids of 8 bytes

    def __init__(self) -> None:
        self._batch = ""
        self._at = 0

    def next(self) -> str:
        at = self._at
        if at >= len(self._batch):
            self._batch, at = os.urandom(self._BATCH_BYTES).hex(), 0
        self._at = at + 16
        return self._batch[at : at + 16]

    def forget(self) -> None:
        self._batch, self._at = "", 0


_FRESH = _FreshIds()
os.register_at_fork(after_in_child=_FRESH.forget)


def request_id_from(incoming: bytes) -> str:
    """A sane incoming ``X-Request-ID`` (a proxy's) is kept; anything else gets a fresh id."""
    if incoming and _SAFE_REQUEST_ID.fullmatch(incoming):
        return incoming.decode("ascii")
    return _FRESH.next()


AuditSink = Callable[[dict[str, str]], None]
"""Receives each event's record (``event``, ``outcome``, ``request_id`` and the fields, as
strings); must not block: the database recorder only queues it."""
_SINKS: list[AuditSink] = []


def add_sink(sink: AuditSink) -> None:
    _SINKS.append(sink)


def remove_sink(sink: AuditSink) -> None:
    if sink in _SINKS:
        _SINKS.remove(sink)


_COUNTERS: dict[tuple[str, str], Any] = {}
"""The counter child of each (event, outcome): both come from code, so the set is bounded."""


def audit(event: str, outcome: str = "success", **fields: Any) -> None:
    """Log one event line (with the request id, when there is a request) and count it."""
    counter = _COUNTERS.get((event, outcome))
    if counter is None:
        counter = _COUNTERS[event, outcome] = AUTH_EVENTS.labels(event=event, outcome=outcome)
    counter.inc()
    record = {"event": event, "outcome": outcome}
    record.update({key: str(value) for key, value in fields.items() if value is not None})
    request_id = REQUEST_ID.get()
    if request_id is not None:
        record["request_id"] = request_id
    logger.info(msgspec.json.encode(record).decode())
    for sink in _SINKS:
        sink(record)
