"""The servers a bench drives: our IdP (``idp serve``), Better Auth, and their backing stores.

- ``running_server``: ``python -m service serve`` in its own process group, ready when every
  worker exists; stopped with SIGTERM, then SIGKILL to the group, also on error and Ctrl-C;
- ``server_env``: the environment for it (which checkout is served, database, rate limits off);
- ``throwaway_database``: a fresh PostgreSQL database ``idp_bench_<random>``, dropped afterwards;
- ``redis_namespace``: a unique Redis key prefix whose keys are deleted afterwards;
- ``better_auth``: a real Better Auth server (``tests/support/better_auth.py``).

Loopback only: the admin URLs must point at 127.0.0.1, localhost or ::1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import SplitResult, urlsplit, urlunsplit

import asyncpg
import httpx
import redis.asyncio as aioredis

from lib.procs import HAS_PROC, bytecode_cache_env, connection_owner, free_port, worker_pids

if TYPE_CHECKING:
    from tests.support.better_auth import BetterAuthServer

__all__ = [
    "DEFAULT_ADMIN_URL",
    "LOOPBACK_HOSTS",
    "REDIS_URL",
    "REPO_ROOT",
    "Server",
    "better_auth",
    "clear_redis",
    "each_worker_answers",
    "redis_namespace",
    "running_server",
    "server_env",
    "start_together",
    "stop_process_group",
    "throwaway_database",
    "wait_http_ready",
]

A = TypeVar("A")
B = TypeVar("B")
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = os.environ.get("IDP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
START_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.05
STOP_TIMEOUT_SECONDS = 10.0
# The benches measure throughput from one IP, not the rate limits.
RATE_LIMIT_RULES = (
    "LOGIN_IP",
    "LOGIN_IP_ACCOUNT",
    "LOGIN_ACCOUNT_FAILURES",
    "SIGNUP_IP",
    "TOKEN_IP",
    "TOKEN_CLIENT",
)


@dataclass
class Server:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    workers: list[int] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        """The supervisor first, then its workers (the form ``lib.load.measure`` takes)."""
        return [self.process.pid, *self.workers]

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process (a uvicorn supervisor stops its workers), then SIGKILL its whole group.

    The process must have been started with ``start_new_session=True``. Once its workers have
    finished their (graceful) shutdown, the supervisor is only tearing its interpreter down
    (up to a second): the group is killed then, without waiting for that.
    """
    if process.poll() is None:
        workers = worker_pids(process.pid) if HAS_PROC else []
        process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while process.poll() is None and time.monotonic() < deadline:
            if workers and not any(_running(pid) for pid in workers):
                break
            time.sleep(0.02)
    # The server runs in its own session/process group: make sure no worker outlives the bench.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_TIMEOUT_SECONDS)


def _running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split(" ", 1)[0] != "Z"


async def wait_http_ready(
    process: subprocess.Popen[bytes],
    url: str,
    what: str,
    log_path: Path,
    workers: int = 1,
    timeout: float = START_TIMEOUT_SECONDS,
) -> list[int]:
    """Poll ``url`` until it answers 200, then wait for ``workers`` worker processes.

    Returns the worker pids (``[process.pid]`` for a single-process server). With several workers
    the first ready answer may come from one of them only: wait until all exist and each has
    answered ``url`` on a connection it accepted (without /proc: half a second more).
    """

    def tail() -> str:
        try:
            return "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])
        except OSError:
            return "(no log)"

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{what} exited with {process.returncode}:\n{tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    break
            await asyncio.sleep(POLL_SECONDS)
        else:
            raise RuntimeError(f"{what} not ready in {timeout:.0f}s:\n{tail()}")
    if workers == 1:
        return [process.pid]
    while time.monotonic() < deadline:
        found = worker_pids(process.pid)
        if len(found) >= workers and HAS_PROC:
            # A uvicorn worker accepts connections once its lifespan start-up is complete.
            if await each_worker_answers(urlsplit(url), found, deadline):
                return found
            break
        if not HAS_PROC:
            await asyncio.sleep(0.5)  # let the other workers finish their lifespan start-up
            return [process.pid]
        await asyncio.sleep(POLL_SECONDS)
    raise RuntimeError(f"{what}: expected {workers} worker processes answering:\n{tail()}")


async def each_worker_answers(url: SplitResult, workers: Sequence[int], deadline: float) -> bool:
    """Connect until each of ``workers`` (pids) has accepted a connection and answered 200 to
    ``url`` on it; False at ``deadline``."""
    port = url.port or 80
    request = f"GET {url.path or '/'} HTTP/1.1\r\nHost: {url.netloc}\r\nConnection: close\r\n\r\n"
    pending = set(workers)
    while pending and time.monotonic() < deadline:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, TimeoutError):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                owner = None
                client_port = writer.get_extra_info("sockname")[1]
                for _ in range(50):  # /proc shows the accepting worker within a few ms
                    owner = connection_owner(port, client_port, workers)
                    if owner is not None:
                        break
                    await asyncio.sleep(0.005)
                if owner in pending:
                    writer.write(request.encode())
                    status = await asyncio.wait_for(reader.readline(), 1.0)
                    if status.split(b" ")[1:2] == [b"200"]:
                        pending.discard(owner)
            finally:
                writer.close()
        if pending:
            await asyncio.sleep(0.01)
    return not pending


