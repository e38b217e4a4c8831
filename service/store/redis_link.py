"""How the stores talk to Redis: one small interface, a lean single-node path and the Cluster.

Every request of the hot paths (refresh, login, token exchange) makes two to five Redis calls,
and redis-py's general command path (pool checkout with connection probing, retry wrapper, a
task per timed write, Python packing, observability hooks) cost three times what the command
costs on the wire: ~125 µs of CPU per call under load against ~40 µs (docs/PERFORMANCE.md).
So, against a single Redis node, :class:`DirectLink` drives redis-py's own asyncio
``Connection`` objects itself:

- a LIFO list of idle connections (no probing at checkout), opened on demand up to a cap;
- commands packed by hiredis, one write and one read per call, the whole round trip under one
  ``asyncio.timeout`` (Redis that stops answering is an outage, not a hang);
- scripts by ``EVALSHA``, loaded on ``NOSCRIPT`` (after a Redis restart or ``SCRIPT FLUSH``);
- a connection that fails is closed, never reused; one that Redis closed while it sat idle
  (a restart) is retried once on a fresh connection.

:class:`ClusterLink` sends the same calls through redis-py's ``RedisCluster`` client, which
routes each by its first key (every script here touches one hash slot).

Both raise :class:`StorageUnavailable` when Redis cannot be reached, so callers answer 503.
Replies are Redis's own values: ``bytes``, ``int``, lists, ``None`` (the Cluster client may
return a ``dict`` for ``HGETALL`` and a ``set`` for ``SMEMBERS``; callers accept both).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import hiredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import ClusterDownError, NoScriptError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.store.base import StorageUnavailable

__all__ = ["ClusterLink", "DirectLink", "LuaScript", "RedisLink", "connect_redis"]

Arg = str | bytes | int | float
_OUTAGE = (RedisConnectionError, RedisTimeoutError, ClusterDownError, OSError, TimeoutError)


class LuaScript:
    """A script's source and its SHA-1 (what ``EVALSHA`` names it by)."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


