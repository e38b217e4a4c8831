"""Rate limits on Redis: the GCRA step of :func:`service.ratelimit.gcra` as one Lua script on
one key (Cluster-safe), so limits hold across every instance."""

from __future__ import annotations

from service.limits import Decision, Rule
from service.store.redis_link import LuaScript, RedisLink

__all__ = ["RedisRateLimiter"]

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
