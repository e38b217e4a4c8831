"""Instructions per request, this checkout against a baseline: is the JWKS or the refresh grant slower?

Run from the repository root (PostgreSQL and Redis on loopback, ``valgrind`` installed:
``apt-get install valgrind``)::

    uv run python bench/instructions.py                      # baseline 3b769c3 (before issue 11)
    uv run python bench/instructions.py --baseline main~3    # any revision, or a checkout folder
    uv run python bench/instructions.py --only jwks --requests 2000 --keep /tmp/cg

Wall-clock figures on this machine drift by tens of percent within minutes (docs/PERFORMANCE.md),
so a change of a few percent cannot be seen in req/s. ``valgrind --tool=callgrind`` counts the
instructions a process executes, which is the same from run to run (±0.5 % here) whatever else
the machine is doing. For each checkout and figure: ``idp serve --workers 1`` under callgrind
(PostgreSQL + Redis, a throwaway database and key prefix, rate limits lifted), instrumentation
switched on once it is ready, a warm-up, the counters zeroed, ``--requests`` sequential requests
on one keep-alive connection, a dump. Figures: user-space instructions of the server process per
request (the kernel's share — system calls, loopback — is not counted; neither are PostgreSQL
and Redis). The goal: ours ÷ baseline < 1.02 for each figure (``no slower``, within the counts' spread).

``--only login`` adds ``POST /v1/login`` with argon2 at 64 KiB and one pass (~0.1 ms instead of
~25): what a login costs besides its hash (not a goal of issue 11; for issue 16's login work).

``--keep DIR`` keeps the callgrind files: ``callgrind_annotate --inclusive=no FILE`` shows
where the instructions go (per C function; the Python interpreter's share is ``ceval.c``).
Exit status: 0 goals met, 1 missed, 2 error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from lib.report import Goal, add_standard_arguments, finish, print_table, run_main
from lib.servers import redis_namespace, running_server, server_env, throwaway_database

REPO_ROOT = Path(__file__).resolve().parents[1]
ADMIN_DATABASE_URL = os.environ.get("IDP_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DEFAULT_BASELINE = "3b769c3"  # main before issue 11's pre-router (docs/PERFORMANCE.md)
FIGURES = ("jwks", "refresh", "login")
DEFAULT_FIGURES = "jwks,refresh"
CHEAP_ARGON2 = {"IDP_ARGON2_MEMORY_KIB": "64", "IDP_ARGON2_TIME_COST": "1", "IDP_ARGON2_PARALLELISM": "1"}
"""For ``login``: a hash of ~0.1 ms instead of ~25, so the count is the login's own work."""
MAX_RATIO = 1.02
READY_TIMEOUT_SECONDS = 300.0  # a server starting under valgrind
IO_TIMEOUT_SECONDS = 120.0
PASSWORD = "instructions bench 42"


class Connection:
    """One blocking HTTP/1.1 keep-alive connection: sequential requests, bodies by Content-Length."""

    def __init__(self, port: int) -> None:
        self._socket = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT_SECONDS)
        self._buffer = b""

    def request(self, method: str, path: str, body: bytes = b"", content_type: str = "") -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n"
        if body:
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        self._socket.sendall(head.encode() + b"\r\n" + body)
        while b"\r\n\r\n" not in self._buffer:
            self._read()
        head_bytes, _, rest = self._buffer.partition(b"\r\n\r\n")
        lines = head_bytes.split(b"\r\n")
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in lines[1:]
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        self._buffer = rest
        while len(self._buffer) < length:
            self._read()
        body_bytes, self._buffer = self._buffer[:length], self._buffer[length:]
        return int(lines[0].split(b" ")[1]), body_bytes

    def _read(self) -> None:
        chunk = self._socket.recv(65536)
        if not chunk:
            raise RuntimeError("the server closed the connection")
        self._buffer += chunk

    def close(self) -> None:
        self._socket.close()


class Workload:
    """Sequential requests of one figure; ``run(n)`` raises unless every answer is a success."""

    def __init__(self, figure: str, port: int) -> None:
        self._figure = figure
        self._connection = Connection(port)
        self._refresh_token = ""
        self._login = json.dumps(
            {"email": f"cg-{os.getpid()}-{port}@example.com", "password": PASSWORD}
        ).encode()
        if figure in ("refresh", "login"):
            status, answer = self._connection.request("POST", "/v1/signup", self._login, "application/json")
            if status != 201:
                raise RuntimeError(f"signup answered {status}: {answer[:200]!r}")
            document = json.loads(answer)
            self._refresh_token = (document.get("tokens") or document)["refresh_token"]

    def run(self, requests: int) -> None:
        for _ in range(requests):
            if self._figure == "jwks":
                status, answer = self._connection.request("GET", "/.well-known/jwks.json")
            elif self._figure == "login":
                status, answer = self._connection.request(
                    "POST", "/v1/login", self._login, "application/json"
                )
            else:
                form = (
                    f"grant_type=refresh_token&refresh_token={quote(self._refresh_token, safe='')}".encode()
                )
                status, answer = self._connection.request(
                    "POST", "/oauth2/token", form, "application/x-www-form-urlencoded"
                )
                if status == 200:
                    self._refresh_token = json.loads(answer)["refresh_token"]
            if status != 200:
                raise RuntimeError(f"{self._figure} answered {status}: {answer[:200]!r}")

    def close(self) -> None:
        self._connection.close()


