"""GCRA (the generic cell rate algorithm), and the in-process limiter of the embedded mode.

A rule allows ``limit`` requests per ``period`` seconds with bursts up to ``limit``. The only
state per key is its *theoretical arrival time* (TAT). :func:`gcra` is the pure step; the
Redis limiter (:mod:`service.store.redis_limits`) runs the same step as one Lua script.
"""

from __future__ import annotations

from service.limits import Decision, Rule

__all__ = ["MemoryRateLimiter", "gcra"]


def gcra(tat: float, now: float, rule: Rule) -> tuple[Decision, float]:
    """The GCRA step: the decision and the new TAT (unchanged when refused)."""
    interval, tolerance = rule.interval, rule.period
    base = max(tat, now)
    new_tat = base + interval
    allow_at = new_tat - tolerance
    if allow_at > now:
        return Decision(False, 0, allow_at - now, base - now), tat
    remaining = int((tolerance - (new_tat - now)) // interval)
    return Decision(True, max(remaining, 0), 0.0, new_tat - now), new_tat


class MemoryRateLimiter:
    """Per-process limiter for the embedded mode (one instance); atomic because the event loop
    runs one coroutine at a time."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._tats: dict[str, float] = {}
        self._max_keys = max_keys

    async def hit(self, key: str, rule: Rule, now: float) -> Decision:
        full_key = f"{rule.name}:{key}"
        decision, tat = gcra(self._tats.get(full_key, now), now, rule)
        if len(self._tats) >= self._max_keys:
            self._evict(now)
        self._tats[full_key] = tat
        return decision

    async def peek(self, key: str, rule: Rule, now: float) -> Decision:
        return gcra(self._tats.get(f"{rule.name}:{key}", now), now, rule)[0]

    def _evict(self, now: float) -> None:
        """Drop keys whose TAT has passed: they carry no state any more."""
        for stale in [key for key, tat in self._tats.items() if tat <= now]:
            del self._tats[stale]
