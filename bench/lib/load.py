"""One load client for every bench: raw HTTP/1.1 keep-alive connections on uvloop.

A fixed number of connections each loop request → response for a fixed time after a warm-up.
What a connection sends and what it does with each answer is a ``Job`` (``FixedRequest`` sends
the same bytes every time; a bench defines its own job for stateful flows, e.g. a refresh-token
chain). ``measure``'s connections run as protocol callbacks (``_Exchange``), no coroutine per
request: on our JWKS at ~55 000 requests/s on this 2-core machine the client costs ~11 µs of CPU
per request, as ``wrk -t1`` does here; ~3 µs of it is Python, the rest the kernel's loopback TCP
(a write, a read, and the wake-ups and context switches they cause, whatever the client). On 2
busy cores it stays runnable and gets ~0.6 cores whatever it costs, so a cheaper client shows as
more requests/s, not as fewer load-generator cores. Run it under uvloop (``run_uvloop``)::

    jobs = [FixedRequest(http_request("GET", "/.well-known/jwks.json", port, {})) for _ in range(16)]
    result = await measure("JWKS", port, jobs, server.pids, duration=8, warmup=1)
    result.rate, result.p99_ms, result.statuses[503], result.retry_after

``Prober`` is the other tool: a sequential probe at a fixed rate, in its own spawned process so
the load generator's GIL does not inflate its latencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import multiprocessing
import os
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Protocol, TypeVar, cast

import httpx
import uvloop

from lib.procs import CORES, HAS_PROC, CpuReport, connection_owner, cpu_report, snapshot
from lib.report import percentile

__all__ = [
    "REQUEST_TIMEOUT_SECONDS",
    "FixedRequest",
    "Job",
    "Load",
    "Measurement",
    "Prober",
    "Samples",
    "Sequential",
    "Stream",
    "connection_worker",
    "http_request",
    "measure",
    "measure_open_loop",
    "open_balanced",
    "open_connections",
    "open_pinned",
    "post_admitted",
    "read_body",
    "run_uvloop",
]

REQUEST_TIMEOUT_SECONDS = 10.0
START_TIMEOUT_SECONDS = 30.0
READ_LIMIT = 1 << 20

T = TypeVar("T")


def run_uvloop(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop (what every bench's load generator runs on). What the bench
    imported is frozen first (``gc.freeze``): the collector's full passes then walk only what
    the run creates, not httpx, asyncpg and the rest, so the client's own pauses stay out of
    the latencies it records (the probe process pauses its collector altogether)."""
    gc.collect()
    gc.freeze()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


class Job(Protocol):
    """What one connection sends, and what it does with each answer (False: stop this connection)."""

    def request(self) -> bytes: ...

    def response(self, status: int, body: bytes) -> bool: ...


@dataclass
class FixedRequest:
    payload: bytes

    def request(self) -> bytes:
        return self.payload

    def response(self, status: int, body: bytes) -> bool:
        return True


