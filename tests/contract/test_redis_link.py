"""The Redis links against real servers. Both links (DirectLink on one node, ClusterLink on a
three-master cluster) as one contract: the same calls give the same reply shapes and errors.
The single-node link alone: pipelined calls answered in order, NOSCRIPT after a flush, a
stalled server, a restarted one, and a caller that gives up."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.exceptions import ResponseError

from service.store.base import StorageUnavailable
from service.store.redis_link import DirectLink, LuaScript, RedisLink, connect_redis
from tests.support.own_redis import OwnRedis

ECHO = LuaScript("return {KEYS[1], ARGV[1]}")
NUMBERS = LuaScript("return {1, {2, 'three'}, false}")


@pytest.fixture
async def link(own_redis: OwnRedis) -> AsyncIterator[DirectLink]:
    direct = DirectLink.from_url(own_redis.url, timeout=0.5)
    yield direct
    await direct.close()


async def test_concurrent_calls_share_writes_and_get_their_own_replies(link: DirectLink) -> None:
    await asyncio.gather(*(link.command("SET", f"k{i}", str(i)) for i in range(200)))
    replies = await asyncio.gather(*(link.command("GET", f"k{i}") for i in range(200)))
    assert replies == [str(i).encode() for i in range(200)]
    scripted = await asyncio.gather(*(link.run(ECHO, [f"key{i}"], [i]) for i in range(50)))
    assert scripted == [[f"key{i}".encode(), str(i).encode()] for i in range(50)]


async def test_an_error_reply_fails_only_its_call(link: DirectLink) -> None:
    await link.command("SET", "text", "x")
    answers: tuple[Any, ...] = await asyncio.gather(
        link.command("HGETALL", "text"), link.command("GET", "text"), return_exceptions=True
    )
    wrong, right = answers
    assert isinstance(wrong, ResponseError)
    assert right == b"x"


async def test_scripts_are_loaded_again_after_a_flush(link: DirectLink) -> None:
    assert await link.run(ECHO, ["a"], ["1"]) == [b"a", b"1"]
    await link.command("SCRIPT", "FLUSH")
    assert await link.run(ECHO, ["b"], ["2"]) == [b"b", b"2"]


async def test_a_stalled_server_fails_calls_in_bounded_time_then_recovers(
    link: DirectLink, own_redis: OwnRedis
) -> None:
    assert await link.command("PING") == b"PONG"
    assert own_redis.process is not None
    os.kill(own_redis.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            await link.command("PING")
        assert time.monotonic() - started < 2.0  # timeout 0.5 s, noticed by the watchdog
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
    assert await link.command("PING") == b"PONG"  # on a new connection


async def test_a_restarted_server_is_reached_again(link: DirectLink, own_redis: OwnRedis) -> None:
    assert await link.command("SET", "before", "1")
    own_redis.stop()
    with pytest.raises(StorageUnavailable):
        await link.command("GET", "before")
    own_redis.start()
    assert await link.command("GET", "before") is None  # a new, empty server
    assert await link.run(ECHO, ["k"], ["v"]) == [b"k", b"v"]  # its script cache is empty too


async def test_a_cancelled_call_does_not_shift_the_replies(link: DirectLink) -> None:
    """A caller that gives up while its reply is still owed: the reply is dropped when it comes,
    and the next call gets its own (BLPOP holds the connection's replies for 0.3 s)."""
    await link.command("SET", "one", "1")
    slow = asyncio.ensure_future(link.command("BLPOP", "nothing-here", "0.3"))
    await asyncio.sleep(0.05)
    assert not slow.done()
    slow.cancel()
    assert await link.command("GET", "one") == b"1"
    assert slow.cancelled()


async def test_a_server_that_stops_speaking_resp_fails_calls_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A reply that is not RESP (a proxy in the way, a corrupted stream) drops the connection
    quietly: the call fails with 503's error now, not when the watchdog gives up, and the event
    loop logs no "Fatal error" traceback for a data callback that raised."""

    async def impostor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            # redis-py's handshake (CLIENT SETINFO twice) gets its OKs; our PING gets garbage.
            writer.write(b"+OK\r\n" * data.count(b"SETINFO") + (b"?garbage\r\n" if b"PING" in data else b""))
        writer.close()

    server = await asyncio.start_server(impostor, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    direct = DirectLink.from_url(f"redis://127.0.0.1:{port}", timeout=5.0)
    try:
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            await direct.command("PING")
        assert time.monotonic() - started < 2.0  # not the 5 s watchdog
        await asyncio.sleep(0.05)  # the loop's exception handler runs after the callback
        assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []
    finally:
        await direct.close()
        server.close()
        await server.wait_closed()


# ---- one contract for both links: the same calls give the same reply shapes ----


@pytest.fixture(params=["direct", "cluster"])
async def any_link(request: pytest.FixtureRequest, redis_server: str) -> AsyncIterator[RedisLink]:
    """The single-node link on the shared Redis and the Cluster link on a real three-master
    cluster; keys under a prefix of the test's own (deleted afterwards on the shared Redis)."""
    cluster = request.param == "cluster"
    url = request.getfixturevalue("redis_cluster") if cluster else redis_server
    link = await connect_redis(url, cluster=cluster)
    try:
        yield link
    finally:
        await link.close()


def tag() -> str:
    """A fresh hash tag: the keys of one test share a slot (and a cluster node)."""
    return f"{{idptest:{uuid.uuid4().hex[:10]}}}"


async def test_both_links_give_raw_reply_shapes(any_link: RedisLink) -> None:
    """Redis's own values from either link: a flat list for HGETALL, a list for SMEMBERS,
    b"OK" / None for SET NX, b"PONG", bytes and ints; the stores need no per-link cases."""
    key = tag()
    try:
        assert await any_link.command("HSET", f"{key}h", "a", "1", "b", "2") == 2
        assert sorted(_pairs(await any_link.command("HGETALL", f"{key}h"))) == [(b"a", b"1"), (b"b", b"2")]
        assert await any_link.command("HGETALL", f"{key}missing") == []
        assert await any_link.command("SADD", f"{key}s", "x", "y") == 2
        members = await any_link.command("SMEMBERS", f"{key}s")
        assert (type(members), sorted(members)) == (list, [b"x", b"y"])
        assert await any_link.command("SET", f"{key}k", "v", "NX", "PX", 60_000) == b"OK"
        assert await any_link.command("SET", f"{key}k", "w", "NX", "PX", 60_000) is None
        assert await any_link.command("GET", f"{key}k") == b"v"
        assert await any_link.command("GET", f"{key}nothing") is None
        assert await any_link.command("PING") == b"PONG"
        assert await any_link.run(ECHO, [f"{key}e"], [7]) == [f"{key}e".encode(), b"7"]
        assert await any_link.run(NUMBERS, [f"{key}n"], []) == [1, [2, b"three"], None]
    finally:
        await any_link.command("DEL", f"{key}h", f"{key}s", f"{key}k")


async def test_both_links_raise_the_same_error_for_an_error_reply(any_link: RedisLink) -> None:
    """A Redis error reply is a ResponseError from either link, and fails only its own call."""
    key = tag()
    try:
        await any_link.command("SET", f"{key}text", "x")
        answers: tuple[Any, ...] = await asyncio.gather(
            any_link.command("HGETALL", f"{key}text"),
            any_link.command("GET", f"{key}text"),
            return_exceptions=True,
        )
        wrong, right = answers
        assert isinstance(wrong, ResponseError)
        assert right == b"x"
    finally:
        await any_link.command("DEL", f"{key}text")


def _pairs(flat: list[Any]) -> list[tuple[Any, Any]]:
    return list(zip(flat[::2], flat[1::2], strict=True))
