"""The single-node Redis link (service.store.redis_link.DirectLink) against a real redis-server:
pipelined calls answered in order, error replies, NOSCRIPT after a flush, a stalled server, a
restarted one, and a caller that gives up."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.exceptions import ResponseError

from service.store.base import StorageUnavailable
from service.store.redis_link import DirectLink, LuaScript
from tests.support.own_redis import OwnRedis

ECHO = LuaScript("return {KEYS[1], ARGV[1]}")


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