def http_request(method: str, path: str, port: int, headers: dict[str, str], body: bytes = b"") -> bytes:
    """The bytes of one HTTP/1.1 request to 127.0.0.1:``port`` (Content-Length for POST or a body)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Load:
    """What the connections saw while ``recording`` (the measured window)."""

    recording: bool = False
    ok: int = 0
    statuses: Counter[int] = field(default_factory=Counter)  # 0: connection error or bad answer
    retry_after: int = 0  # answers carrying a Retry-After header (e.g. 503 under overload)
    latencies_ms: list[float] = field(default_factory=list)  # of the 200 answers

    def record(self, status: int, sent: float, retry_after: bool = False) -> None:
        if not self.recording:
            return
        self.statuses[status] += 1
        self.retry_after += retry_after
        if status == 200:
            self.ok += 1
            self.latencies_ms.append((time.perf_counter() - sent) * 1000.0)


async def read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    """The body after a lower-cased response ``head``: Content-Length or chunked (Node)."""
    start = head.find(b"\r\ncontent-length:")
    if start >= 0:
        return await reader.readexactly(int(head[start + 17 : head.index(b"\r\n", start + 2)]))
    if b"\r\ntransfer-encoding: chunked" not in head:
        raise ValueError("response without Content-Length or chunked encoding")
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # end of the (empty) trailer section
            return b"".join(parts)
        parts.append((await reader.readexactly(size + 2))[:-2])


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _connect(port: int) -> Stream:
    return await asyncio.open_connection("127.0.0.1", port, limit=READ_LIMIT)


async def open_connections(port: int, count: int) -> list[Stream]:
    """``count`` connections opened one after the other: the kernel and the workers place them."""
    return [await _connect(port) for _ in range(count)]


async def open_balanced(port: int, count: int, workers: Sequence[int]) -> list[Stream]:
    """``count`` connections spread evenly over ``workers`` (pids).

    uvicorn's workers share one listening socket and whichever is awake accepts: a burst of
    connections often lands 16/0 on one worker. A load balancer in front of real deployments
    spreads connections; here we reconnect until each worker holds its share (best effort).
    """
    if len(workers) < 2 or not HAS_PROC:
        return await open_connections(port, count)
    share = math.ceil(count / len(workers))
    held: Counter[int] = Counter()
    streams: list[Stream] = []
    attempts = 0
    while len(streams) < count:
        reader, writer = await _connect(port)
        owner = await _owner_of(writer, port, workers)
        attempts += 1
        if owner is not None and held[owner] >= share and attempts < 20 * count:
            writer.close()
            continue
        held[owner or 0] += 1
        streams.append((reader, writer))
    return streams


async def _owner_of(writer: asyncio.StreamWriter, port: int, workers: Sequence[int]) -> int | None:
    """Which of ``workers`` accepted this connection (None if /proc does not say within 0.25 s)."""
    client_port = writer.get_extra_info("sockname")[1]
    for _ in range(50):
        owner = connection_owner(port, client_port, workers)
        if owner is not None:
            return owner
        await asyncio.sleep(0.005)
    return None


async def open_pinned(port: int, count: int, worker: int, workers: Sequence[int]) -> list[Stream]:
    """``count`` connections all held by ``worker`` (one of ``workers``, pids): what a gateway
    with few long-lived connections often gets from uvicorn. Reconnects until the worker that
    accepted each is ``worker``; RuntimeError if that fails 200 times per connection."""
    if len(workers) < 2 or not HAS_PROC:
        return await open_connections(port, count)
    streams: list[Stream] = []
    attempts = 0
    while len(streams) < count:
        reader, writer = await _connect(port)
        owner = await _owner_of(writer, port, workers)
        if owner == worker:
            streams.append((reader, writer))
            continue
        writer.close()
        attempts += 1
        if attempts > 200 * count:
            for _, kept in streams:
                kept.close()
            raise RuntimeError(f"could not place {count} connections on worker {worker}")
    return streams


def _retry_after_seconds(head: bytes) -> float:
    """The delay-seconds of a lower-cased response head's Retry-After (0 when absent or a date)."""
    start = head.find(b"\r\nretry-after:")
    if start < 0:
        return 0.0
    try:
        return float(head[start + 14 : head.index(b"\r\n", start + 2)].strip())
    except ValueError:
        return 0.0


