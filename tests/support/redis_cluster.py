"""A three-master Redis Cluster on loopback ports, started from ``redis-server`` for the tests."""

from __future__ import annotations

import contextlib
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["run_redis_cluster"]


@contextlib.contextmanager
def run_redis_cluster(workdir: Path, masters: int = 3) -> Iterator[str]:
    """Start the nodes, join them with ``redis-cli --cluster create``; yield a seed URL."""
    ports = [_cluster_port() for _ in range(masters)]
    processes = []
    try:
        for port in ports:
            folder = workdir / str(port)
            folder.mkdir(parents=True)
            command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes"]
            command += ["--cluster-config-file", "nodes.conf", "--save", "", "--appendonly", "no"]
            processes.append(subprocess.Popen([*command, "--dir", str(folder)], stdout=subprocess.DEVNULL))
        for port in ports:
            _wait(lambda port=port: _cli(port, "ping") == "PONG")
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{port}" for port in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        _wait(lambda: all("cluster_state:ok" in _cli(port, "cluster", "info") for port in ports))
        yield f"redis://127.0.0.1:{ports[0]}"
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=10)


def _cluster_port() -> int:
    """A free port whose cluster-bus twin (port + 10000) is free too."""
    for _ in range(100):
        port = random.randint(20_000, 50_000)
        if _free(port) and _free(port + 10_000):
            return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cli(port: int, *command: str) -> str:
    result = subprocess.run(
        ["redis-cli", "-p", str(port), *command], capture_output=True, text=True, timeout=5, check=False
    )
    return result.stdout.strip()


def _wait(condition: object, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.1)
    raise RuntimeError("Redis Cluster did not become ready")
