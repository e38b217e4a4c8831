"""Rate limits shared by every instance: GCRA (the generic cell rate algorithm).

A rule allows ``limit`` requests per ``period`` seconds with bursts up to ``limit``. The only
state per key is its *theoretical arrival time* (TAT). On Redis the read-modify-write is one
Lua script on one key (Cluster-safe); in the embedded mode a dict in the process does the same,
atomically because the event loop runs one coroutine at a time.
"""

from __future__ import annotations

import math
from typing import Protocol

import msgspec

from service.store.redis_link import LuaScript, RedisLink

__all__ = ["Decision", "MemoryRateLimiter", "RateLimiter", "RedisRateLimiter", "Rule", "parse_rule"]


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


def _decide(tat: float, now: float, rule: Rule) -> tuple[Decision, float]:
    """The GCRA step: the decision and the new TAT (unchanged when refused)."""
    interval, tolerance = rule.interval, rule.period
    base = max(tat, now)
    new_tat = base + interval
    allow_at = new_tat - tolerance
    if allow_at > now:
        return Decision(False, 0, allow_at - now, base - now), tat
    remaining = int((tolerance - (new_tat - now)) // interval)
    return Decision(True, max(remaining, 0), 0.0, new_tat - now), new_tat


class RateLimiter(Protocol):
    async def hit(self, key: str, rule: Rule, now: float) -> Decision: ...

    async def peek(self, key: str, rule: Rule, now: float) -> Decision:
        """The decision a hit would get, without counting one."""
        ...


class MemoryRateLimiter:
    """Per-process limiter for the embedded mode (one instance)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._tats: dict[str, float] = {}
        self._max_keys = max_keys

    async def hit(self, key: str, rule: Rule, now: float) -> Decision:
        full_key = f"{rule.name}:{key}"
        decision, tat = _decide(self._tats.get(full_key, now), now, rule)
        if len(self._tats) >= self._max_keys:
            self._evict(now)
        self._tats[full_key] = tat
        return decision

    async def peek(self, key: str, rule: Rule, now: float) -> Decision:
        return _decide(self._tats.get(f"{rule.name}:{key}", now), now, rule)[0]

    def _evict(self, now: float) -> None:
        """Drop keys whose TAT has passed: they carry no state any more."""
        for stale in [key for key, tat in self._tats.items() if tat <= now]:
            del self._tats[stale]


# KEYS[1] = the key; ARGV = now, interval, tolerance, count (1 = hit, 0 = peek).
# Returns {allowed, remaining, retry_after, reset} with times as strings (Lua numbers lose floats).
_GCRA = LuaScript("""
local now, interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
local base = math.max(tat, now)
local new_tat = base + interval
local allow_at = new_tat - tolerance
if allow_at > now then
  return {0, 0, tostring(allow_at - now), tostring(base - now)}
end
if ARGV[4] == '1' then
  redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000))
end
local remaining = math.floor((tolerance - (new_tat - now)) / interval)
return {1, math.max(remaining, 0), '0', tostring(new_tat - now)}
""")


class RedisRateLimiter:
    """Limiter shared by every instance through Redis: one Lua script, one key per decision."""

    def __init__(self, link: RedisLink, prefix: str = "idp:") -> None:
        self._link = link
        self._prefix = prefix

    async def _run(self, key: str, rule: Rule, now: float, count: bool) -> Decision:
        args = [repr(now), repr(rule.interval), repr(rule.period), "1" if count else "0"]
        reply = await self._link.run(_GCRA, [f"{self._prefix}rl:{rule.name}:{{{key}}}"], args)
        allowed, remaining, retry_after, reset = reply
        return Decision(bool(allowed), int(remaining), float(retry_after), float(reset))

    async def hit(self, key: str, rule: Rule, now: float) -> Decision:
        return await self._run(key, rule, now, count=True)

    async def peek(self, key: str, rule: Rule, now: float) -> Decision:
        return await self._run(key, rule, now, count=False)
