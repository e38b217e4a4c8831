"""How the stores talk to Redis: one small interface, a lean single-node path and the Cluster.

Every request of the hot paths (refresh, login, token exchange) makes two to five Redis calls,
and redis-py's general command path (pool checkout with connection probing, retry wrapper, a
task per timed write, Python packing, observability hooks) cost three times what the command
costs on the wire: ~125 µs of CPU per call under load against ~40 µs (docs/PERFORMANCE.md).
So, against a single Redis node, :class:`DirectLink` has redis-py's own asyncio
``Connection`` connect and make the handshake, then drives the socket itself and pipelines
every call over it: the calls made while the event loop runs one iteration go out in one write
(packed by hiredis), and the connection's data callback parses the replies (hiredis) and hands
them back in order. Scripts run by ``EVALSHA`` and are loaded on ``NOSCRIPT`` (after a
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
from typing import Any, Protocol, cast

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


class _Replies(asyncio.Protocol):
    """One connection's read side: hiredis parses the bytes as they arrive, each reply goes to
    the oldest call still owed one (Redis answers a connection in order), in the data callback
    itself: no reader task, no coroutine step per reply."""

    def __init__(self, on_lost: Callable[[_Replies], None]) -> None:
        self.transport: asyncio.Transport | None = None
        self.sent: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        """Calls written on this connection and not yet answered, oldest first, with the time
        they must be answered by."""
        self._parser = hiredis.Reader()
        self._on_lost = on_lost
        self._stream: asyncio.StreamWriter | None = None

    def adopt(self, writer: asyncio.StreamWriter) -> None:
        """Take over the transport of a connection whose handshake redis-py made (nothing is
        left unread on it). The writer is kept: a collected StreamWriter closes its transport."""
        self._stream = writer
        writer.transport.set_protocol(self)
        self.transport = cast(asyncio.Transport, writer.transport)

    def data_received(self, data: bytes) -> None:
        parser, sent = self._parser, self.sent
        parser.feed(data)
        try:
            while (reply := parser.gets()) is not False:
                if not sent:  # a reply nobody asked for: this connection is out of step
                    self.close()
                    return
                future = sent.popleft()[0]
                if not future.done():  # its caller may have been cancelled
                    future.set_result(_error(reply) if isinstance(reply, hiredis.ReplyError) else reply)
        except hiredis.ProtocolError:  # not RESP: nothing more on this connection can be trusted
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_lost(self)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def _error(reply: hiredis.ReplyError) -> ResponseError:
    """An error reply as redis-py raises it (NOSCRIPT: the script cache lost the script)."""
    message = str(reply)
    if message.startswith("NOSCRIPT "):
        return NoScriptError(message.removeprefix("NOSCRIPT "))
    return ResponseError(message)


class DirectLink:
    """:class:`RedisLink` for one Redis node, pipelining every call over one connection.

    Calls made while the event loop runs one iteration are written together in one write, at
    the start of the next; replies are parsed in the connection's data callback and handed back
    in order. Under load a batch holds the Redis calls of many requests, so the write and read
    system calls and the wake-ups are shared; alone, a call costs one extra loop iteration.
    redis-py's ``Connection`` makes the connection and its handshake (URL, TLS, AUTH, SELECT);
    after that the connection's transport is driven here.

    A connection that fails (reset, end of stream, a call unanswered for ``timeout`` seconds,
    which one watchdog timer notices) is closed at once: the calls sent on it fail with
    :class:`StorageUnavailable` (their effect is unknown, as with any lost reply), calls not
    yet sent go out on a new connection.
    """

    def __init__(self, new_connection: Callable[[], AbstractConnection], *, timeout: float = 2.0) -> None:
        self._new_connection = new_connection
        self._timeout = timeout
        self._out: list[bytes] = []
        self._waiting: list[asyncio.Future[Any]] = []
        """Calls not yet written, in order, and their packed commands in ``_out``."""
        self._flush_handle: asyncio.Handle | None = None
        self._connection: _Replies | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._watchdog: asyncio.TimerHandle | None = None
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
        for handle in (self._watchdog, self._flush_handle):
            if handle is not None:
                handle.cancel()
        self._watchdog = self._flush_handle = None
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        if self._connection is not None:
            self._connection.close()
            self._lost(self._connection)
        waiting, self._out, self._waiting = self._waiting, [], []
        self._fail(waiting, StorageUnavailable("Redis: link closed"))

    async def _call(self, packed: bytes) -> Any:
        if self._closed:
            raise StorageUnavailable("Redis: link closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._out.append(packed)
        self._waiting.append(future)
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)
        reply = await future  # bounded by the watchdog, not a timer per call
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def _flush(self) -> None:
        """Write every call made since the last write, in one write (connecting first if need be)."""
        self._flush_handle = None
        if not self._waiting or self._closed:
            return
        connection = self._connection
        if connection is None or connection.transport is None or connection.transport.is_closing():
            if self._connecting is None:
                self._connecting = asyncio.create_task(self._connect(), name="redis-link-connect")
            return
        out, waiting = self._out, self._waiting
        self._out, self._waiting = [], []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        connection.sent.extend((future, deadline) for future in waiting)
        if self._watchdog is None:
            self._watchdog = loop.call_at(deadline, self._watch)
        connection.transport.write(b"".join(out))

    async def _connect(self) -> None:
        """A new connection for the calls waiting; they fail if Redis cannot be reached."""
        try:
            self._connection = await self._open()
        except StorageUnavailable as exc:
            waiting, self._out, self._waiting = self._waiting, [], []
            self._fail(waiting, exc)
        finally:
            self._connecting = None
        self._flush()

    async def _open(self) -> _Replies:
        connection = self._new_connection()
        try:
            async with asyncio.timeout(self._timeout):
                await connection.connect()  # type: ignore[no-untyped-call]
        except (*_OUTAGE, RedisError) as exc:
            with contextlib.suppress(Exception):
                await connection.disconnect(nowait=True)
            raise _unavailable(exc) from exc
        # redis-py's streams, once its handshake has read every reply it asked for.
        # redis-py has no public way to hand over the socket.
        writer = connection._writer
        if writer is None:
            raise StorageUnavailable("Redis: no connection after the handshake")
        connection._reader = connection._writer = None  # ours now: redis-py must not close it
        replies = _Replies(self._lost)
        replies.adopt(writer)
        return replies

    def _lost(self, connection: _Replies, error: StorageUnavailable | None = None) -> None:
        """A connection ended (closed, reset, end of stream, dropped by the watchdog): what was
        sent on it fails; the next call connects again."""
        if self._connection is connection:
            self._connection = None
        sent = [future for future, _ in connection.sent]
        connection.sent.clear()
        self._fail(sent, error or StorageUnavailable("Redis: connection lost"))

    def _watch(self) -> None:
        """The watchdog: a call sent more than ``timeout`` ago and still unanswered means the
        connection is stuck; drop it (failing what was sent on it)."""
        self._watchdog = None
        connection = self._connection
        if connection is None or not connection.sent:
            return
        loop = asyncio.get_running_loop()
        oldest = connection.sent[0][1]
        if oldest <= loop.time():
            connection.close()
            self._lost(connection, StorageUnavailable(f"Redis: no answer in {self._timeout:g}s"))
        else:
            self._watchdog = loop.call_at(oldest, self._watch)

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
