"""Login throughput against the argon2id ceiling, and JWKS latency while logins saturate the CPU.

Run from the repository root::

    uv run python bench/login_jwks.py
    uv run python bench/login_jwks.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
    uv run python bench/login_jwks.py --argon2-threads default,1   # compare IDP_ARGON2_THREADS
    uv run python bench/login_jwks.py --client httpx # httpx load generator instead of the raw one

One run prints:

1. the raw argon2id verify rate with the service's default parameters (m=19456 KiB, t=2, p=1),
   one verifier thread per core (argon2-cffi releases the GIL), measured before and after the
   server runs (the mean is the ceiling; the spread shows how noisy the machine is);
2. the login throughput of ``idp serve --workers N`` (real default argon2 parameters) under a
   fixed-concurrency asyncio/httpx load, and its ratio to the ceiling (goal >= 0.85);
3. JWKS p50/p99 from a sequential probe at a fixed rate while the logins run (goal p99 < 20 ms),
   and the idle JWKS p99 for reference.

The JWKS probe runs in its own (spawned) process so that its timings are not inflated by the
login generator holding the bench's GIL. On Linux it also prints the CPU each process used
during the measured window (from ``/proc``), split per uvicorn worker into event-loop thread and
other threads (argon2 pool, SQLite thread).

Everything is loopback only and bounded in time; the server is killed at the end, also on error
or Ctrl-C. With ``--database-url`` (PostgreSQL) the URL is only used as an administrative
connection: a throwaway database ``idp_bench_<random>`` is created on that server for each round
and dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from argon2 import PasswordHasher, Type

# The service defaults (service/config.py); deliberately not the tests' CHEAP_ARGON2.
ARGON2_MEMORY_KIB = 19456
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1

LOGIN_RATIO_GOAL = 0.85
JWKS_P99_GOAL_MS = 20.0
NOISE_WARNING = 0.15  # relative before/after spread of the raw argon2 rate
FOREIGN_WARNING_CORES = 0.15

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
REQUEST_TIMEOUT_SECONDS = 10.0
REPO_ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation); NaN for no samples."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_hasher() -> PasswordHasher:
    return PasswordHasher(
        time_cost=ARGON2_TIME_COST,
        memory_cost=ARGON2_MEMORY_KIB,
        parallelism=ARGON2_PARALLELISM,
        hash_len=32,
        salt_len=16,
        type=Type.ID,
    )


# --------------------------------------------------------------------------------------------
# 1. Raw argon2id ceiling
# --------------------------------------------------------------------------------------------


def raw_argon2_rate(seconds: float, threads: int) -> float:
    """Verifications per second with ``threads`` verifiers running flat out for ``seconds``."""
    hasher = make_hasher()
    password = "bench-" + secrets.token_urlsafe(12)
    encoded = hasher.hash(password)
    hasher.verify(encoded, password)  # warm: allocator, code paths
    barrier = threading.Barrier(threads)

    def verifier() -> tuple[int, float, float]:
        barrier.wait()
        started = time.perf_counter()
        deadline = started + seconds
        done = 0
        while time.perf_counter() < deadline:
            hasher.verify(encoded, password)
            done += 1
        return done, started, time.perf_counter()

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="raw-argon2") as pool:
        results = list(pool.map(lambda _: verifier(), range(threads)))
    total = sum(done for done, _, _ in results)
    elapsed = max(end for _, _, end in results) - min(start for _, start, _ in results)
    return total / elapsed


# --------------------------------------------------------------------------------------------
# CPU accounting from /proc (Linux only; everything degrades to "n/a" elsewhere)
# --------------------------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(path: str) -> list[str] | None:
    """Fields of a /proc stat file after the ``(comm)``: index 0 is the state (field 3)."""
    try:
        raw = Path(path).read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    fields = _stat_fields(path)
    if fields is None:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def thread_ids(pid: int) -> list[int]:
    try:
        return [int(name) for name in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def involuntary_switches(pid: int) -> int:
    """Sum over the process's threads of the times the scheduler preempted them."""
    total = 0
    for tid in thread_ids(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
                if line.startswith("nonvoluntary_ctxt_switches:"):
                    total += int(line.split()[1])
    return total


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            fields = _stat_fields(f"/proc/{name}/stat")
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(name))
    found: list[int] = []
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def established_connections(port: int, pids: Sequence[int]) -> dict[int, int]:
    """Accepted (ESTABLISHED) TCP connections on ``port`` held by each of ``pids``."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for row in Path(table).read_text().splitlines()[1:]:
                cols = row.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] == "01":
                    inodes.add(f"socket:[{cols[9]}]")
    counts: dict[int, int] = {}
    for pid in pids:
        count = 0
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    count += os.readlink(f"/proc/{pid}/fd/{fd}") in inodes
        counts[pid] = count
    return counts


def system_cpu() -> tuple[int, int, int]:
    """(busy, idle, steal) jiffies from /proc/stat, zeros when unavailable."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return 0, 0, 0
    values = [int(v) for v in first]
    idle = values[3] + values[4]  # idle + iowait
    steal = values[7] if len(values) > 7 else 0
    return sum(values[:8]) - idle - steal, idle, steal


