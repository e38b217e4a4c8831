"""Refresh families on Redis. Every state change is one Lua script, registered once.

Keys (``{…}`` is the Redis Cluster hash tag, so each script touches one slot):

- ``<prefix>rf:{<family>}``       hash: the family, the hash of its current token and the
  account claims snapshot (``claims``: ``["<email>", ["<role>", …]]``)
- ``<prefix>rf:{<family>}:used``  hash: used token hash → ``<rotated_at>|<sealed successor>``
- ``<prefix>uf:{<user>}``         set: the user's family ids (an index; members may be stale)

Both family keys expire at the family's absolute or idle expiry, whichever is first, so
expired sessions vanish by themselves. Times come from the injected clock via ARGV.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ClusterDownError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.store.base import StorageUnavailable
from service.store.sessions import AccountClaims, Family, NewFamily, RotateResult

__all__ = ["RedisClient", "RedisFamilyStore", "RedisReplayCache", "connect_redis", "open_redis"]

T = TypeVar("T")
RedisClient = aioredis.Redis | RedisCluster

_CREATE = """
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1
"""

# The user's family index: add, and keep it until the last family's absolute expiry.
_INDEX = """
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[2], 'GT')
redis.call('PEXPIREAT', KEYS[1], ARGV[2], 'NX')
return 1
"""

# Only a family that still exists gets the new snapshot (HSET would recreate a deleted one).
_SET_CLAIMS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'claims', ARGV[1])
return 1
"""

# Returns {outcome, payload}; payload: sealed successor (grace) or the family fields (reuse).
_ROTATE = """
local fam, used = KEYS[1], KEYS[2]
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
  redis.call('HSET', used, presented, ARGV[4] .. '|' .. sealed)
  redis.call('HSET', fam, 'cur', successor, 'last', ARGV[4])
  local expire_ms = math.floor(math.min(abs, now + idle) * 1000)
  redis.call('PEXPIREAT', fam, expire_ms)
  redis.call('PEXPIREAT', used, expire_ms)
  return {'rotated'}
end
local entry = redis.call('HGET', used, presented)
if not entry then return {'invalid'} end
local sep = string.find(entry, '|', 1, true)
local rotated_at = tonumber(string.sub(entry, 1, sep - 1))
if now - rotated_at <= grace then
  return {'grace', string.sub(entry, sep + 1)}
end
local fields = redis.call('HGETALL', fam)
redis.call('DEL', fam, used)
return {'reuse', fields}
"""

_OWNS = """
local cur = redis.call('HGET', KEYS[1], 'cur')
if not cur then return 0 end
if cur == ARGV[1] then return 1 end
if ARGV[2] == '1' then return 0 end
return redis.call('HEXISTS', KEYS[2], ARGV[1])
"""

_REVOKE = """
local fields = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
return fields
"""


def open_redis(url: str, *, cluster: bool = False) -> RedisClient:
    """A client that fails fast (so callers answer 503) and reconnects by itself; with
    ``cluster`` a Redis Cluster client (every script here touches one hash slot)."""
    if cluster:
        return RedisCluster.from_url(url, socket_timeout=2, socket_connect_timeout=2, decode_responses=False)
    return aioredis.Redis.from_url(
        url,
        socket_timeout=2,
        socket_connect_timeout=2,
        health_check_interval=15,
        decode_responses=False,
    )


async def connect_redis(url: str, *, cluster: bool = False) -> RedisClient:
    """:func:`open_redis`, and for a cluster, learn its slot map before the first commands:
    redis-py's cluster client can fail concurrent first commands while it connects. A cluster
    that is down now is tried again on first use (requests answer 503 meanwhile)."""
    client = open_redis(url, cluster=cluster)
    if isinstance(client, RedisCluster):
        with contextlib.suppress(RedisConnectionError, RedisTimeoutError, ClusterDownError, OSError):
            await client.initialize()
    return client


_CLAIMS = msgspec.json.Decoder(AccountClaims)


def _field(value: str | None) -> str:
    return "" if value is None else value


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _family(family_id: str, raw: Any) -> Family | None:
    """A family from HGETALL (a dict) or from a script's flat field/value list."""
    pairs = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2], strict=True)
    text = {_text(key): _text(value) for key, value in pairs}
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
        claims=_CLAIMS.decode(text["claims"]) if "claims" in text else None,
    )


