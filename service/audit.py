"""Audit events as structured JSON log lines, and the counters that mirror them.

Fields are ids and codes only: never a password, a token, a key or a full email.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from prometheus_client import Counter

__all__ = ["AUTH_EVENTS", "audit"]

logger = logging.getLogger("idp.audit")

AUTH_EVENTS = Counter("idp_auth_events", "Authentication events by type and outcome.", ["event", "outcome"])


def audit(event: str, outcome: str = "success", **fields: Any) -> None:
    """Log one event line and count it."""
    AUTH_EVENTS.labels(event=event, outcome=outcome).inc()
    record = {"event": event, "outcome": outcome}
    record.update({key: str(value) for key, value in fields.items() if value is not None})
    logger.info(msgspec.json.encode(record).decode())
