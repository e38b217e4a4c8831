"""Our IdP side by side with a real Better Auth 1.7.25 server, driven by the same load generator.

Run from the repository root (whole run well under 3 minutes)::

    uv run python bench/versus_better_auth.py
    uv run python bench/versus_better_auth.py --duration 4 --concurrency 32

It starts, on loopback:

- our IdP: ``python -m service serve --workers 2`` on a throwaway PostgreSQL database (created
  and dropped with asyncpg) + the local Redis under a unique ``IDP_REDIS_PREFIX`` (its keys are
  deleted at the end), every ``IDP_RATELIMIT_*`` at ``1000000/60``, default argon2 parameters;
- Better Auth (``tests/support/better_auth.run_better_auth``: memory adapter, JWT plugin with
  EdDSA keys, ``NODE_ENV=test``, one Node process);
- for the Litestar-overhead figure only, a bare ASGI app (this file, ``--serve-bare``) serving
  our JWKS bytes under the same ``uvicorn.run`` settings as ``idp serve``.

Every HTTP figure comes from the same generator: a minimal HTTP/1.1 keep-alive client on uvloop
(``bench/login_jwks.py``'s raw approach, plus chunked bodies for Node), a fixed number of
connections looping request → response for a fixed time after a warm-up. It prints, with
PASS/MISS per goal:

1. JWKS: ``GET /.well-known/jwks.json`` vs ``GET /api/auth/jwks``, req/s and p99 (goal >= 10x);
2. token issuance: our refresh grant (each connection carries its own rotating session chain)
   vs ``GET /api/auth/token`` with a session cookie; both sign a fresh JWT (goal >= 5x);
3. login: ``POST /v1/login`` vs ``POST /api/auth/sign-in/email``, each divided by its own hash's
   raw rate measured in this run (argon2id m=19456 t=2 p=1 via argon2-cffi, one thread per core;
   scrypt N=16384 r=16 p=1 dkLen=64 via Node's ``crypto.scrypt``, what Better Auth calls, one
   request in flight per core) (goal ours >= 0.85 of its ceiling);
4. offline verification: ``examples/fastapi-api/idp_auth.py``'s ``IdPAuth.verify`` on one of our
   access tokens (JWKS cached) vs raw ``cryptography`` Ed25519 verify of the same signing input,
   single-threaded ops/s (goal >= 0.75);
5. Litestar overhead: our JWKS req/s vs the bare ASGI app's (goal >= 0.45).

Everything started is stopped at the end, also on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib.util
import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import asyncpg
import httpx
import redis.asyncio as aioredis
import uvicorn
import uvloop
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from login_jwks import (
    ARGON2_MEMORY_KIB,
    ARGON2_PARALLELISM,
    ARGON2_TIME_COST,
    _stop,
    cpu_seconds,
    descendants,
    established_connections,
    free_port,
    percentile,
    raw_argon2_rate,
    running_server,
    server_env,
    system_cpu,
    throwaway_database,
)

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # tests.support.better_auth

from tests.support.better_auth import BetterAuthServer, run_better_auth  # noqa: E402

FIGURES = ("jwks", "token", "login", "verify")
JWKS_GOAL = 10.0
TOKEN_GOAL = 5.0
LOGIN_GOAL = 0.85
VERIFY_GOAL = 0.75
LITESTAR_GOAL = 0.45
NOISE_WARNING = 0.15  # relative before/after spread of a raw hash rate
FOREIGN_WARNING_CORES = 0.25

SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN = 16384, 16, 1, 64
CORES = os.cpu_count() or 2
START_TIMEOUT_SECONDS = 30.0
REQUEST_TIMEOUT_SECONDS = 10.0
BARE_BODY_ENV = "VBA_BARE_BODY"
BARE_HEADERS_ENV = "VBA_BARE_HEADERS"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


# --------------------------------------------------------------------------------------------
# The bare ASGI app (Litestar-overhead reference), served by ``--serve-bare PORT``
# --------------------------------------------------------------------------------------------

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def bare_app_factory() -> ASGIApp:
    """Answer every request with the JWKS bytes and the headers our server sends with them."""
    body = Path(os.environ[BARE_BODY_ENV]).read_bytes()
    extra: list[list[str]] = json.loads(os.environ.get(BARE_HEADERS_ENV, "[]"))
    headers = [(b"content-length", str(len(body)).encode())]
    headers += [(name.encode(), value.encode()) for name, value in extra]
    start = {"type": "http.response.start", "status": 200, "headers": headers}
    message = {"type": "http.response.body", "body": body}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                if event["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif event["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await send(start)
        await send(message)

    return app


def serve_bare(port: int, workers: int) -> None:
    # The same settings as ``service.cli`` passes for ``idp serve``.
    uvicorn.run(
        "versus_better_auth:bare_app_factory",
        factory=True,
        app_dir=str(BENCH_DIR),
        host="127.0.0.1",
        port=port,
        workers=workers,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=10,
        log_level="info",
    )


@contextlib.asynccontextmanager
async def running_bare(
    workdir: Path, body: bytes, headers: list[list[str]], workers: int
) -> AsyncIterator[tuple[int, list[int]]]:
    """Serve the bare app; yields its port and pids (supervisor, workers)."""
    port = free_port()
    body_path = workdir / "jwks.json"
    body_path.write_bytes(body)
    env = dict(os.environ, **{BARE_BODY_ENV: str(body_path), BARE_HEADERS_ENV: json.dumps(headers)})
    with (workdir / "bare.log").open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--serve-bare",
                str(port),
                "--workers",
                str(workers),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        async with httpx.AsyncClient(timeout=1.0) as client:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"bare ASGI server exited: {(workdir / 'bare.log').read_text()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://127.0.0.1:{port}/")).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("bare ASGI server not ready")
                await asyncio.sleep(0.1)
        while len(server_workers(process.pid)) < workers and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        yield port, [process.pid, *server_workers(process.pid)]
    finally:
        await asyncio.to_thread(_stop, process)


def server_workers(supervisor: int) -> list[int]:
    return [pid for pid in descendants(supervisor) if "resource_tracker" not in _cmdline(pid)]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# --------------------------------------------------------------------------------------------
# The load generator: raw HTTP/1.1 keep-alive connections on uvloop
# --------------------------------------------------------------------------------------------


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
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class RefreshChain:
    """One session's refresh token, carried forward: every answer rotates it."""

    port: int
    token: str
    broken: int = 0

    def request(self) -> bytes:
        body = f"grant_type=refresh_token&refresh_token={quote(self.token, safe='')}".encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return http_request("POST", "/oauth2/token", self.port, headers, body)

    def response(self, status: int, body: bytes) -> bool:
        if status != 200:
            self.broken += 1
            return False
        self.token = json.loads(body)["refresh_token"]
        return True


