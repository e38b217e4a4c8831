"""Refresh families on Redis. Every state change is one Lua script, registered once.

Keys (``{…}`` is the Redis Cluster hash tag, so each script touches one slot):

- ``<prefix>rf:{<family>}``       hash: the family, the hash of its current token and the
  account claims snapshot (``claims``: ``["<email>", ["<role>", …]]``)
- ``<prefix>rf:{<family>}:used``  hash: used token hash → ``<rotated_at>`` (reuse detection)
- ``<prefix>rf:{<family>}:s:<hash>`` string: the successor sealed under that used token, kept
  for the grace window (+ ``SEALED_MARGIN``) only: a long session does not pile up ~1 KB per
  refresh
- ``<prefix>uf:{<user>}``         set: the user's family ids (an index; members may be stale)

Both family keys expire at the family's absolute or idle expiry, whichever is first, so
expired sessions vanish by themselves. Times come from the injected clock via ARGV.
"""

from __future__ import annotations

import asyncio
import base64
import math
from uuid import UUID

import msgspec

from service.store.redis_link import LuaScript, RedisLink, connect_redis
from service.store.sessions import AccountClaims, Family, NewFamily, RotateResult

__all__ = ["SEALED_MARGIN", "RedisFamilyStore", "RedisReplayCache", "connect_redis"]

SEALED_MARGIN = 60.0
"""Seconds a sealed successor outlives the grace window in Redis (clock skew between
instances and Redis); the script's own time check decides grace."""

_CREATE = LuaScript("""
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1
""")

# The user's family index: add, and keep it until the last family's absolute expiry.
_INDEX = LuaScript("""
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[2], 'GT')
redis.call('PEXPIREAT', KEYS[1], ARGV[2], 'NX')
return 1
""")

# Only a family that still exists gets the new snapshot (HSET would recreate a deleted one).
_SET_CLAIMS = LuaScript("""
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'claims', ARGV[1])
return 1
""")

# KEYS: family, used, the presented token's sealed-successor key. ARGV: presented hash,
# successor hash, sealed successor, now, grace, how long the sealed successor is kept (ms).
# Returns {outcome, payload}; payload: the sealed successor (grace). A used entry is "<rotated_at>".
_ROTATE = LuaScript("""
local fam, used, held = KEYS[1], KEYS[2], KEYS[3]
local presented, successor, sealed = ARGV[1], ARGV[2], ARGV[3]
local now, grace = tonumber(ARGV[4]), tonumber(ARGV[5])
local f = redis.call('HMGET', fam, 'cur', 'last', 'abs', 'idle')
if not f[1] then return {'invalid'} end
local last, abs, idle = tonumber(f[2]), tonumber(f[3]), tonumber(f[4])
if now >= abs or now >= last + idle then
  redis.call('DEL', fam, used)
  return {'invalid'}
end
if f[1] == presented then
  redis.call('HSET', used, presented, ARGV[4])
  redis.call('SET', held, sealed, 'PX', ARGV[6])
  redis.call('HSET', fam, 'cur', successor, 'last', ARGV[4])
  local expire_ms = math.floor(math.min(abs, now + idle) * 1000)
  redis.call('PEXPIREAT', fam, expire_ms)
  redis.call('PEXPIREAT', used, expire_ms)
  return {'rotated'}
end
local entry = redis.call('HGET', used, presented)
if not entry then return {'invalid'} end
if now - tonumber(entry) <= grace then
  local kept = redis.call('GET', held)
  if not kept then return {'invalid'} end
  return {'grace', kept}
end
redis.call('DEL', fam, used)
return {'reuse'}
""")

_OWNS = LuaScript("""
local cur = redis.call('HGET', KEYS[1], 'cur')
if not cur then return 0 end
if cur == ARGV[1] then return 1 end
if ARGV[2] == '1' then return 0 end
return redis.call('HEXISTS', KEYS[2], ARGV[1])
""")

_REVOKE = LuaScript("""
local fields = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
return fields
""")


_CLAIMS = msgspec.json.Decoder(AccountClaims)


def _field(value: str | None) -> str:
    return "" if value is None else value


def _family(family_id: str, raw: list[bytes]) -> Family | None:
    """A family from a flat field/value list (HGETALL, or a script's reply)."""
    text = {key.decode(): value.decode() for key, value in zip(raw[::2], raw[1::2], strict=True)}
    if not text:
        return None
    return Family(
        id=family_id,
        user_id=UUID(text["user"]),
        client_id=text["client"] or None,
        scope=text["scope"] or None,
        origin=text["origin"],
        user_agent=text["ua"] or None,
        created_at=float(text["created"]),
        last_used_at=float(text["last"]),
        absolute_expires_at=float(text["abs"]),
        idle_ttl=float(text["idle"]),
        claims=_CLAIMS.decode(text["claims"]),
        amr=tuple(text.get("amr", "").split()),
        auth_time=float(text["at"]) if text.get("at") else None,
    )


