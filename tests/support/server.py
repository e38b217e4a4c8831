"""Run ``idp serve`` as a real process on a free loopback port, for interop and scale tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.processes import stop_process

__all__ = ["CHEAP_ARGON2", "GENEROUS_LIMITS", "RunningServer", "free_port", "run_server"]

# Cheap argon2 parameters for tests that are not about hashing cost.
CHEAP_ARGON2 = {"IDP_ARGON2_MEMORY_KIB": "64", "IDP_ARGON2_TIME_COST": "1", "IDP_ARGON2_PARALLELISM": "1"}
# Limits far above what any test sends, for tests that are not about rate limiting.
GENEROUS_LIMITS = {
    f"IDP_RATELIMIT_{name}": "100000/60"
    for name in (
        "LOGIN_IP",
        "LOGIN_IP_ACCOUNT",
        "LOGIN_ACCOUNT_FAILURES",
        "SIGNUP_IP",
        "TOKEN_IP",
        "TOKEN_CLIENT",
    )
}
START_TIMEOUT_SECONDS = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def run_server(
    workdir: Path, env: Mapping[str, str] | None = None, *, workers: int = 1, port: int | None = None
) -> Iterator[RunningServer]:
    """Start ``idp serve`` in ``workdir`` (keys and SQLite file land there) and wait until ready."""
    port = port or free_port()
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    child_env.update(CHEAP_ARGON2)
    child_env.update(GENEROUS_LIMITS)
    child_env.update(env or {})
    log_path = workdir / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service", "serve", "--port", str(port), "--workers", str(workers)],
            cwd=workdir,
            env=child_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = RunningServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        _wait_ready(server)
        yield server
    finally:
        stop_process(process, 15)


def _wait_ready(server: RunningServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"idp serve exited with {server.process.returncode}:\n{server.log()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/health/ready", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"idp serve did not become ready in {START_TIMEOUT_SECONDS}s:\n{server.log()}")