@dataclass
class Load:
    recording: bool = False
    ok: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)

    def record(self, status: int, sent: float) -> None:
        if not self.recording:
            return
        self.statuses[status] += 1
        if status == 200:
            self.ok += 1
            self.latencies_ms.append((time.perf_counter() - sent) * 1000.0)


async def _read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
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


def _owner(server_port: int, client_port: int, workers: Sequence[int]) -> int | None:
    """The worker pid that accepted our connection from ``client_port`` (None: not accepted yet)."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for row in Path(table).read_text().splitlines()[1:]:
                cols = row.split()
                local, remote = cols[1].rsplit(":", 1)[1], cols[2].rsplit(":", 1)[1]
                if int(local, 16) == server_port and int(remote, 16) == client_port:
                    inode = f"socket:[{cols[9]}]"
    if inode is None:
        return None
    for pid in workers:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == inode:
                        return pid
    return None


async def open_balanced(port: int, count: int, workers: Sequence[int]) -> list[Stream]:
    """``count`` connections spread evenly over ``workers``.

    uvicorn's workers share one listening socket and whichever is awake accepts: a burst of
    connections often lands 16/0 on one worker. A load balancer in front of real deployments
    spreads connections; here we reconnect until each worker holds its share (best effort).
    """
    if len(workers) < 2 or not Path("/proc").is_dir():
        return [await asyncio.open_connection("127.0.0.1", port, limit=1 << 20) for _ in range(count)]
    share = math.ceil(count / len(workers))
    held: Counter[int] = Counter()
    streams: list[Stream] = []
    attempts = 0
    while len(streams) < count:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        client_port = writer.get_extra_info("sockname")[1]
        owner = None
        for _ in range(50):
            owner = _owner(port, client_port, workers)
            if owner is not None:
                break
            await asyncio.sleep(0.005)
        attempts += 1
        if owner is not None and held[owner] >= share and attempts < 20 * count:
            writer.close()
            continue
        held[owner or 0] += 1
        streams.append((reader, writer))
    return streams


async def connection_worker(
    port: int, job: Job, load: Load, stop: asyncio.Event, first: Stream | None = None
) -> None:
    while not stop.is_set():
        if first is not None:
            (reader, writer), first = first, None
        else:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
            except OSError:
                load.record(0, time.perf_counter())
                await asyncio.sleep(0.1)
                continue
        try:
            while not stop.is_set():
                sent = time.perf_counter()
                writer.write(job.request())
                head = (await reader.readuntil(b"\r\n\r\n")).lower()
                status = int(head[9:12])
                body = await _read_body(reader, head)
                if stop.is_set():
                    return
                load.record(status, sent)
                if not job.response(status, body):
                    return
                if b"\r\nconnection: close" in head:
                    break
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            if not stop.is_set():
                load.record(0, time.perf_counter())
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


@dataclass
class Measurement:
    label: str
    rate: float
    p50_ms: float
    p99_ms: float
    statuses: Counter[int]
    server_cores: float
    bench_cores: float
    machine_busy: float
    connections: dict[int, int]  # server pid -> client connections it holds

    @property
    def other_cores(self) -> float:
        """CPU used by every other process (+ kernel): PostgreSQL and Redis, or foreign load."""
        return max(0.0, self.machine_busy * CORES - self.server_cores - self.bench_cores)

    def describe(self) -> str:
        errors = {s: n for s, n in self.statuses.items() if s != 200}
        spread = "/".join(str(n) for n in self.connections.values()) if len(self.connections) > 1 else ""
        return (
            f"{self.label:<34} {self.rate:9.1f} /s  p50 {self.p50_ms:7.2f} ms  p99 {self.p99_ms:7.2f} ms"
            f"  server {self.server_cores:.2f} cores, load generator {self.bench_cores:.2f},"
            f" machine busy {self.machine_busy:.0%} (others ~{self.other_cores:.2f} cores)"
            + (f", connections per worker {spread}" if spread else "")
            + (f", non-200 {errors}" if errors else "")
        )


async def measure(
    label: str,
    port: int,
    jobs: Sequence[Job],
    server_pids: Sequence[int],
    args: argparse.Namespace,
) -> Measurement:
    load = Load()
    stop = asyncio.Event()
    workers = list(server_pids[1:])  # server_pids: supervisor first, then its workers
    streams = await open_balanced(port, len(jobs), workers)
    tasks = [
        asyncio.create_task(connection_worker(port, job, load, stop, stream))
        for job, stream in zip(jobs, streams, strict=True)
    ]
    try:
        await asyncio.sleep(args.warmup)
        before_at, before_sys, before_bench = time.monotonic(), system_cpu(), time.process_time()
        before_srv = sum(cpu_seconds(pid) for pid in server_pids)
        load.recording = True
        await asyncio.sleep(args.duration)
        load.recording = False
        after_at, after_sys, after_bench = time.monotonic(), system_cpu(), time.process_time()
        after_srv = sum(cpu_seconds(pid) for pid in server_pids)
        connections = established_connections(port, workers) if len(workers) > 1 else {}
    finally:
        stop.set()
        _, pending = await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_SECONDS)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    elapsed = after_at - before_at
    busy = after_sys[0] - before_sys[0]
    total = busy + (after_sys[1] - before_sys[1]) + (after_sys[2] - before_sys[2])
    result = Measurement(
        label=label,
        rate=load.ok / elapsed,
        p50_ms=percentile(load.latencies_ms, 50),
        p99_ms=percentile(load.latencies_ms, 99),
        statuses=load.statuses,
        server_cores=(after_srv - before_srv) / elapsed,
        bench_cores=(after_bench - before_bench) / elapsed,
        machine_busy=busy / total if total else math.nan,
        connections=connections,
    )
    print("  " + result.describe(), flush=True)
    return result


# --------------------------------------------------------------------------------------------
# Raw hash ceilings and offline verification
# --------------------------------------------------------------------------------------------

NODE_SCRYPT = (
    """