class RedisFamilyStore:
    """:class:`service.store.sessions.FamilyStore` on Redis (single node or Cluster)."""

    def __init__(self, link: RedisLink, prefix: str = "idp:") -> None:
        self._link = link
        self._prefix = prefix

    def _keys(self, family_id: str) -> list[str]:
        family_key = f"{self._prefix}rf:{{{family_id}}}"
        return [family_key, f"{family_key}:used"]

    def _user_key(self, user_id: UUID) -> str:
        return f"{self._prefix}uf:{{{user_id}}}"

    async def create_family(self, family: NewFamily) -> None:
        fields = {
            "user": str(family.user_id),
            "client": _field(family.client_id),
            "scope": _field(family.scope),
            "origin": family.origin,
            "ua": _field(family.user_agent),
            "cur": family.token_hash,
            "created": repr(family.created_at),
            "last": repr(family.created_at),
            "abs": repr(family.absolute_expires_at),
            "idle": repr(family.idle_ttl),
            "claims": msgspec.json.encode(family.claims).decode(),
            "amr": " ".join(family.amr),
            "at": "" if family.auth_time is None else repr(family.auth_time),
        }
        expire_ms = int(min(family.absolute_expires_at, family.created_at + family.idle_ttl) * 1000)
        args: list[str | int] = [expire_ms]
        for name, value in fields.items():
            args.extend((name, value))
        # Two slots (family, user index), so two scripts, sent together. The index may name a
        # family that failed to be written: its members are checked when read.
        await asyncio.gather(
            self._link.run(_CREATE, self._keys(family.id)[:1], args),
            self._link.run(
                _INDEX, [self._user_key(family.user_id)], [family.id, int(family.absolute_expires_at * 1000)]
            ),
        )

    async def get_family(self, family_id: str, now: float) -> Family | None:
        family = _family(family_id, await self._link.command("HGETALL", self._keys(family_id)[0]))
        if family is None or now >= family.expires_at:
            return None
        return family

    async def rotate(
        self,
        family_id: str,
        *,
        presented_hash: str,
        successor_hash: str,
        sealed_successor: bytes,
        now: float,
        grace: float,
    ) -> RotateResult:
        args: list[bytes | str | int] = [
            presented_hash,
            successor_hash,
            base64.b64encode(sealed_successor),
            repr(now),
            repr(grace),
        ]
        family_key, used_key = self._keys(family_id)
        held_key = f"{family_key}:s:{presented_hash}"
        args.append(math.ceil((grace + SEALED_MARGIN) * 1000))
        reply = await self._link.run(_ROTATE, [family_key, used_key, held_key], args)
        outcome = reply[0].decode()
        if outcome == "grace":
            return RotateResult("grace", sealed=base64.b64decode(reply[1]))
        return RotateResult(outcome)

    async def owns_token(
        self, family_id: str, token_hash: str, now: float, *, current_only: bool = False
    ) -> bool:
        if await self.get_family(family_id, now) is None:
            return False
        args = [token_hash, "1" if current_only else "0"]
        return bool(await self._link.run(_OWNS, self._keys(family_id), args))

    async def revoke_family(self, family_id: str) -> Family | None:
        family = _family(family_id, await self._link.run(_REVOKE, self._keys(family_id), []))
        if family is not None:
            await self._link.command("SREM", self._user_key(family.user_id), family_id)
        return family

    async def _members(self, user_id: UUID) -> list[str]:
        return sorted(
            member.decode() for member in await self._link.command("SMEMBERS", self._user_key(user_id))
        )

    # The calls for a user's families are made together: one write and one round trip on a
    # single node (DirectLink pipelines them), concurrent on a cluster.

    async def list_families(self, user_id: UUID, now: float) -> list[Family]:
        found = await asyncio.gather(
            *(self.get_family(member, now) for member in await self._members(user_id))
        )
        families = [family for family in found if family is not None and family.user_id == user_id]
        families.sort(key=lambda f: f.created_at)
        return families

    async def update_claims(self, user_id: UUID, claims: AccountClaims) -> int:
        encoded = msgspec.json.encode(claims)
        members = await self._members(user_id)
        updated = await asyncio.gather(
            *(self._link.run(_SET_CLAIMS, [self._keys(member)[0]], [encoded]) for member in members)
        )
        return sum(int(count) for count in updated)

    async def revoke_user_families(self, user_id: UUID, keep: str | None = None) -> list[Family]:
        members = [family_id for family_id in await self._members(user_id) if family_id != keep]
        revoked = await asyncio.gather(*(self.revoke_family(family_id) for family_id in members))
        return [family for family in revoked if family is not None]

    async def ping(self) -> None:
        await self._link.ping()

    async def close(self) -> None:
        await self._link.close()


class RedisReplayCache:
    """:class:`service.store.exchange.ReplayCache`: one ``SET NX PXAT`` per fingerprint."""

    def __init__(self, link: RedisLink, prefix: str = "idp:") -> None:
        self._link = link
        self._prefix = prefix

    def _key(self, fingerprint: str) -> str:
        return f"{self._prefix}xr:{{{fingerprint}}}"

    async def remember(self, fingerprint: str, *, expires_at: float, now: float) -> bool:
        if expires_at <= now:
            return False
        key = self._key(fingerprint)
        return bool(await self._link.command("SET", key, b"1", "NX", "PXAT", int(expires_at * 1000)))

    async def forget(self, fingerprint: str) -> None:
        await self._link.command("DEL", self._key(fingerprint))