class _Exchange(asyncio.Protocol):
    """One connection of ``connection_worker``: its closed loop, run from the event loop's callbacks.

    Each answer is parsed where it arrives (``data_received``; straight from the received bytes
    when it came in one piece, the usual case), recorded, and the next request is written from
    the same callback: no coroutine step, no future per request. The StreamReader loop this
    replaced (``readuntil`` + ``readexactly``) cost ~1.5 µs more client CPU per request, CPU
    taken from the server under test at ~50 000 JWKS requests/s. ``done`` resolves when the
    connection is over: True to reconnect (the server closed it, an error, or ``stop``), False
    when the job said stop. What counts as an error (status 0) is what the stream version
    caught: OSError or ValueError (a cut, unframed or unparsable answer, or the job's own).
    """

    def __init__(self, job: Job, load: Load, stop: asyncio.Event, honour_retry_after: bool) -> None:
        self.job = job
        self.load = load
        self.stop = stop
        self.honour_retry_after = honour_retry_after
        self.done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.stream: Stream | None = None  # see ``adopt``
        self.pause: asyncio.TimerHandle | None = None  # honouring a Retry-After
        self.sent = 0.0
        self.pending = bytearray()  # the start of an answer that came in several pieces

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def adopt(self, stream: Stream) -> bool:
        """Take over a fresh stream's transport (nothing sent on it yet, so nothing buffered in
        its reader); False (an error) if the server closed it meanwhile. The stream is kept: a
        collected StreamWriter closes its transport."""
        reader, writer = stream
        if writer.is_closing() or reader.at_eof() or reader.exception() is not None:
            writer.close()
            self._fail()
            return False
        self.stream = stream
        writer.transport.set_protocol(self)
        self.connection_made(writer.transport)
        return True

    async def connect(self, port: int) -> bool:
        """A new connection to 127.0.0.1:``port``; False (an error, after a short pause) if refused."""
        try:
            await asyncio.get_running_loop().create_connection(lambda: self, "127.0.0.1", port)
        except OSError:
            self.load.record(0, time.perf_counter())
            await asyncio.sleep(0.1)
            return False
        return True

    async def run(self, stopped: asyncio.Future[Any]) -> bool:
        """Send the first request, let the callbacks loop; ``done``'s result (closed afterwards)."""
        stopped.add_done_callback(self._stopped)
        try:
            self._resume()
            return await self.done
        finally:
            stopped.remove_done_callback(self._stopped)
            self._close()

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        pending = self.pending
        received: bytes | bytearray = data
        if pending:
            pending += data
            received = pending
        try:
            answer = _parse_answer(received)
            if answer is None:
                if not pending:
                    pending += data
                return
            status, head, body, end = answer
            if received is pending:
                del pending[:end]
            elif end < len(data):  # more than the answer: the stream version read it as the next
                pending += data[end:]
            self._answered(status, head, body)
        except (OSError, ValueError):
            self._fail()
        except Exception as error:
            self._crash(error)

    def connection_lost(self, exc: Exception | None) -> None:
        """Closed, reset, or EOF (the transport then closes): an error unless already done."""
        if self.pause is None:  # while paused the stream version noticed only when it sent again
            self._fail()

    def _answered(self, status: int, head: bytes, body: bytes) -> None:
        """Record a complete answer, then send the next request, pause, or end the connection."""
        if self.stop.is_set():
            self._finish(True)
            return
        self.load.record(status, self.sent, b"\r\nretry-after:" in head)
        if not self.job.response(status, body):
            self._finish(False)
        elif b"\r\nconnection: close" in head:
            self._finish(True)
        elif self.honour_retry_after and (pause := _retry_after_seconds(head)) > 0:
            self.pause = asyncio.get_running_loop().call_later(pause, self._resume)
        else:
            self.sent = time.perf_counter()
            cast(asyncio.Transport, self.transport).write(self.job.request())

    def _resume(self) -> None:
        """Send a request after a pause, or the first one (not from a data callback, so the
        errors the data callback counts are counted here)."""
        self.pause = None
        assert self.transport is not None
        if self.transport.is_closing():  # lost while paused
            self._fail()
            return
        self.sent = time.perf_counter()
        try:
            self.transport.write(self.job.request())
        except (OSError, ValueError):
            self._fail()
        except Exception as error:
            self._crash(error)

    def _stopped(self, _: asyncio.Future[Any]) -> None:
        """``stop``: a pause ends at once; an answer in flight is awaited (and not recorded)."""
        if self.pause is not None:
            self._finish(True)

    def _fail(self) -> None:
        if not self.done.done() and not self.stop.is_set():
            self.load.record(0, time.perf_counter())
        self._finish(True)

    def _crash(self, error: Exception) -> None:
        """An unexpected exception (the job's): ``connection_worker`` raises it, as it did."""
        self._close()
        if not self.done.done():
            self.done.set_exception(error)

    def _finish(self, reconnect: bool) -> None:
        self._close()
        if not self.done.done():
            self.done.set_result(reconnect)

    def _close(self) -> None:
        if self.pause is not None:
            self.pause.cancel()
            self.pause = None
        if self.transport is not None:
            self.transport.close()