@dataclass
class CpuSnapshot:
    at: float
    system: tuple[int, int, int]
    bench: float
    probe: float
    processes: dict[int, float]  # server pid -> cpu seconds
    loop_threads: dict[int, float]  # server pid -> cpu seconds of its main (event-loop) thread
    preemptions: dict[int, int]  # server pid -> involuntary context switches (all threads)
    threads: dict[int, int]  # server pid -> number of threads
    connections: dict[int, int]  # server pid -> accepted client connections


def snapshot(server_pids: Sequence[int], probe_pid: int | None, port: int) -> CpuSnapshot:
    return CpuSnapshot(
        at=time.monotonic(),
        system=system_cpu(),
        bench=time.process_time(),
        probe=cpu_seconds(probe_pid) if probe_pid else math.nan,
        processes={pid: cpu_seconds(pid) for pid in server_pids},
        loop_threads={pid: cpu_seconds(pid, pid) for pid in server_pids},
        preemptions={pid: involuntary_switches(pid) for pid in server_pids},
        threads={pid: len(thread_ids(pid)) for pid in server_pids},
        connections=established_connections(port, server_pids),
    )


@dataclass
class CpuReport:
    seconds: float
    busy_fraction: float
    steal_fraction: float
    bench_cores: float
    probe_cores: float
    # pid, cores, event-loop thread cores, threads, client connections, preemptions per second
    workers: list[tuple[int, float, float, int, int, float]]
    supervisor_cores: float

    @property
    def foreign_cores(self) -> float:
        """CPU used by processes that are neither the server nor the bench (other load)."""
        ours = self.bench_cores + self.probe_cores + self.supervisor_cores
        ours += sum(worker[1] for worker in self.workers)
        return max(0.0, self.busy_fraction * (os.cpu_count() or 1) - ours)


def cpu_report(before: CpuSnapshot, after: CpuSnapshot, workers: Sequence[int], supervisor: int) -> CpuReport:
    seconds = after.at - before.at
    busy = after.system[0] - before.system[0]
    idle = after.system[1] - before.system[1]
    steal = after.system[2] - before.system[2]
    total = busy + idle + steal
    return CpuReport(
        seconds=seconds,
        busy_fraction=busy / total if total else math.nan,
        steal_fraction=steal / total if total else math.nan,
        bench_cores=(after.bench - before.bench) / seconds,
        probe_cores=(after.probe - before.probe) / seconds,
        workers=[
            (
                pid,
                (after.processes[pid] - before.processes[pid]) / seconds,
                (after.loop_threads[pid] - before.loop_threads[pid]) / seconds,
                after.threads[pid],
                after.connections[pid],
                (after.preemptions[pid] - before.preemptions[pid]) / seconds,
            )
            for pid in workers
        ],
        supervisor_cores=(
            (after.processes[supervisor] - before.processes[supervisor]) / seconds
            if supervisor not in workers
            else 0.0
        ),
    )


# --------------------------------------------------------------------------------------------
# The server under test
# --------------------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    workers: list[int] = field(default_factory=list)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the uvicorn supervisor (it stops its workers), then SIGKILL the whole group."""
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
    # The server runs in its own session/process group: make sure no worker outlives the bench.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_TIMEOUT_SECONDS)


@contextlib.asynccontextmanager
async def running_server(workdir: Path, env: dict[str, str], workers: int) -> AsyncIterator[Server]:
    port = free_port()
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service", "serve", "--port", str(port), "--workers", str(workers)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the bench only; we stop the server ourselves
        )
    server = Server(f"http://127.0.0.1:{port}", port, process, log_path)
    try:
        await _wait_ready(server, workers)
        yield server
    finally:
        await asyncio.to_thread(_stop, process)