const { scrypt, randomBytes } = require("node:crypto");
const [seconds, inflight] = [Number(process.argv[1]), Number(process.argv[2])];
const N = {n}, r = {r}, p = {p}, dkLen = {dklen};
const opts = { N, r, p, maxmem: 128 * N * r * 2 };
const salt = randomBytes(16).toString("hex");
let done = 0, running = inflight;
const start = process.hrtime.bigint();
const deadline = start + BigInt(Math.round(seconds * 1e9));
let last = start;
function one() {
  scrypt("bench-password-1234".normalize("NFKC"), salt, dkLen, opts, (err) => {
    if (err) throw err;
    done += 1;
    const now = process.hrtime.bigint();
    if (now < deadline) return one();
    if (now > last) last = now;
    if (--running === 0) console.log(JSON.stringify({ done, seconds: Number(last - start) / 1e9 }));
  });
}
for (let i = 0; i < inflight; i++) one();
""".replace("{n}", str(SCRYPT_N))
    .replace("{r}", str(SCRYPT_R))
    .replace("{p}", str(SCRYPT_P))
)
NODE_SCRYPT = NODE_SCRYPT.replace("{dklen}", str(SCRYPT_DKLEN))


def raw_scrypt_rate(seconds: float, inflight: int) -> float:
    """Better Auth's hash (``node:crypto`` scrypt, its parameters), ``inflight`` at a time."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is required")
    out = subprocess.run(
        [node, "-e", NODE_SCRYPT, str(seconds), str(inflight)],
        capture_output=True,
        check=True,
        timeout=seconds + 30,
        text=True,
    ).stdout
    result = json.loads(out)
    return float(result["done"]) / float(result["seconds"])