@contextlib.asynccontextmanager
async def running_server(
    workdir: Path,
    env: dict[str, str],
    workers: int,
    extra_args: Sequence[str] = (),
    port: int | None = None,
    *,
    wrapper: Sequence[str] = (),
    start_timeout: float = START_TIMEOUT_SECONDS,
) -> AsyncIterator[Server]:
    """``python -m service serve --workers N`` on ``port`` (default: a free one) on loopback, cwd
    ``workdir``; ``wrapper`` is a command it runs under (e.g. ``valgrind …``)."""
    port = port or free_port()
    log_path = workdir / "server.log"
    command = [sys.executable, "-m", "service", "serve", "--port", str(port), "--workers", str(workers)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*wrapper, *command, *extra_args],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the bench only; we stop the server ourselves
        )
    server = Server(f"http://127.0.0.1:{port}", port, process, log_path)
    try:
        server.workers = await wait_http_ready(
            process, f"{server.url}/health/ready", "idp serve", log_path, workers, start_timeout
        )
        yield server
    finally:
        await asyncio.to_thread(stop_process_group, process)


async def start_together(
    stack: contextlib.AsyncExitStack,
    ours: contextlib.AbstractAsyncContextManager[A],
    other: contextlib.AbstractContextManager[B],
) -> tuple[A, B]:
    """Enter ``ours`` (e.g. ``running_server``) and the blocking ``other`` (e.g. ``better_auth``,
    in a thread) at the same time, so that their start-ups overlap (nothing is measured during a
    start-up); ``stack`` exits both."""

    async def blocking() -> B:
        value = await asyncio.to_thread(other.__enter__)
        stack.push(other.__exit__)
        return value

    first, second = await asyncio.gather(stack.enter_async_context(ours), blocking(), return_exceptions=True)
    if isinstance(first, BaseException):
        raise first
    if isinstance(second, BaseException):
        raise second
    return first, second


def server_env(
    source: Path,
    database_url: str | None,
    argon2_threads: str = "default",
    redis_prefix: str | None = None,
) -> dict[str, str]:
    """The environment of ``idp serve``: no inherited ``IDP_*``, ``source``'s package, no rate limits.

    With a PostgreSQL ``database_url`` sessions go to the local Redis under ``redis_prefix``
    (default ``idpbench:<pid>:``; use ``redis_namespace`` to have it cleared afterwards).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update(bytecode_cache_env())  # start-ups import compiled modules
    # PYTHONPATH comes before the venv's editable install: ``-m service`` runs ``source``'s package.
    env["PYTHONPATH"] = str(source) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if database_url is not None:
        env["IDP_DATABASE_URL"] = database_url
        env["IDP_REDIS_URL"] = REDIS_URL
        env["IDP_REDIS_PREFIX"] = redis_prefix or f"idpbench:{os.getpid()}:"
    for name in RATE_LIMIT_RULES:
        env[f"IDP_RATELIMIT_{name}"] = "1000000/60"
    if argon2_threads != "default":
        env["IDP_ARGON2_THREADS"] = argon2_threads
    return env


def check_loopback(url: str) -> None:
    if urlsplit(url).hostname not in LOOPBACK_HOSTS:
        raise ValueError(f"{url!r} must point at the loopback interface")


@contextlib.asynccontextmanager
async def throwaway_database(admin_url: str | None) -> AsyncIterator[str | None]:
    """Yield a fresh PostgreSQL URL (dropped afterwards), or None for the default SQLite file."""
    if admin_url is None:
        yield None
        return
    check_loopback(admin_url)
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


async def clear_redis(url: str, prefix: str) -> int:
    """Delete every key under ``prefix``; returns how many."""
    client = aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
        return len(keys)
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def redis_namespace(tag: str = "idpbench") -> AsyncIterator[tuple[str, str]]:
    """Yield ``(redis_url, prefix)``: a unique key prefix on the local Redis, cleared at the end."""
    prefix = f"{tag}:{secrets.token_hex(6)}:"
    try:
        yield REDIS_URL, prefix
    finally:
        with contextlib.suppress(OSError, aioredis.RedisError):
            await clear_redis(REDIS_URL, prefix)


@contextlib.contextmanager
def better_auth(
    workdir: Path, audience: str, *, alg: str = "EdDSA", oidc_redirect_uri: str | None = None
) -> Iterator[BetterAuthServer]:
    """A real Better Auth server (one Node process, memory adapter, JWT plugin, EdDSA keys by
    default); with ``oidc_redirect_uri`` also its OAuth/OIDC provider plugin with one
    confidential client for that URI (``server.oidc_client``).

    Needs ``npm ci --prefix tests/interop/better_auth`` once. Its pid: ``server._process.pid``.
    """
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))  # tests.support.better_auth
    from tests.support.better_auth import run_better_auth  # noqa: PLC0415

    with run_better_auth(workdir, audience=audience, alg=alg, oidc_redirect_uri=oidc_redirect_uri) as server:
        yield server
