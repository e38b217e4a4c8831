"""The injectable clock: every expiry, rotation and rate decision asks it for the time."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "FrozenClock", "rfc3339", "system_clock"]


class Clock(Protocol):
    """Returns the current time as seconds since the epoch."""

    def __call__(self) -> float: ...


def system_clock() -> float:
    """Wall-clock time; the production clock."""
    return time.time()


class FrozenClock:
    """A clock that only moves when told to; for tests."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def rfc3339(ts: float) -> str:
    """``2026-12-03T07:42:28Z``: whole seconds in UTC, the form API responses use for times."""
    return datetime.fromtimestamp(int(ts), tz=UTC).isoformat().replace("+00:00", "Z")