class RedisFamilyStore:
    """:class:`service.store.sessions.FamilyStore` on Redis (single node or Cluster)."""

    def __init__(self, client: RedisClient, prefix: str = "idp:") -> None:
        self._redis = client
        self._prefix = prefix
        self._create = client.register_script(_CREATE)
        self._rotate = client.register_script(_ROTATE)
        self._owns = client.register_script(_OWNS)
        self._revoke = client.register_script(_REVOKE)
        self._index = client.register_script(_INDEX)
        self._set_claims = client.register_script(_SET_CLAIMS)

    def _keys(self, family_id: str) -> list[str]:
        family_key = f"{self._prefix}rf:{{{family_id}}}"
        return [family_key, f"{family_key}:used"]

    def _user_key(self, user_id: UUID) -> str:
        return f"{self._prefix}uf:{{{user_id}}}"

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        try:
            return await operation()
        except (RedisConnectionError, RedisTimeoutError, ClusterDownError, OSError) as exc:
            raise StorageUnavailable(f"Redis: {type(exc).__name__}") from exc

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
        }
        expire_ms = int(min(family.absolute_expires_at, family.created_at + family.idle_ttl) * 1000)
        args: list[Any] = [expire_ms]
        for name, value in fields.items():
            args.extend((name, value))
        index_args: list[str | int] = [family.id, int(family.absolute_expires_at * 1000)]

        async def create() -> None:
            # Two slots (family, user index), so two scripts; a Cluster-safe pair of round trips.
            await self._create(keys=self._keys(family.id)[:1], args=args)
            await self._index(keys=[self._user_key(family.user_id)], args=index_args)

        await self._call(create)

    async def get_family(self, family_id: str, now: float) -> Family | None:
        raw = await self._call(lambda: self._redis.hgetall(self._keys(family_id)[0]))
        family = _family(family_id, raw)
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
        args: list[bytes | str] = [
            presented_hash,
            successor_hash,
            base64.b64encode(sealed_successor),
            repr(now),
            repr(grace),
        ]
        reply = await self._call(lambda: self._rotate(keys=self._keys(family_id), args=args))
        outcome = reply[0].decode()
        if outcome == "grace":
            return RotateResult("grace", sealed=base64.b64decode(reply[1]))
        if outcome == "reuse":
            return RotateResult("reuse", family=_family(family_id, reply[1]))
        return RotateResult(outcome)

    async def owns_token(
        self, family_id: str, token_hash: str, now: float, *, current_only: bool = False
    ) -> bool:
        if await self.get_family(family_id, now) is None:
            return False
        args = [token_hash, "1" if current_only else "0"]
        return bool(await self._call(lambda: self._owns(keys=self._keys(family_id), args=args)))

    async def revoke_family(self, family_id: str) -> Family | None:
        raw = await self._call(lambda: self._revoke(keys=self._keys(family_id), args=[]))
        family = _family(family_id, raw)
        if family is not None:
            await self._call(lambda: self._redis.srem(self._user_key(family.user_id), family_id))
        return family

    async def list_families(self, user_id: UUID, now: float) -> list[Family]:
        members = await self._call(lambda: self._redis.smembers(self._user_key(user_id)))
        families = []
        for member in sorted(members):
            family = await self.get_family(_text(member), now)
            if family is not None and family.user_id == user_id:
                families.append(family)
        families.sort(key=lambda f: f.created_at)
        return families

    async def update_claims(self, user_id: UUID, claims: AccountClaims) -> int:
        members = await self._call(lambda: self._redis.smembers(self._user_key(user_id)))
        encoded = msgspec.json.encode(claims)
        keys = [self._keys(_text(member))[0] for member in sorted(members)]

        async def update() -> int:
            return sum([int(await self._set_claims(keys=[key], args=[encoded])) for key in keys])

        return await self._call(update)

    async def revoke_user_families(self, user_id: UUID, keep: str | None = None) -> list[Family]:
        members = await self._call(lambda: self._redis.smembers(self._user_key(user_id)))
        revoked = []
        for member in sorted(members):
            family_id = _text(member)
            if family_id == keep:
                continue
            family = await self.revoke_family(family_id)
            if family is not None:
                revoked.append(family)
        return revoked

    async def ping(self) -> None:
        await self._call(self._redis.ping)

    async def close(self) -> None:
        await self._redis.aclose()


class RedisReplayCache:
    """:class:`service.store.exchange.ReplayCache`: one ``SET NX PXAT`` per fingerprint."""

    def __init__(self, client: RedisClient, prefix: str = "idp:") -> None:
        self._redis = client
        self._prefix = prefix

    def _key(self, fingerprint: str) -> str:
        return f"{self._prefix}xr:{{{fingerprint}}}"

    async def remember(self, fingerprint: str, *, expires_at: float, now: float) -> bool:
        if expires_at <= now:
            return False
        try:
            stored = await self._redis.set(self._key(fingerprint), b"1", nx=True, pxat=int(expires_at * 1000))
        except (RedisConnectionError, RedisTimeoutError, ClusterDownError, OSError) as exc:
            raise StorageUnavailable(f"Redis: {type(exc).__name__}") from exc
        return bool(stored)

    async def forget(self, fingerprint: str) -> None:
        try:
            await self._redis.delete(self._key(fingerprint))
        except (RedisConnectionError, RedisTimeoutError, ClusterDownError, OSError) as exc:
            raise StorageUnavailable(f"Redis: {type(exc).__name__}") from exc
