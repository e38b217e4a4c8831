"""The injectable clock: every expiry, rotation and rate decision asks it for the time."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "FrozenClock", "system_clock"]


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