class RedisLink(Protocol):
    async def run(self, script: LuaScript, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """``EVALSHA`` (loading the script when Redis does not know it)."""
        ...

    async def command(self, *args: Arg) -> Any: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def _pack(*args: Arg) -> bytes:
    # hiredis's stub types the argument as a 1-tuple; it takes any length.
    packed: bytes = hiredis.pack_command(args)  # type: ignore[arg-type]
    return packed


def _unavailable(exc: BaseException) -> StorageUnavailable:
    return StorageUnavailable(f"Redis: {type(exc).__name__}")


class DirectLink:
    """:class:`RedisLink` for one Redis node; see the module docstring."""

    def __init__(
        self,
        new_connection: Callable[[], AbstractConnection],
        *,
        timeout: float = 2.0,
        max_connections: int = 64,
    ) -> None:
        self._new_connection = new_connection
        self._timeout = timeout
        self._max_connections = max_connections
        self._idle: list[AbstractConnection] = []
        self._waiters: collections.deque[asyncio.Future[AbstractConnection]] = collections.deque()
        self._open = 0
        self._closed = False

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 2.0, max_connections: int = 64) -> DirectLink:
        """``redis://``, ``rediss://`` or ``unix://`` URLs, as redis-py reads them (user,
        password, database number, TLS)."""
        pool = ConnectionPool.from_url(
            url, socket_timeout=None, socket_connect_timeout=timeout, decode_responses=False
        )
        factory = pool.connection_class
        kwargs = pool.connection_kwargs
        return cls(lambda: factory(**kwargs), timeout=timeout, max_connections=max_connections)

    async def run(self, script: LuaScript, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        evalsha = _pack("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            return await self._call(evalsha)
        except NoScriptError:
            await self._call(_pack("SCRIPT", "LOAD", script.source))
            return await self._call(evalsha)

    async def command(self, *args: Arg) -> Any:
        return await self._call(_pack(*args))

    async def ping(self) -> None:
        await self.command("PING")

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            await self._discard(connection)
        while self._waiters:
            self._waiters.popleft().cancel()

    async def _call(self, packed: bytes) -> Any:
        for attempt in range(2):
            connection, reused = await self._acquire()
            try:
                async with asyncio.timeout(self._timeout):
                    await connection.send_packed_command(packed, check_health=False)
                    reply = await connection.read_response()
            except ResponseError:
                self._release(connection)  # an error reply: the connection is in step
                raise
            except RedisConnectionError as exc:
                await self._discard(connection)
                if reused and attempt == 0:
                    continue  # closed by Redis while idle (a restart): once more, on a new one
                raise _unavailable(exc) from exc
            except _OUTAGE as exc:
                await self._discard(connection)
                raise _unavailable(exc) from exc
            except BaseException:  # cancelled mid-call: a reply may still be on its way
                await self._discard(connection)
                raise
            self._release(connection)
            return reply
        raise AssertionError("unreachable")  # pragma: no cover

    async def _acquire(self) -> tuple[AbstractConnection, bool]:
        while True:
            if self._closed:
                raise StorageUnavailable("Redis: the connection pool is closed")
            if self._idle:
                return self._idle.pop(), True
            if self._open < self._max_connections:
                break
            waiter: asyncio.Future[AbstractConnection] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                return await waiter, True
            except _SlotFreed:
                continue
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    self._release(waiter.result())  # handed over just as we were cancelled
                raise
        self._open += 1
        connection = self._new_connection()
        try:
            async with asyncio.timeout(self._timeout):
                await connection.connect()  # type: ignore[no-untyped-call]
        except BaseException as exc:
            await self._discard(connection)
            if isinstance(exc, (*_OUTAGE, RedisError)):
                raise _unavailable(exc) from exc
            raise
        return connection, False

    def _release(self, connection: AbstractConnection) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._idle.append(connection)

    async def _discard(self, connection: AbstractConnection) -> None:
        self._open -= 1
        with contextlib.suppress(Exception):
            await connection.disconnect(nowait=True)
        if self._waiters and not self._closed:
            # A waiter may now open a connection of its own: wake one to try.
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(_SlotFreed())


class _SlotFreed(Exception):
    """Internal: wakes a waiter because a connection closed and a new one may be opened."""


class ClusterLink:
    """:class:`RedisLink` over redis-py's ``RedisCluster`` (routing by the first key)."""

    def __init__(self, client: RedisCluster) -> None:
        self._client = client
        self._scripts: dict[str, Any] = {}

    async def run(self, script: LuaScript, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        registered = self._scripts.get(script.sha)
        if registered is None:
            registered = self._scripts[script.sha] = self._client.register_script(script.source)
        try:
            return await registered(keys=list(keys), args=list(args))
        except _OUTAGE as exc:
            raise _unavailable(exc) from exc

    async def command(self, *args: Arg) -> Any:
        try:
            return await self._client.execute_command(*args)
        except _OUTAGE as exc:
            raise _unavailable(exc) from exc

    async def ping(self) -> None:
        await self.command("PING")

    async def close(self) -> None:
        await self._client.aclose()


async def connect_redis(url: str, *, cluster: bool = False, io_timeout: float = 2.0) -> RedisLink:
    """A link for a Redis node, or with ``cluster`` for a Redis Cluster (``url`` names a seed
    node). The Cluster client learns its slot map first: redis-py's cluster client can fail
    concurrent first commands while it connects. A cluster that is down now is tried again on
    first use (requests answer 503 meanwhile)."""
    if not cluster:
        return DirectLink.from_url(url, timeout=io_timeout)
    client = RedisCluster.from_url(
        url, socket_timeout=io_timeout, socket_connect_timeout=io_timeout, decode_responses=False
    )
    with contextlib.suppress(*_OUTAGE):
        await client.initialize()
    return ClusterLink(client)