def _parse_answer(data: bytes | bytearray) -> tuple[int, bytes, bytes, int] | None:
    """(status, lower-cased head, body, where it ends) of the answer at the start of ``data``;
    None while incomplete. Parsed anew as pieces arrive: answers are small and usually whole."""
    body_at = data.find(b"\r\n\r\n") + 4
    if body_at < 4:
        if len(data) > READ_LIMIT:
            raise ValueError("response head over the read limit")
        return None
    head = bytes(data[:body_at]).lower()
    start = head.find(b"\r\ncontent-length:")
    if start >= 0:
        end = body_at + int(head[start + 17 : head.index(b"\r\n", start + 2)])
        if end < body_at:
            raise ValueError("negative Content-Length")
        if len(data) < end:
            return None
        return int(head[9:12]), head, bytes(data[body_at:end]), end
    if b"\r\ntransfer-encoding: chunked" not in head:
        raise ValueError("response without Content-Length or chunked encoding")
    chunked = _parse_chunked(data, body_at)
    if chunked is None:
        return None
    return int(head[9:12]), head, chunked[0], chunked[1]


def _parse_chunked(data: bytes | bytearray, at: int) -> tuple[bytes, int] | None:
    """(body, where it ends) of the chunked body from ``at``; None while incomplete. Like
    ``read_body``: chunk extensions ignored, an empty trailer section expected."""
    parts: list[bytes] = []
    while (line_end := data.find(b"\r\n", at)) >= 0:
        size = int(data[at:line_end].split(b";", 1)[0], 16)
        if size == 0:
            trailer_end = data.find(b"\r\n", line_end + 2)
            return None if trailer_end < 0 else (b"".join(parts), trailer_end + 2)
        at = line_end + 2 + size + 2  # the chunk's data, then its CRLF
        if len(data) < at:
            return None
        parts.append(bytes(data[line_end + 2 : at - 2]))
    return None


async def connection_worker(
    port: int,
    job: Job,
    load: Load,
    stop: asyncio.Event,
    first: Stream | None = None,
    *,
    honour_retry_after: bool = False,
) -> None:
    """Loop ``job`` over one keep-alive connection until ``stop``; reconnect when the server closes.

    One request in flight: the next is sent when the answer is complete (``_Exchange``). ``first``:
    a fresh stream to start on (its transport is taken over). ``honour_retry_after``: after an
    answer with ``Retry-After: N``, wait N seconds (or until ``stop``) before the next request, as
    a well-behaved client does; otherwise ask again at once."""
    stopped: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            exchange = _Exchange(job, load, stop, honour_retry_after)
            if first is not None:
                opened, first = exchange.adopt(first), None
            else:
                opened = await exchange.connect(port)
            if opened and not await exchange.run(stopped):
                return
    finally:
        stopped.cancel()


async def post_admitted(
    client: httpx.AsyncClient, path: str, attempts: int = 20, **kwargs: Any
) -> httpx.Response:
    """POST for a bench's setup (sign-ups, logins): a 503 with Retry-After (the argon2 pool
    shedding on a busy machine) is retried after a short pause instead of failing the run."""
    response = await client.post(path, **kwargs)
    for _ in range(attempts):
        if response.status_code != 503 or "retry-after" not in response.headers:
            break
        await asyncio.sleep(0.2)
        response = await client.post(path, **kwargs)
    return response


