"""The benches' load client (``bench/lib/load.py``) against a scripted HTTP/1.1 server: what it
counts, what it hands the job, how it frames Content-Length and chunked answers that arrive in
pieces, and when it pauses, reconnects and stops. On uvloop (what the benches run) and asyncio."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))  # how the benches import it

from lib.load import FixedRequest, Load, connection_worker, http_request, measure, open_connections

# What the server writes for each path: the pieces, written with a pause between them so that
# they reach the client in separate reads (head apart from body, a chunk cut in two, ...).
ANSWERS: dict[str, list[bytes]] = {
    "/length": [b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"],
    "/split": [b"HTTP/1.1 200 OK\r\nContent-Len", b"gth: 11\r\n\r\n", b"hello", b" world"],
    "/chunked": [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"5\r\nhel",
        b"lo\r\n6;name=value\r\n world\r\n0\r",
        b"\n\r\n",
    ],
    "/chunked-whole": [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n"
    ],
    "/busy": [b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 4\r\n\r\nbusy"],
    "/close": [b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye"],
    "/cut": [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"],  # then the server closes
    "/unframed": [b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"],
    "/slow": [b"", b"", b"", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"],
}
PIECE_PAUSE = 0.02  # "/slow": ~0.06 s
CLOSING = {"/close", "/cut"}

Run = Callable[[Coroutine[Any, Any, None]], None]


@pytest.fixture(params=["uvloop", "asyncio"])
def run(request: pytest.FixtureRequest) -> Run:
    """Run a scenario on a fresh loop of either kind."""
    factory = uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop

    def runner(scenario: Coroutine[Any, Any, None]) -> None:
        with asyncio.Runner(loop_factory=factory) as loop_runner:
            loop_runner.run(scenario)

    return runner


@dataclass
class Server:
    """Answers each request's path with its ``ANSWERS`` pieces; counts connections and paths."""

    port: int = 0
    connections: int = 0
    paths: list[str] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                path = head.split(b" ", 2)[1].decode()
                self.paths.append(path)
                for piece in ANSWERS[path]:
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(PIECE_PAUSE)
                if path in CLOSING:
                    return
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def serving() -> Any:
    server = Server()
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        await listener.wait_closed()


@dataclass
class Script:
    """A job asking for ``paths`` in turn, keeping every answer; it stops after ``answers`` of them."""

    port: int
    paths: list[str]
    wanted: int
    requests: int = 0
    answers: list[tuple[int, bytes]] = field(default_factory=list)

    def request(self) -> bytes:
        path = self.paths[self.requests % len(self.paths)]
        self.requests += 1
        return http_request("GET", path, self.port, {})

    def response(self, status: int, body: bytes) -> bool:
        self.answers.append((status, body))
        return len(self.answers) < self.wanted


async def work(server: Server, job: Script, load: Load, **options: Any) -> float:
    """``connection_worker`` on a stream opened like ``measure`` does, until the job stops;
    the seconds it took."""
    (stream,) = await open_connections(server.port, 1)
    start = time.perf_counter()
    await asyncio.wait_for(connection_worker(server.port, job, load, asyncio.Event(), stream, **options), 10)
    return time.perf_counter() - start


def test_frames_content_length_and_chunked_answers_in_pieces(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as server:
            paths = ["/length", "/split", "/chunked", "/chunked-whole", "/busy"]
            job = Script(server.port, paths, wanted=10)
            load = Load(recording=True)
            await work(server, job, load)
            bodies = [b"hello", b"hello world", b"hello world", b"abcd"]
            assert job.answers == [*((200, body) for body in bodies), (503, b"busy")] * 2
            assert load.statuses == Counter({200: 8, 503: 2})
            assert (load.ok, load.retry_after, len(load.latencies_ms)) == (8, 2, 8)
            assert all(0 < ms < 5000 for ms in load.latencies_ms)
            assert server.connections == 1  # one keep-alive connection throughout
            assert job.requests == 10  # stopped when the job said so: nothing sent after

    run(scenario())


def test_reconnects_after_connection_close(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as server:
            job = Script(server.port, ["/close", "/length"], wanted=4)
            load = Load(recording=True)
            await work(server, job, load)
            assert job.answers == [(200, b"bye"), (200, b"hello")] * 2
            assert load.statuses == Counter({200: 4})
            assert server.connections == 3

    run(scenario())


def test_cut_and_unframed_answers_count_as_errors_and_reconnect(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as server:
            job = Script(server.port, ["/cut", "/unframed", "/length"], wanted=1)
            load = Load(recording=True)
            await work(server, job, load)
            assert job.answers == [(200, b"hello")]  # the broken answers never reach the job
            assert load.statuses == Counter({0: 2, 200: 1})
            assert server.connections == 3

    run(scenario())


def test_honours_retry_after_only_when_asked(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as server:
            load = Load(recording=True)
            eager = await work(server, Script(server.port, ["/busy", "/length"], wanted=2), load)
            patient = await work(
                server, Script(server.port, ["/busy", "/length"], wanted=2), load, honour_retry_after=True
            )
            assert eager < 0.8 < 1.0 <= patient < 3.0
            assert load.statuses == Counter({503: 2, 200: 2})
            assert load.retry_after == 2

    run(scenario())


def test_stop_ends_a_pause_at_once_and_an_answer_in_flight_is_not_recorded(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as server:
            for path, recorded in (("/busy", Counter({503: 1})), ("/slow", Counter())):
                job = Script(server.port, [path], wanted=100)
                load = Load(recording=True)
                stop = asyncio.Event()
                (stream,) = await open_connections(server.port, 1)
                worker = asyncio.create_task(
                    connection_worker(server.port, job, load, stop, stream, honour_retry_after=True)
                )
                await asyncio.sleep(0.03)  # "/busy": paused for 1 s; "/slow": answer due in ~0.06 s
                stop.set()
                start = time.perf_counter()
                await asyncio.wait_for(worker, 2)
                assert time.perf_counter() - start < 0.5
                assert load.statuses == recorded
                assert job.requests == 1
                assert len(job.answers) == len(recorded)  # the answer after stop is not handed on

    run(scenario())


def test_a_refused_connection_counts_as_an_error() -> None:
    async def scenario() -> None:
        async with serving() as server:
            port = server.port
        job = Script(port, ["/length"], wanted=1)
        load = Load(recording=True)
        stop = asyncio.Event()
        worker = asyncio.create_task(connection_worker(port, job, load, stop))
        await asyncio.sleep(0.15)  # one attempt, a 0.1 s pause, another attempt
        stop.set()
        await asyncio.wait_for(worker, 2)
        assert load.statuses[0] >= 1
        assert set(load.statuses) == {0}

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())


def test_measure_counts_the_window(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as server:
            jobs = [
                FixedRequest(http_request("GET", path, server.port, {}))
                for path in ("/length", "/chunked", "/busy", "/split")
            ]
            result = await measure(
                "test", server.port, jobs, [os.getpid()], duration=0.4, warmup=0.1, quiet=True
            )
            assert set(result.statuses) == {200, 503}
            assert result.retry_after == result.statuses[503] > 0
            assert result.rate == result.statuses[200] / result.seconds
            assert len(result.latencies_ms) == result.statuses[200]
            assert server.connections == 4

    run(scenario())
