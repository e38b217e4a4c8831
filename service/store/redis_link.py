"""How the stores talk to Redis: one small interface, a lean single-node path and the Cluster.

Every request of the hot paths (refresh, login, token exchange) makes two to five Redis calls,
and redis-py's general command path (pool checkout with connection probing, retry wrapper, a
task per timed write, Python packing, observability hooks) cost three times what the command
costs on the wire: ~125 µs of CPU per call under load against ~40 µs (docs/PERFORMANCE.md).
So, against a single Redis node, :class:`DirectLink` drives one of redis-py's own asyncio
``Connection`` objects itself and pipelines every call over it: the calls made while the event
loop runs one iteration go out in one write (packed by hiredis), and a reader task hands the
replies back in order. Scripts run by ``EVALSHA`` and are loaded on ``NOSCRIPT`` (after a
Redis restart or ``SCRIPT FLUSH``).

:class:`ClusterLink` sends the same calls through redis-py's ``RedisCluster`` client, which
routes each by its first key (every script here touches one hash slot).

Both raise :class:`StorageUnavailable` when Redis cannot be reached, so callers answer 503,
and both return Redis's own reply shapes: ``bytes``, ``int``, lists, ``None`` (redis-py's
cluster client parses some replies; :class:`ClusterLink` turns those back). The contract is
``tests/contract/test_redis_link.py``, run over both.
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
    """:class:`RedisLink` for one Redis node, pipelining every call over one connection.

    Calls made while the event loop runs one iteration are written together in one write; a
    reader task hands the replies back in order (Redis answers each connection in order). Under
    load a batch holds the Redis calls of many requests, so the write and read system calls
    and the wake-ups are shared; alone, a call costs one extra loop iteration.

    A connection that fails (reset, end of stream, a call unanswered for ``timeout`` seconds,
    which one watchdog timer notices) is closed at once: the calls sent on it fail with
    :class:`StorageUnavailable` (their effect is unknown, as with any lost reply), calls not
    yet sent go out on a new connection.
    """

    def __init__(self, new_connection: Callable[[], AbstractConnection], *, timeout: float = 2.0) -> None:
        self._new_connection = new_connection
        self._timeout = timeout
        self._queued: list[tuple[bytes, asyncio.Future[Any]]] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._sent: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        """Calls written and not yet answered, oldest first, with the time they must be by."""
        self._watchdog: asyncio.TimerHandle | None = None
        self._stalled = False
        self._closed = False

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 2.0) -> DirectLink:
        """``redis://``, ``rediss://`` or ``unix://`` URLs, as redis-py reads them (user,
        password, database number, TLS)."""
        # RESP2: Redis's replies as lists (a hash is a flat field/value list, a set a list), the
        # shapes ClusterLink returns too; redis-py 8 would negotiate RESP3 maps and sets.
        pool = ConnectionPool.from_url(
            url, socket_timeout=None, socket_connect_timeout=timeout, decode_responses=False, protocol=2
        )
        factory = pool.connection_class
        kwargs = pool.connection_kwargs
        return cls(lambda: factory(**kwargs), timeout=timeout)

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
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        self._fail([future for _, future in self._queued], StorageUnavailable("Redis: link closed"))
        self._queued.clear()

    async def _call(self, packed: bytes) -> Any:
        if self._closed:
            raise StorageUnavailable("Redis: link closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued.append((packed, future))
        self._wake.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_forever(), name="redis-link-writer")
        reply = await future  # bounded by the watchdog, not a timer per call
        if isinstance(reply, BaseException):
            raise reply
        return reply

    async def _write_forever(self) -> None:
        """Connect when there is something to send, send what is queued, repeat."""
        connection: AbstractConnection | None = None
        reader: asyncio.Task[None] | None = None
        sent = self._sent
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._stalled or (reader is not None and reader.done()):
                    stalled, self._stalled = self._stalled, False
                    error = StorageUnavailable(f"Redis: no answer in {self._timeout:g}s") if stalled else None
                    connection, reader = await self._drop(connection, reader, error)
                if not self._queued:
                    continue
                if connection is None:
                    try:
                        connection = await self._connect()
                    except StorageUnavailable as exc:
                        queued, self._queued = self._queued, []
                        self._fail([future for _, future in queued], exc)
                        continue
                    reader = asyncio.create_task(self._read_forever(connection))
                batch, self._queued = self._queued, []
                deadline = loop.time() + self._timeout
                if self._watchdog is None:
                    self._watchdog = loop.call_at(deadline, self._watch)
                sent.extend((future, deadline) for _, future in batch)
                try:
                    await connection.send_packed_command([packed for packed, _ in batch], check_health=False)
                except (RedisError, OSError) as exc:
                    connection, reader = await self._drop(connection, reader, _unavailable(exc))
        finally:
            await self._drop(connection, reader, StorageUnavailable("Redis: link closed"))

    def _watch(self) -> None:
        """The watchdog: a call sent more than ``timeout`` ago and still unanswered means the
        connection is stuck; the writer drops it (failing what was sent on it)."""
        self._watchdog = None
        if not self._sent:
            return
        loop = asyncio.get_running_loop()
        oldest = self._sent[0][1]
        if oldest <= loop.time():
            self._stalled = True
            self._wake.set()
        else:
            self._watchdog = loop.call_at(oldest, self._watch)

    async def _read_forever(self, connection: AbstractConnection) -> None:
        sent = self._sent
        while True:
            try:
                reply: Any = await connection.read_response()
            except ResponseError as error:  # an error reply: the connection stays in step
                reply = error
            except (RedisError, OSError):
                self._wake.set()  # the writer drops this connection and fails what was sent
                return
            if sent:
                future = sent.popleft()[0]
                if not future.done():  # its caller may have been cancelled
                    future.set_result(reply)

    async def _connect(self) -> AbstractConnection:
        connection = self._new_connection()
        try:
            async with asyncio.timeout(self._timeout):
                await connection.connect()  # type: ignore[no-untyped-call]
        except (*_OUTAGE, RedisError) as exc:
            with contextlib.suppress(Exception):
                await connection.disconnect(nowait=True)
            raise _unavailable(exc) from exc
        return connection

    async def _drop(
        self,
        connection: AbstractConnection | None,
        reader: asyncio.Task[None] | None,
        error: StorageUnavailable | None = None,
    ) -> tuple[None, None]:
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.disconnect(nowait=True)
        self._fail(
            [future for future, _ in self._sent], error or StorageUnavailable("Redis: connection lost")
        )
        self._sent.clear()
        return None, None

    @staticmethod
    def _fail(futures: Sequence[asyncio.Future[Any]], error: StorageUnavailable) -> None:
        for future in futures:
            if not future.done():
                future.set_exception(error)


def _flat(mapping: dict[Any, Any]) -> list[Any]:
    return [item for pair in mapping.items() for item in pair]


# The commands the stores send whose replies redis-py's cluster client parses, back to Redis's
# own shapes (what DirectLink returns). A command not listed here keeps redis-py's reply: the
# link contract test fails if that is not Redis's own.
_RAW_REPLY: dict[str, Callable[[Any], Any]] = {
    "HGETALL": _flat,
    "SMEMBERS": list,
    "SET": lambda reply: b"OK" if reply else None,
    "PING": lambda reply: b"PONG" if reply else reply,
}


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
            reply = await self._client.execute_command(*args)
        except _OUTAGE as exc:
            raise _unavailable(exc) from exc
        raw = _RAW_REPLY.get(str(args[0]).upper())
        return reply if raw is None else raw(reply)

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