def _b64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def load_kit() -> Any:
    path = REPO_ROOT / "examples" / "fastapi-api" / "idp_auth.py"
    spec = importlib.util.spec_from_file_location("idp_auth", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class VerifyResult:
    kit_rate: float
    raw_rate: float


async def offline_verify(token: str, jwks_url: str, seconds: float) -> VerifyResult:
    kit = load_kit()
    header_b64, payload_b64, signature_b64 = token.split(".")
    header = json.loads(_b64url(header_b64))
    claims = json.loads(_b64url(payload_b64))
    audience = claims["aud"] if isinstance(claims["aud"], str) else claims["aud"][0]
    auth = kit.IdPAuth(kit.Settings(issuer=claims["iss"], audience=audience, jwks_url=jwks_url))
    user = await auth.verify(token)  # fetches and caches the JWKS
    if user.id != claims["sub"]:
        raise RuntimeError("the kit verified the wrong subject")

    jwks = httpx.get(jwks_url, timeout=REQUEST_TIMEOUT_SECONDS).json()
    jwk = next(key for key in jwks["keys"] if key["kid"] == header["kid"])
    public_key = Ed25519PublicKey.from_public_bytes(_b64url(jwk["x"]))
    signing_input = f"{header_b64}.{payload_b64}".encode()
    signature = _b64url(signature_b64)
    public_key.verify(signature, signing_input)

    def raw_loop() -> float:
        done, start = 0, time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            for _ in range(50):
                public_key.verify(signature, signing_input)
            done += 50
        return done / (time.perf_counter() - start)

    done, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(50):
            await auth.verify(token)
        done += 50
    kit_rate = done / (time.perf_counter() - start)
    return VerifyResult(kit_rate=kit_rate, raw_rate=raw_loop())


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


@dataclass
class Results:
    jwks_ours: Measurement | None = None
    jwks_ba: Measurement | None = None
    jwks_bare: Measurement | None = None
    token_ours: Measurement | None = None
    token_ba: Measurement | None = None
    login_ours: Measurement | None = None
    login_ba: Measurement | None = None
    argon2_raw: list[float] = field(default_factory=list)
    scrypt_raw: list[float] = field(default_factory=list)
    verify: VerifyResult | None = None
    refresh_chains_broken: int = 0


def _ba_cookie(session: Any) -> str:
    return "; ".join(f"{name}={value}" for name, value in session.cookies.items())


async def ours_login(client: httpx.AsyncClient, email: str, password: str) -> dict[str, Any]:
    response = await client.post("/v1/login", json={"email": email, "password": password})
    if response.status_code != 200:
        raise RuntimeError(f"login failed: {response.status_code} {response.text}")
    tokens: dict[str, Any] = response.json()
    return tokens


@contextlib.contextmanager
def better_auth(workdir: Path, audience: str) -> Iterator[BetterAuthServer]:
    with run_better_auth(workdir, audience=audience) as server:
        yield server


async def clear_redis(url: str, prefix: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def run(args: argparse.Namespace, workdir: Path) -> Results:
    results = Results()
    if "login" in args.only:
        await _hash_ceilings(args, results)

    redis_url = os.environ.get("IDP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"idpvs:{secrets.token_hex(6)}:"
    async with throwaway_database(args.database_url) as database_url:
        env = server_env(REPO_ROOT, database_url, "default")
        env["IDP_REDIS_URL"] = redis_url
        env["IDP_REDIS_PREFIX"] = prefix
        env.update(args.server_env)
        try:
            async with running_server(workdir, env, args.workers) as idp:
                ours_pids = [idp.process.pid, *idp.workers]
                with better_auth(workdir, audience=idp.url) as ba:
                    assert ba._process is not None
                    ba_pids = [ba._process.pid]
                    await _measure_all(args, workdir, idp.url, idp.port, ours_pids, ba, ba_pids, results)
        finally:
            with contextlib.suppress(OSError, aioredis.RedisError):
                await clear_redis(redis_url, prefix)

    if "login" in args.only:
        await _hash_ceilings(args, results)
    return results


async def _hash_ceilings(args: argparse.Namespace, results: Results) -> None:
    """Raw argon2id and scrypt rates (measured before and after the servers)."""
    print(f"raw hash ceilings ({args.raw_seconds:g}s each) ...", flush=True)
    results.argon2_raw.append(await asyncio.to_thread(raw_argon2_rate, args.raw_seconds, CORES))
    results.scrypt_raw.append(await asyncio.to_thread(raw_scrypt_rate, args.raw_seconds, CORES))
    print(f"  argon2id {results.argon2_raw[-1]:.1f} /s, scrypt {results.scrypt_raw[-1]:.1f} /s", flush=True)


async def _measure_all(
    args: argparse.Namespace,
    workdir: Path,
    idp_url: str,
    idp_port: int,
    ours_pids: list[int],
    ba: BetterAuthServer,
    ba_pids: list[int],
    results: Results,
) -> None:
    email = f"bench-{secrets.token_hex(4)}@example.com"
    password = "bench-" + secrets.token_urlsafe(12)
    ba_port = ba.port
    async with httpx.AsyncClient(base_url=idp_url, timeout=REQUEST_TIMEOUT_SECONDS) as client:
        signup = await client.post("/v1/signup", json={"email": email, "password": password})
        if signup.status_code != 201:
            raise RuntimeError(f"signup failed: {signup.status_code} {signup.text}")
        # One session per load connection (each refresh rotates its token).
        sessions = [await ours_login(client, email, password) for _ in range(args.concurrency)]
        jwks_response = await client.get("/.well-known/jwks.json")
    ba_session = await asyncio.to_thread(ba.sign_up, email, password, "Bench")
    await asyncio.to_thread(ba.jwt, ba_session)  # creates the signing key
    await asyncio.to_thread(ba.jwks)

    if "jwks" in args.only:
        await _measure_jwks(args, workdir, idp_port, ours_pids, ba_port, ba_pids, jwks_response, results)
    if "token" in args.only:
        await _measure_tokens(args, idp_port, ours_pids, ba, ba_session, ba_pids, sessions, results)
    if "login" in args.only:
        await _measure_logins(args, idp_port, ours_pids, ba, ba_pids, email, password, results)
    if "verify" in args.only:
        print(f"offline verification ({args.verify_seconds:g}s each) ...", flush=True)
        results.verify = await offline_verify(
            sessions[0]["access_token"], f"{idp_url}/.well-known/jwks.json", args.verify_seconds
        )


async def _measure_jwks(
    args: argparse.Namespace,
    workdir: Path,
    idp_port: int,
    ours_pids: list[int],
    ba_port: int,
    ba_pids: list[int],
    jwks_response: httpx.Response,
    results: Results,
) -> None:
    n = args.concurrency
    print("JWKS ...", flush=True)
    ours_jwks = http_request("GET", "/.well-known/jwks.json", idp_port, {})
    ba_jwks = http_request("GET", "/api/auth/jwks", ba_port, {})
    results.jwks_ours = await measure(
        "ours GET /.well-known/jwks.json",
        idp_port,
        [FixedRequest(ours_jwks) for _ in range(n)],
        ours_pids,
        args,
    )
    results.jwks_ba = await measure(
        "BA GET /api/auth/jwks", ba_port, [FixedRequest(ba_jwks) for _ in range(n)], ba_pids, args
    )
    headers = [
        [name, value]
        for name, value in jwks_response.headers.items()
        if name.lower() not in {"content-length", "date", "server"}
    ]
    async with running_bare(workdir, jwks_response.content, headers, args.workers) as (bare_port, bare_pids):
        bare_request = http_request("GET", "/.well-known/jwks.json", bare_port, {})
        results.jwks_bare = await measure(
            "bare ASGI app, same uvicorn",
            bare_port,
            [FixedRequest(bare_request) for _ in range(n)],
            bare_pids,
            args,
        )


async def _measure_tokens(
    args: argparse.Namespace,
    idp_port: int,
    ours_pids: list[int],
    ba: BetterAuthServer,
    ba_session: Any,
    ba_pids: list[int],
    sessions: list[dict[str, Any]],
    results: Results,
) -> None:
    n, ba_port = args.concurrency, ba.port
    print("token issuance ...", flush=True)
    chains = [RefreshChain(idp_port, session["refresh_token"]) for session in sessions]
    results.token_ours = await measure("ours POST /oauth2/token (refresh)", idp_port, chains, ours_pids, args)
    results.refresh_chains_broken = sum(chain.broken for chain in chains)
    ba_token = http_request(
        "GET", "/api/auth/token", ba_port, {"Origin": ba.url, "Cookie": _ba_cookie(ba_session)}
    )
    results.token_ba = await measure(
        "BA GET /api/auth/token", ba_port, [FixedRequest(ba_token) for _ in range(n)], ba_pids, args
    )


async def _measure_logins(
    args: argparse.Namespace,
    idp_port: int,
    ours_pids: list[int],
    ba: BetterAuthServer,
    ba_pids: list[int],
    email: str,
    password: str,
    results: Results,
) -> None:
    ba_port = ba.port
    print("login ...", flush=True)
    login_body = json.dumps({"email": email, "password": password}).encode()
    ours_login_request = http_request(
        "POST", "/v1/login", idp_port, {"Content-Type": "application/json"}, login_body
    )
    ba_login_request = http_request(
        "POST",
        "/api/auth/sign-in/email",
        ba_port,
        {"Content-Type": "application/json", "Origin": ba.url},
        login_body,
    )
    m = args.login_concurrency
    results.login_ours = await measure(
        "ours POST /v1/login", idp_port, [FixedRequest(ours_login_request) for _ in range(m)], ours_pids, args
    )
    results.login_ba = await measure(
        "BA POST /api/auth/sign-in/email",
        ba_port,
        [FixedRequest(ba_login_request) for _ in range(m)],
        ba_pids,
        args,
    )


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(args: argparse.Namespace, results: Results) -> None:
    rows: list[tuple[str, ...]] = []
    jo, jb, jr = results.jwks_ours, results.jwks_ba, results.jwks_bare
    if jo and jb and jr:
        rows += [
            (
                "JWKS req/s",
                f"{jo.rate:.0f}",
                f"{jb.rate:.0f} (BA)",
                f"{jo.rate / jb.rate:.2f}x",
                f">= {JWKS_GOAL:g}x",
                verdict(jo.rate / jb.rate >= JWKS_GOAL),
            ),
            ("JWKS p99", f"{jo.p99_ms:.2f} ms", f"{jb.p99_ms:.2f} ms (BA)", "", "", ""),
        ]
    to, tb = results.token_ours, results.token_ba
    if to and tb:
        rows += [
            (
                "token issuance req/s",
                f"{to.rate:.0f}",
                f"{tb.rate:.0f} (BA)",
                f"{to.rate / tb.rate:.2f}x",
                f">= {TOKEN_GOAL:g}x",
                verdict(to.rate / tb.rate >= TOKEN_GOAL),
            ),
            ("token issuance p99", f"{to.p99_ms:.2f} ms", f"{tb.p99_ms:.2f} ms (BA)", "", "", ""),
        ]
    lo, lb = results.login_ours, results.login_ba
    if lo and lb:
        argon2 = sum(results.argon2_raw) / len(results.argon2_raw)
        scrypt = sum(results.scrypt_raw) / len(results.scrypt_raw)
        login_ours, login_ba = lo.rate / argon2, lb.rate / scrypt
        rows.append(
            (
                "login / own hash ceiling",
                f"{lo.rate:.1f}/{argon2:.1f} = {login_ours:.2f}",
                f"{lb.rate:.1f}/{scrypt:.1f} = {login_ba:.2f} (BA)",
                "",
                f">= {LOGIN_GOAL:g}",
                verdict(login_ours >= LOGIN_GOAL),
            )
        )
    verify = results.verify
    if verify:
        rows.append(
            (
                "offline verify ops/s",
                f"{verify.kit_rate:.0f} (kit)",
                f"{verify.raw_rate:.0f} (raw Ed25519)",
                f"{verify.kit_rate / verify.raw_rate:.2f}",
                f">= {VERIFY_GOAL:g}",
                verdict(verify.kit_rate / verify.raw_rate >= VERIFY_GOAL),
            )
        )
    if jo and jr:
        rows.append(
            (
                "Litestar JWKS vs bare ASGI",
                f"{jo.rate:.0f}",
                f"{jr.rate:.0f} (bare)",
                f"{jo.rate / jr.rate:.2f}",
                f">= {LITESTAR_GOAL:g}",
                verdict(jo.rate / jr.rate >= LITESTAR_GOAL),
            )
        )
    header = ("metric", "ours", "reference", "ratio", "goal", "result")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(6)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print()
    print(
        f"idp vs Better Auth 1.7.25: {CORES} CPUs, idp uvicorn --workers {args.workers}"
        " on PostgreSQL + Redis,"
        f" Better Auth on Node {_node_version()} (one process, memory adapter);"
        f" {args.concurrency} keep-alive connections ({args.login_concurrency} for logins),"
        f" {args.duration:g}s after {args.warmup:g}s warm-up"
    )
    if args.server_env:
        print("our server's extra settings: " + " ".join(f"{k}={v}" for k, v in args.server_env))
    if results.argon2_raw:
        print(
            f"hash ceilings: argon2id m={ARGON2_MEMORY_KIB} t={ARGON2_TIME_COST} p={ARGON2_PARALLELISM}"
            f" (argon2-cffi, {CORES} threads) "
            + " / ".join(f"{v:.1f}" for v in results.argon2_raw)
            + f" /s; scrypt N={SCRYPT_N} r={SCRYPT_R} p={SCRYPT_P} dkLen={SCRYPT_DKLEN}"
            f" (Node crypto.scrypt, {CORES} in flight) "
            + " / ".join(f"{v:.1f}" for v in results.scrypt_raw)
            + " /s (before / after)"
        )
    print()
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row).rstrip())
    pairs = [rates for rates in (results.argon2_raw, results.scrypt_raw) if len(rates) == 2]
    spread = [abs(a - b) / ((a + b) / 2) for a, b in pairs]
    if spread and max(spread) > NOISE_WARNING:
        print(
            f"\nWARNING: a raw hash rate moved {max(spread):.0%} between before and after: the machine"
            " is noisy (other load); the login ratios are approximate."
        )
    # Better Auth needs no database process: CPU beyond it and the bench is foreign load.
    noisy = [m.label for m in (jb, tb) if m and m.other_cores > FOREIGN_WARNING_CORES]
    if noisy:
        print(f"WARNING: other processes used CPU during: {', '.join(noisy)}; figures are pessimistic.")
    if results.refresh_chains_broken:
        print(f"\nWARNING: {results.refresh_chains_broken} refresh chains broke (non-200 answers)")
    print()


def _node_version() -> str:
    node = shutil.which("node")
    if node is None:
        return "?"
    return subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def _assignment(value: str) -> tuple[str, str]:
    name, sep, setting = value.partition("=")
    if not sep or not name.startswith("IDP_"):
        raise argparse.ArgumentTypeError("expected IDP_NAME=VALUE")
    return name, setting


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per figure")
    parser.add_argument("--warmup", type=float, default=1.0, help="load before each measurement, seconds")
    parser.add_argument("--concurrency", type=int, default=16, help="connections for JWKS and tokens")
    parser.add_argument("--login-concurrency", type=int, default=8, help="connections for logins")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (ours and the bare app)")
    parser.add_argument("--raw-seconds", type=float, default=2.0, help="each raw hash measurement")
    parser.add_argument("--verify-seconds", type=float, default=2.0, help="each offline verify loop")
    parser.add_argument(
        "--database-url",
        default=DEFAULT_ADMIN_URL,
        help="admin connection used to create and drop a throwaway database (loopback only)",
    )
    parser.add_argument(
        "--only",
        type=lambda value: set(value.split(",")),
        default=set(FIGURES),
        help=f"comma-separated figures to measure (default: all of {','.join(FIGURES)})",
    )
    parser.add_argument(
        "--server-env",
        type=_assignment,
        action="append",
        default=[],
        metavar="IDP_NAME=VALUE",
        help="extra setting for our server, e.g. IDP_ARGON2_PRIORITY=normal (repeatable)",
    )
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.only or not args.only <= set(FIGURES):
        parser.error(f"--only takes a comma-separated subset of {','.join(FIGURES)}")
    if urlsplit(args.database_url).hostname not in {"127.0.0.1", "localhost", "::1"}:
        parser.error("--database-url must point at the loopback interface")
    if min(args.duration, args.concurrency, args.login_concurrency, args.workers) <= 0:
        parser.error("--duration, --concurrency, --login-concurrency and --workers must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_bare is not None:
        serve_bare(args.serve_bare, args.workers)
        return 0
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="idp-vs-ba-") as tmp,
        asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
    ):
        results = runner.run(run(args, Path(tmp)))
    report(args, results)
    print(f"total time {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except (RuntimeError, OSError, subprocess.SubprocessError, asyncpg.PostgresError) as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        sys.exit(1)
