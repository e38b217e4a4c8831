"""Rate-limit values shared by the settings, the limiters and the abuse guard.

A :class:`Rule` allows ``limit`` requests per ``period`` seconds; a :class:`Decision` is what a
limiter answers; :class:`RateLimiter` is the port every limiter implements (the GCRA maths in
:mod:`service.ratelimit`, its Lua twin in :mod:`service.store.redis_limits`). Pure values, no I/O.
"""

from __future__ import annotations

import math
from typing import Protocol

import msgspec

__all__ = ["Decision", "RateLimiter", "Rule", "parse_rule"]


class Rule(msgspec.Struct, frozen=True):
    name: str
    limit: int
    period: float

    @property
    def interval(self) -> float:
        return self.period / self.limit

    def policy_header(self) -> str:
        """``RateLimit-Policy`` item (draft-ietf-httpapi-ratelimit-headers)."""
        return f'"{self.name}";q={self.limit};w={math.ceil(self.period)}'


class Decision(msgspec.Struct, frozen=True):
    allowed: bool
    remaining: int
    retry_after: float
    """Seconds until the next request would be allowed (0 when allowed)."""
    reset: float
    """Seconds until the whole quota is available again."""


def parse_rule(name: str, text: str) -> Rule:
    """``"30/60"`` → 30 requests per 60 seconds."""
    limit, slash, period = text.partition("/")
    if not slash:
        raise ValueError("expected LIMIT/SECONDS, e.g. 30/60")
    rule = Rule(name, int(limit), float(period))
    if rule.limit <= 0 or rule.period <= 0:
        raise ValueError("limit and period must be positive")
    return rule


class RateLimiter(Protocol):
    async def hit(self, key: str, rule: Rule, now: float) -> Decision: ...

    async def peek(self, key: str, rule: Rule, now: float) -> Decision:
        """The decision a hit would get, without counting one."""
        ...