class Sequential:
    """One keep-alive connection sending one request at a time, each answer timed: latency
    without queueing (``bench/growth.py``), or paced traffic (``bench/soak.py``). It reconnects
    once when the server closed the idle connection (uvicorn's keep-alive timeout)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stream: Stream | None = None

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> bytes:
        return http_request(method, path, self.port, headers or {}, body)

    async def send(self, raw: bytes) -> tuple[int, bytes, float]:
        """(status, body, milliseconds) of one request."""
        if self.stream is not None:
            try:
                return await self._send(self.stream, raw)
            except (OSError, asyncio.IncompleteReadError):
                await self.close()
        self.stream = await _connect(self.port)
        return await self._send(self.stream, raw)

    async def _send(self, stream: Stream, raw: bytes) -> tuple[int, bytes, float]:
        reader, writer = stream
        sent = time.perf_counter()
        writer.write(raw)
        head = (await reader.readuntil(b"\r\n\r\n")).lower()
        body = await read_body(reader, head)
        elapsed = (time.perf_counter() - sent) * 1000.0
        if b"\r\nconnection: close" in head:
            await self.close()
        return int(head[9:12]), body, elapsed

    async def close(self) -> None:
        if self.stream is not None:
            _, writer = self.stream
            self.stream = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


@dataclass
class Measurement:
    label: str
    rate: float  # 200 answers per second over the window
    p50_ms: float  # latencies of the 200 answers
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: Counter[int]  # every answer in the window by status; 0 = connection error
    retry_after: int  # answers in the window that carried Retry-After
    seconds: float
    server_cores: float
    bench_cores: float
    machine_busy: float
    connections: dict[int, int]  # worker pid -> client connections it held (several workers only)
    cpu: CpuReport | None = None  # per worker detail (Linux)
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    unsent: int = 0  # open loop (``measure_open_loop``): requests due when no connection was free

    @property
    def other_cores(self) -> float:
        """CPU used by every other process (+ kernel): PostgreSQL and Redis, or foreign load."""
        return max(0.0, self.machine_busy * CORES - self.server_cores - self.bench_cores)

    @property
    def answers(self) -> int:
        return sum(self.statuses.values())

    def describe(self) -> str:
        errors = {s: n for s, n in self.statuses.items() if s != 200}
        spread = "/".join(str(n) for n in self.connections.values()) if len(self.connections) > 1 else ""
        return (
            f"{self.label:<34} {self.rate:9.1f} /s  p50 {self.p50_ms:7.2f} ms  p99 {self.p99_ms:7.2f} ms"
            f"  server {self.server_cores:.2f} cores, load generator {self.bench_cores:.2f},"
            f" machine busy {self.machine_busy:.0%} (others ~{self.other_cores:.2f} cores)"
            + (f", connections per worker {spread}" if spread else "")
            + (f", non-200 {errors}" if errors else "")
            + (f", {self.retry_after} with Retry-After" if self.retry_after else "")
        )


async def measure(
    label: str,
    port: int,
    jobs: Sequence[Job],
    server_pids: Sequence[int],
    *,
    duration: float,
    warmup: float,
    balance: bool = True,
    pin: bool = False,
    honour_retry_after: bool = False,
    during: Callable[[], Awaitable[None]] | None = None,
    probe_pid: int | None = None,
    quiet: bool = False,
) -> Measurement:
    """Run one connection per job for ``warmup`` + ``duration`` seconds; measure the last part.

    ``server_pids``: the supervisor first, then its workers (``Server.pids``), or one pid. With
    ``balance`` the connections are spread evenly over the workers first (``open_balanced``),
    otherwise they are opened one after the other and land where the kernel puts them; with
    ``pin`` all of them are held by the first worker (``open_pinned``). ``honour_retry_after``:
    see ``connection_worker``. ``during``
    runs alongside the measured window (e.g. a ``Prober``); the load keeps running until it
    returns. ``probe_pid``: a helper process whose CPU the report shows separately.
    """
    load = Load()
    stop = asyncio.Event()
    supervisor = server_pids[0]
    workers = list(server_pids[1:]) or [supervisor]
    if pin:
        streams = await open_pinned(port, len(jobs), workers[0], workers)
    elif balance:
        streams = await open_balanced(port, len(jobs), workers)
    else:
        streams = await open_connections(port, len(jobs))
    tasks = [
        asyncio.create_task(
            connection_worker(port, job, load, stop, stream, honour_retry_after=honour_retry_after)
        )
        for job, stream in zip(jobs, streams, strict=True)
    ]
    return await _window(
        label, port, load, stop, tasks, supervisor, workers, duration, warmup, during, probe_pid, quiet
    )


async def measure_open_loop(
    label: str,
    port: int,
    request: bytes,
    server_pids: Sequence[int],
    *,
    rate: float,
    connections: int,
    duration: float,
    warmup: float,
    during: Callable[[], Awaitable[None]] | None = None,
    probe_pid: int | None = None,
    quiet: bool = False,
) -> Measurement:
    """Offer ``rate`` requests/s whatever the answers (open loop), over a pool of ``connections``
    keep-alive connections placed by the kernel: each request is sent on schedule on a free
    connection, or counted in ``unsent`` when none is free. Latencies count from the scheduled
    time. For overload: unlike ``measure``, a slow server does not slow the offered load down."""
    load = Load()
    stop = asyncio.Event()
    supervisor = server_pids[0]
    workers = list(server_pids[1:]) or [supervisor]
    free: list[Stream] = await open_connections(port, connections)
    in_flight: set[asyncio.Task[None]] = set()
    unsent = 0

    async def send(stream: Stream, due: float) -> None:
        reader, writer = stream
        try:
            writer.write(request)
            head = (await reader.readuntil(b"\r\n\r\n")).lower()
            await read_body(reader, head)
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            load.record(0, due)
            writer.close()
            return
        load.record(int(head[9:12]), due, b"\r\nretry-after:" in head)
        if b"\r\nconnection: close" in head:
            writer.close()
        else:
            free.append(stream)

    async def schedule() -> None:
        nonlocal unsent
        start = time.perf_counter()
        sent = 0
        while not stop.is_set():
            due = start + sent / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent += 1
            if not free:
                unsent += load.recording
                continue
            task = asyncio.create_task(send(free.pop(), due))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)

    async def drain() -> None:
        scheduler = asyncio.create_task(schedule())
        await stop.wait()
        scheduler.cancel()
        await asyncio.gather(scheduler, return_exceptions=True)
        if in_flight:
            await asyncio.wait(set(in_flight), timeout=REQUEST_TIMEOUT_SECONDS)
        for _, writer in free:
            writer.close()

    result = await _window(
        label,
        port,
        load,
        stop,
        [asyncio.create_task(drain())],
        supervisor,
        workers,
        duration,
        warmup,
        during,
        probe_pid,
        quiet=True,
    )
    result.unsent = unsent
    if not quiet:
        print("  " + result.describe() + (f", {unsent} not sent (no free connection)" if unsent else ""))
    return result


async def _window(
    label: str,
    port: int,
    load: Load,
    stop: asyncio.Event,
    tasks: list[asyncio.Task[None]],
    supervisor: int,
    workers: list[int],
    duration: float,
    warmup: float,
    during: Callable[[], Awaitable[None]] | None,
    probe_pid: int | None,
    quiet: bool,
) -> Measurement:
    """Warm up, measure ``duration`` seconds (``during`` alongside), stop ``tasks``; the figures."""
    side: asyncio.Future[None] | None = None
    try:
        await asyncio.sleep(warmup)
        before = snapshot([supervisor, *workers], probe_pid, port)
        load.recording = True
        if during is not None:
            side = asyncio.ensure_future(during())
        await asyncio.sleep(duration)
        load.recording = False
        after = snapshot([supervisor, *workers], probe_pid, port)
        if side is not None:
            await side
    finally:
        stop.set()
        if side is not None and not side.done():
            side.cancel()
        _, pending = await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_SECONDS)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    cpu = cpu_report(before, after, workers, supervisor) if HAS_PROC else None
    elapsed = after.at - before.at
    busy = after.system[0] - before.system[0]
    total = busy + (after.system[1] - before.system[1]) + (after.system[2] - before.system[2])
    result = Measurement(
        label=label,
        rate=load.ok / elapsed,
        p50_ms=percentile(load.latencies_ms, 50),
        p90_ms=percentile(load.latencies_ms, 90),
        p99_ms=percentile(load.latencies_ms, 99),
        max_ms=max(load.latencies_ms, default=math.nan),
        statuses=load.statuses,
        retry_after=load.retry_after,
        seconds=elapsed,
        server_cores=cpu.server_cores if cpu else math.nan,
        bench_cores=(after.bench - before.bench) / elapsed,
        machine_busy=busy / total if total else math.nan,
        connections={pid: after.connections[pid] for pid in workers} if len(workers) > 1 else {},
        cpu=cpu,
        latencies_ms=load.latencies_ms,
    )
    if not quiet:
        print("  " + result.describe(), flush=True)
    return result


# --------------------------------------------------------------------------------------------
# A sequential latency probe in its own (spawned) process
# --------------------------------------------------------------------------------------------

Samples = list[tuple[float, int]]  # (latency ms, status) per request; status 0 = error


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection in this process while it times requests: a full collection
    of the probe's own heap (httpx and its imports) took 15-30 ms on a busy machine, at the
    same request of every run, and was read as the server's latency. What exists now is frozen
    (never walked again); the window's garbage is collected once it ends."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


def probe_url(url: str, rate: float, duration: float, fresh_connections: bool) -> Samples:
    """Sequential GETs on a fixed schedule; returns (latency ms, status) per request.

    A request slower than the interval delays the next one (no catch-up burst), so a stall shows
    up once in the samples instead of being hidden.
    """
    limits = httpx.Limits(max_keepalive_connections=0 if fresh_connections else 1, max_connections=1)
    samples: Samples = []
    with httpx.Client(timeout=REQUEST_TIMEOUT_SECONDS, limits=limits) as client, _collector_paused():
        for _ in range(2):  # warm the client (and the keep-alive connection)
            client.get(url)
        interval = 1.0 / rate
        start = time.perf_counter()
        next_at = start
        while next_at < start + duration:
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent = time.perf_counter()
            try:
                status = client.get(url).status_code
            except httpx.HTTPError:
                status = 0
            samples.append(((time.perf_counter() - sent) * 1000.0, status))
            next_at = max(next_at + interval, time.perf_counter())
    return samples


def _probe_main(conn: Connection) -> None:
    """The probe process: run one ``probe_url`` per request received, until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the bench handles Ctrl-C and stops us
    conn.send(os.getpid())
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        conn.send(probe_url(*job))


class Prober:
    """A spawned process running ``probe_url``, started (imports paid) before any timing."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_probe_main, args=(child,), name="probe", daemon=True)
        self._process.start()
        child.close()
        if not self._conn.poll(START_TIMEOUT_SECONDS):
            self.close()
            raise RuntimeError("the probe process did not start")
        self.pid: int = self._conn.recv()

    async def probe(self, url: str, rate: float, duration: float, fresh_connections: bool) -> Samples:
        self._conn.send((url, rate, duration, fresh_connections))
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = self._conn.fileno()

        def readable() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, readable)
        try:
            await asyncio.wait_for(ready, duration + 2 * REQUEST_TIMEOUT_SECONDS)
        finally:
            loop.remove_reader(fd)
        samples: Samples = self._conn.recv()
        return samples

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(None)
        self._process.join(timeout=2)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)
        self._conn.close()