async def _wait_ready(server: Server, workers: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    async with httpx.AsyncClient(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"idp serve exited with {server.process.returncode}:\n{server.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                response = await client.get(f"{server.url}/health/ready")
                if response.status_code == 200:
                    break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"idp serve not ready in {START_TIMEOUT_SECONDS:.0f}s:\n{server.log_tail()}")
        # With --workers > 1 the first ready answer may come from one worker only: wait until all
        # worker processes exist, then give the others a moment to finish their start-up.
        while time.monotonic() < deadline:
            found = [pid for pid in descendants(server.process.pid) if "resource_tracker" not in cmdline(pid)]
            if workers == 1 or len(found) >= workers or not Path("/proc").is_dir():
                server.workers = found if workers > 1 and found else [server.process.pid]
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"expected {workers} worker processes:\n{server.log_tail()}")
        await asyncio.sleep(0.5)  # let the other workers finish their lifespan start-up


def server_env(source: Path, database_url: str | None, argon2_threads: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    # PYTHONPATH comes before the venv's editable install: ``-m service`` runs ``source``'s package.
    env["PYTHONPATH"] = str(source) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if database_url is not None:
        # A PostgreSQL deployment keeps sessions in Redis: use the local one under a bench prefix.
        env["IDP_DATABASE_URL"] = database_url
        env["IDP_REDIS_URL"] = os.environ.get("IDP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
        env["IDP_REDIS_PREFIX"] = f"idpbench:{os.getpid()}:"
    # The bench measures throughput from one IP, not the rate limits.
    rules = (
        "LOGIN_IP",
        "LOGIN_IP_ACCOUNT",
        "LOGIN_ACCOUNT_FAILURES",
        "SIGNUP_IP",
        "TOKEN_IP",
        "TOKEN_CLIENT",
    )
    for name in rules:
        env[f"IDP_RATELIMIT_{name}"] = "1000000/60"
    if argon2_threads != "default":
        env["IDP_ARGON2_THREADS"] = argon2_threads
    return env


@contextlib.asynccontextmanager
async def throwaway_database(admin_url: str | None) -> AsyncIterator[str | None]:
    """Yield a fresh PostgreSQL URL (dropped afterwards), or None for the default SQLite file."""
    if admin_url is None:
        yield None
        return
    name = f"idp_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_url, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    parts = urlsplit(admin_url)
    try:
        yield urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))
    finally:
        admin = await asyncpg.connect(admin_url, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


# --------------------------------------------------------------------------------------------
# 3. JWKS probe (runs in a separate, spawned process)
# --------------------------------------------------------------------------------------------


def jwks_probe(url: str, rate: float, duration: float, fresh_connections: bool) -> list[tuple[float, int]]:
    """Sequential GETs on a fixed schedule; returns (latency ms, status) per request.

    A request slower than the interval delays the next one (no catch-up burst), so a stall shows
    up once in the samples instead of being hidden.
    """
    limits = httpx.Limits(max_keepalive_connections=0 if fresh_connections else 1, max_connections=1)
    samples: list[tuple[float, int]] = []
    with httpx.Client(timeout=REQUEST_TIMEOUT_SECONDS, limits=limits) as client:
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


Samples = list[tuple[float, int]]


def _probe_main(conn: Connection) -> None:
    """The probe process: run one ``jwks_probe`` per request received, until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the bench handles Ctrl-C and stops us
    conn.send(os.getpid())
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        conn.send(jwks_probe(*job))


class Prober:
    """A spawned process running the JWKS probe, started (imports paid) before any timing."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_probe_main, args=(child,), name="jwks-probe", daemon=True)
        self._process.start()
        child.close()
        if not self._conn.poll(START_TIMEOUT_SECONDS):
            self.close()
            raise RuntimeError("the JWKS probe process did not start")
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


# --------------------------------------------------------------------------------------------
# 2. Login load
# --------------------------------------------------------------------------------------------


@dataclass
class LoginLoad:
    completed: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    recording: bool = False

    def record(self, status: int, sent: float) -> None:
        self.statuses[status] += 1
        if status == 200:
            self.completed += 1
            if self.recording:
                self.latencies_ms.append((time.perf_counter() - sent) * 1000.0)


async def login_worker(client: httpx.AsyncClient, body: bytes, load: LoginLoad, stop: asyncio.Event) -> None:
    headers = {"content-type": "application/json"}
    while not stop.is_set():
        sent = time.perf_counter()
        try:
            response = await client.post("/v1/login", content=body, headers=headers)
            status = response.status_code
        except httpx.HTTPError:
            status = 0
        if stop.is_set():
            return
        load.record(status, sent)


def _content_length(head: bytes) -> int:
    """The Content-Length of a lower-cased response head; ValueError when absent."""
    start = head.find(b"\r\ncontent-length:")
    if start < 0:
        raise ValueError("response without Content-Length")
    return int(head[start + 17 : head.index(b"\r\n", start + 2)])


async def raw_login_worker(port: int, body: bytes, load: LoginLoad, stop: asyncio.Event) -> None:
    """The same loop over a minimal HTTP/1.1 keep-alive client (``--client raw``).

    About ten times less client CPU per request than httpx, to show how much of the 2 cores the
    load generator itself takes away from the server.
    """
    request = (
        f"POST /v1/login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            load.record(0, time.perf_counter())
            await asyncio.sleep(0.1)
            continue
        try:
            while not stop.is_set():
                sent = time.perf_counter()
                writer.write(request)
                head = (await reader.readuntil(b"\r\n\r\n")).lower()
                status = int(head[9:12])
                await reader.readexactly(_content_length(head))
                if not stop.is_set():
                    load.record(status, sent)
                if b"\r\nconnection: close" in head:
                    break
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            if not stop.is_set():
                load.record(0, time.perf_counter())
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def signup(client: httpx.AsyncClient) -> bytes:
    email = f"bench-{secrets.token_hex(4)}@example.com"
    password = "bench-" + secrets.token_urlsafe(12)
    response = await client.post("/v1/signup", json={"email": email, "password": password})
    if response.status_code != 201:
        raise RuntimeError(f"signup failed: {response.status_code} {response.text}")
    body = httpx.Request("POST", "/", json={"email": email, "password": password}).content
    check = await client.post("/v1/login", content=body, headers={"content-type": "application/json"})
    if check.status_code != 200 or "access_token" not in check.json():
        raise RuntimeError(f"login failed: {check.status_code} {check.text}")
    return body


# --------------------------------------------------------------------------------------------
# One round: start a server, measure, stop it
# --------------------------------------------------------------------------------------------


@dataclass
class RoundResult:
    label: str
    logins_per_second: float
    login_p50_ms: float
    login_p99_ms: float
    login_statuses: Counter[int]
    jwks_idle: list[tuple[float, int]]
    jwks_load: list[tuple[float, int]]
    cpu: CpuReport | None


async def run_round(
    args: argparse.Namespace, workdir: Path, argon2_threads: str, prober: Prober
) -> RoundResult:
    async with throwaway_database(args.database_url) as database_url:
        env = server_env(args.source, database_url, argon2_threads)
        async with running_server(workdir, env, args.workers) as server:
            jwks_url = f"{server.url}/.well-known/jwks.json"
            pids = [server.process.pid, *server.workers]
            limits = httpx.Limits(
                max_connections=args.concurrency, max_keepalive_connections=args.concurrency
            )
            async with httpx.AsyncClient(
                base_url=server.url, limits=limits, timeout=REQUEST_TIMEOUT_SECONDS
            ) as client:
                body = await signup(client)
                idle = await prober.probe(jwks_url, args.idle_rate, args.idle_seconds, args.fresh_connections)

                load = LoginLoad()
                stop = asyncio.Event()
                tasks = [
                    asyncio.create_task(
                        raw_login_worker(server.port, body, load, stop)
                        if args.client == "raw"
                        else login_worker(client, body, load, stop)
                    )
                    for _ in range(args.concurrency)
                ]
                under_load: asyncio.Task[Samples] | None = None
                try:
                    await asyncio.sleep(args.warmup)
                    load.recording = True
                    start_count = load.completed
                    before = snapshot(pids, prober.pid, server.port)
                    under_load = asyncio.create_task(
                        prober.probe(jwks_url, args.probe_rate, args.duration, args.fresh_connections)
                    )
                    await asyncio.sleep(args.duration)
                    after = snapshot(pids, prober.pid, server.port)
                    logins = load.completed - start_count
                    elapsed = after.at - before.at
                    jwks_load = await under_load
                finally:
                    stop.set()
                    if under_load is not None and not under_load.done():
                        under_load.cancel()
                    _, pending = await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_SECONDS)
                    for task in pending:
                        task.cancel()
    cpu = cpu_report(before, after, server.workers, server.process.pid) if Path("/proc").is_dir() else None
    return RoundResult(
        label=f"IDP_ARGON2_THREADS={argon2_threads}",
        logins_per_second=logins / elapsed,
        login_p50_ms=percentile(load.latencies_ms, 50),
        login_p99_ms=percentile(load.latencies_ms, 99),
        login_statuses=load.statuses,
        jwks_idle=idle,
        jwks_load=jwks_load,
        cpu=cpu,
    )


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_report(
    args: argparse.Namespace, threads: int, raw: tuple[float, float], rounds: Sequence[RoundResult]
) -> None:
    ceiling = sum(raw) / 2
    backend = "PostgreSQL (throwaway db)" if args.database_url else "SQLite (temp dir)"
    print()
    print(
        f"idp login/JWKS bench: {os.cpu_count()} CPUs, uvicorn --workers {args.workers}, {backend}, "
        f"argon2id m={ARGON2_MEMORY_KIB} KiB t={ARGON2_TIME_COST} p={ARGON2_PARALLELISM}"
    )
    print(
        f"login load ({args.client}): {args.concurrency} concurrent for {args.duration:g}s "
        f"(after {args.warmup:g}s warm-up); "
        f"JWKS probe: sequential, {args.probe_rate:g} req/s under load, {args.idle_rate:g} req/s idle, "
        f"{'new connection per request' if args.fresh_connections else 'one keep-alive connection'}"
    )
    print()
    rows: list[tuple[str, str, str, str, str]] = [
        (
            f"raw argon2id verify ({threads} threads)",
            f"{ceiling:7.1f} /s",
            f"before {raw[0]:.1f}, after {raw[1]:.1f}",
            "ceiling",
            "",
        )
    ]
    for result in rounds:
        ratio = result.logins_per_second / ceiling
        load_ms = [ms for ms, status in result.jwks_load if status == 200]
        idle_ms = [ms for ms, status in result.jwks_idle if status == 200]
        p99 = percentile(load_ms, 99)
        rows += [
            (f"[{result.label}]", "", "", "", ""),
            (
                "  login throughput",
                f"{result.logins_per_second:7.1f} /s",
                f"{ratio:.2f} x raw",
                f">= {LOGIN_RATIO_GOAL:.2f} x raw",
                verdict(ratio >= LOGIN_RATIO_GOAL),
            ),
            (
                "  login latency p50 / p99",
                f"{result.login_p50_ms:7.1f} ms",
                f"p99 {result.login_p99_ms:.1f} ms",
                "",
                "",
            ),
            ("  JWKS p50 under load", f"{percentile(load_ms, 50):7.2f} ms", f"n={len(load_ms)}", "", ""),
            (
                "  JWKS p99 under load",
                f"{p99:7.2f} ms",
                f"max {max(load_ms, default=math.nan):.2f} ms",
                f"< {JWKS_P99_GOAL_MS:g} ms",
                verdict(p99 < JWKS_P99_GOAL_MS),
            ),
            (
                "  JWKS p99 idle (reference)",
                f"{percentile(idle_ms, 99):7.2f} ms",
                f"p50 {percentile(idle_ms, 50):.2f} ms, n={len(idle_ms)}",
                "",
                "",
            ),
        ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    header = ("metric", "value", "detail", "goal", "result")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row).rstrip())

    spread = abs(raw[0] - raw[1]) / ceiling
    if spread > NOISE_WARNING:
        print(
            f"\nWARNING: the raw argon2 rate moved {spread:.0%} between before and after the server ran:"
            " the machine is noisy (other load, CPU boost, neighbours); the ratio is approximate."
        )
    for result in rounds:
        if result.cpu is not None and result.cpu.foreign_cores > FOREIGN_WARNING_CORES:
            print(
                f"WARNING [{result.label}]: other processes (+ kernel) used "
                f"~{result.cpu.foreign_cores:.2f} cores during the measured window; figures are pessimistic."
            )

    for result in rounds:
        errors = {s: n for s, n in result.login_statuses.items() if s != 200}
        jwks_errors = sum(1 for _, s in result.jwks_load + result.jwks_idle if s != 200)
        if errors or jwks_errors:
            print(f"\n[{result.label}] non-200 answers: logins {errors or 0}, JWKS {jwks_errors}")
        if result.cpu is None:
            continue
        cpu = result.cpu
        print(
            f"\n[{result.label}] CPU over the {cpu.seconds:.1f}s window: machine busy {cpu.busy_fraction:.0%}"
            f" (steal {cpu.steal_fraction:.0%}); bench load generator {cpu.bench_cores:.2f} cores,"
            f" JWKS probe {cpu.probe_cores:.2f} cores, uvicorn supervisor {cpu.supervisor_cores:.2f} cores,"
            f" other processes + kernel ~{cpu.foreign_cores:.2f} cores"
        )
        for pid, cores, loop_cores, nthreads, connections, preempted in cpu.workers:
            print(
                f"  worker pid {pid}: {cores:.2f} cores ({loop_cores:.2f} event-loop thread, "
                f"{cores - loop_cores:.2f} other threads), {nthreads} threads, "
                f"{connections} client connections, {preempted:.0f} preemptions/s"
            )
    print()


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="measured login load, seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="login load before measuring, seconds")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent login requests")
    parser.add_argument(
        "--client",
        choices=("httpx", "raw"),
        default="raw",
        help="login load generator: a minimal HTTP/1.1 keep-alive client (default; it leaves the "
        "2 cores to the server) or httpx.AsyncClient (about 0.13 cores more)",
    )
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (idp serve --workers)")
    parser.add_argument(
        "--database-url",
        help="postgresql://user@127.0.0.1:5432/db: admin connection used to create and drop a "
        "throwaway database (default: SQLite in the temp dir)",
    )
    parser.add_argument(
        "--argon2-threads",
        default="default",
        help="comma list of IDP_ARGON2_THREADS values, one server round each "
        "('default' leaves it unset = cpu count per worker), e.g. default,1",
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=REPO_ROOT,
        help="checkout whose service/ package is served (default: this repository), e.g. a "
        "`git archive HEAD` export to measure a fixed revision",
    )
    parser.add_argument("--raw-seconds", type=float, default=3.0, help="raw argon2 measurement, seconds")
    parser.add_argument("--raw-threads", type=int, default=os.cpu_count() or 2, help="raw argon2 verifiers")
    parser.add_argument("--probe-rate", type=float, default=20.0, help="JWKS requests/s under load")
    parser.add_argument("--idle-rate", type=float, default=100.0, help="JWKS requests/s on the idle server")
    parser.add_argument("--idle-seconds", type=float, default=2.0, help="idle JWKS probe, seconds")
    parser.add_argument(
        "--keep-alive",
        dest="fresh_connections",
        action="store_false",
        help="probe JWKS over one keep-alive connection (one worker) instead of a new connection "
        "per request (spread over the workers, like a cold verifier)",
    )
    args = parser.parse_args(argv)
    if args.database_url and not args.database_url.startswith(("postgresql://", "postgres://")):
        parser.error("--database-url must be a postgresql:// URL")
    host = urlsplit(args.database_url).hostname if args.database_url else None
    if host not in {None, "127.0.0.1", "localhost", "::1"}:
        parser.error("--database-url must point at the loopback interface")
    values = [v.strip() for v in args.argon2_threads.split(",") if v.strip()]
    if not values or any(v != "default" and not (v.isdigit() and int(v) > 0) for v in values):
        parser.error("--argon2-threads takes 'default' or positive integers, comma separated")
    args.argon2_threads = values
    args.source = args.source.resolve()
    if not (args.source / "service" / "__main__.py").is_file():
        parser.error(f"--source {args.source} has no service/ package")
    if args.duration <= 0 or args.concurrency <= 0 or args.workers <= 0 or args.probe_rate <= 0:
        parser.error("--duration, --concurrency, --workers and --probe-rate must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    print(f"raw argon2id: {args.raw_threads} verifier threads for {args.raw_seconds:g}s ...", flush=True)
    before = raw_argon2_rate(args.raw_seconds, args.raw_threads)
    rounds: list[RoundResult] = []
    prober = Prober()
    try:
        with tempfile.TemporaryDirectory(prefix="idp-bench-") as tmp:
            for index, threads in enumerate(args.argon2_threads):
                print(f"server round IDP_ARGON2_THREADS={threads}: starting ...", flush=True)
                workdir = Path(tmp) / f"round-{index}"
                workdir.mkdir()
                rounds.append(asyncio.run(run_round(args, workdir, threads, prober)))
    finally:
        prober.close()
    print(f"raw argon2id again for {args.raw_seconds:g}s ...", flush=True)
    after = raw_argon2_rate(args.raw_seconds, args.raw_threads)
    print_report(args, args.raw_threads, (before, after), rounds)
    print(f"total time {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except (RuntimeError, OSError, asyncpg.PostgresError) as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        sys.exit(1)