@contextlib.contextmanager
def checkout(baseline: str) -> Iterator[Path]:
    """A folder holding ``baseline``: itself if it is one, else a temporary ``git worktree``."""
    if Path(baseline).is_dir():
        yield Path(baseline).resolve()
        return
    folder = Path(tempfile.mkdtemp(prefix="idp-baseline-"))
    subprocess.run(
        ["git", "-C", str(REPO_ROOT), "worktree", "add", "--detach", "--quiet", str(folder), baseline],
        check=True,
    )
    try:
        yield folder
    finally:
        subprocess.run(
            ["git", "-C", str(REPO_ROOT), "worktree", "remove", "--force", str(folder)], check=False
        )
        shutil.rmtree(folder, ignore_errors=True)


def callgrind(pid: int, command: str) -> None:
    subprocess.run(["callgrind_control", command, str(pid)], check=True, capture_output=True, timeout=60)


def total_instructions(dump: Path) -> int:
    for line in dump.read_text(errors="replace").splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {dump}")


async def measure(
    source: Path, figure: str, requests: int, warmup: int, keep: Path | None, label: str
) -> float:
    """Instructions of ``source``'s server per request of ``figure``."""
    async with (
        throwaway_database(ADMIN_DATABASE_URL) as database_url,
        redis_namespace("idpcg") as (_, prefix),
    ):
        env = server_env(source, database_url, redis_prefix=prefix)  # rate limits lifted
        if figure == "login":
            env.update(CHEAP_ARGON2)
        with tempfile.TemporaryDirectory() as workdir:
            valgrind = [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={Path(workdir) / 'callgrind.out'}",
            ]
            async with running_server(
                Path(workdir), env, 1, wrapper=valgrind, start_timeout=READY_TIMEOUT_SECONDS
            ) as server:
                pid = server.process.pid
                callgrind(pid, "--instr=on")
                workload = await asyncio.to_thread(Workload, figure, server.port)
                try:
                    await asyncio.to_thread(workload.run, warmup)
                    callgrind(pid, "--zero")
                    await asyncio.to_thread(workload.run, requests)
                    callgrind(pid, "--dump")
                finally:
                    workload.close()
                dumps = sorted(Path(workdir).glob("callgrind.out.*"))
                if not dumps:
                    raise RuntimeError("callgrind wrote no dump")
                if keep is not None:
                    keep.mkdir(parents=True, exist_ok=True)
                    shutil.copy(dumps[-1], keep / f"{label}-{figure}.callgrind")
                return total_instructions(dumps[-1]) / requests


async def bench(args: argparse.Namespace) -> int:
    figures = [name for name in args.only.split(",") if name]
    unknown = set(figures) - set(FIGURES)
    if unknown:
        raise RuntimeError(f"unknown figure(s) {sorted(unknown)}; choose from {', '.join(FIGURES)}")
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise RuntimeError("valgrind is not installed (apt-get install valgrind)")
    results: dict[str, dict[str, list[float]]] = {figure: {"baseline": [], "ours": []} for figure in figures}
    with checkout(args.baseline) as baseline:
        for run in range(args.runs):
            for figure in figures:
                for label, source in (("baseline", baseline), ("ours", REPO_ROOT)):
                    warmup = 200 if figure == "jwks" else 100
                    value = await measure(
                        source, figure, args.requests, warmup, args.keep, f"{label}{run + 1}"
                    )
                    results[figure][label].append(value)
                    print(
                        f"  {figure:8} {label:8} run {run + 1}: {value:,.0f} instructions per request",
                        flush=True,
                    )
    rows, goals, summary = [], [], {}
    for figure in figures:
        before, after = min(results[figure]["baseline"]), min(results[figure]["ours"])
        ratio = after / before
        summary[figure] = {
            "baseline": results[figure]["baseline"],
            "ours": results[figure]["ours"],
            "ratio": ratio,
        }
        rows.append((figure, f"{before:,.0f}", f"{after:,.0f}", f"{ratio:.3f}"))
        goals.append(Goal.below(f"{figure} instructions, ours / baseline", ratio, MAX_RATIO))
    print(f"\ninstructions per request (lowest of {args.runs} run(s)), baseline {args.baseline}:")
    print_table(("figure", "baseline", "ours", "ours / baseline"), rows)
    return finish(goals, {"baseline": args.baseline, "requests": args.requests, "figures": summary}, args)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_standard_arguments(parser)
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="a git revision or a checkout folder")
    parser.add_argument("--only", default=DEFAULT_FIGURES, help="jwks,refresh (and login)")
    parser.add_argument("--requests", type=int, help="measured requests per figure (1000; --quick 300)")
    parser.add_argument("--runs", type=int, default=1, help="alternating runs; the lowest count is kept")
    parser.add_argument("--keep", type=Path, help="copy the callgrind files into this folder")
    args = parser.parse_args()
    if args.requests is None:
        args.requests = 300 if args.quick else 1000
    return asyncio.run(bench(args))


if __name__ == "__main__":
    run_main(main)
