"""Login capacity whatever the connections' spread over the workers, and login under overload.

Run from the repository root (PostgreSQL and Redis on loopback)::

    uv run python bench/login_spread.py               # ~90 s on 2 cores
    uv run python bench/login_spread.py --quick       # shorter windows, ~35 s
    uv run python bench/login_spread.py --sqlite      # SQLite in the temp dir instead of PostgreSQL
    uv run python bench/login_spread.py --compare /tmp/idp-before   # another checkout, alternately

uvicorn keeps a keep-alive connection on the worker that accepted it, and a few long-lived
connections (a gateway, a Next.js server) often all land on one worker. Against one
``idp serve --workers 2`` (default argon2 parameters, rate limits off), each window measures
``POST /v1/login`` throughput with the shared load client (``bench/lib/load.py``, connections
that honour ``Retry-After``) and divides it by the raw argon2id rate measured right before and
right after the window, with as many verifier threads as there are connections (at most one per
core: one connection has one login in flight, so its ceiling is one core's rate; with
``--quick`` a window's "before" is the previous window's "after" when both use as many threads):

1. 1 connection;
2. 8 connections as the kernel places them (the default case, the figure ``login_jwks.py`` and
   the README give);
3. 8 connections all held by one worker (reconnecting until the first worker accepted each);
4. 64 connections as the kernel places them.

Goals: each ratio >= 0.85, the default case >= 0.9, and JWKS p99 < 20 ms under login load
(a sequential probe in its own process, 20 req/s, new connection per request, during windows
2-4). Then **overload**: an open-loop offer of 4x the capacity measured in window 2 (requests on
schedule over a pool of keep-alive connections, whatever the answers); goals: the p99 of the
admitted logins (200) < 1 s, every 503 carries ``Retry-After``, no answer other than 200 and 503.

``--compare PATH`` serves another checkout too (e.g. ``git worktree add /tmp/idp-before <rev>``)
and measures it in every window right after this one, so both see the same machine; its figures
are printed, the goals are this checkout's. Every server, database and Redis prefix is removed at
the end. Exit status: 0 every goal met, 1 one missed, 2 error (``--json PATH``: goals + figures).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from lib.ceilings import raw_argon2_rate
from lib.load import (
    REQUEST_TIMEOUT_SECONDS,
    FixedRequest,
    Measurement,
    Prober,
    Samples,
    http_request,
    measure,
    measure_open_loop,
    run_uvloop,
)
from lib.procs import CORES, machine
from lib.report import Goal, add_standard_arguments, finish, percentile, print_table, run_main
from lib.servers import (
    DEFAULT_ADMIN_URL,
    LOOPBACK_HOSTS,
    REPO_ROOT,
    Server,
    redis_namespace,
    running_server,
    server_env,
    throwaway_database,
)

RATIO_GOAL = 0.85
DEFAULT_CASE_GOAL = 0.9
JWKS_P99_GOAL_MS = 20.0
OVERLOAD_FACTOR = 4.0
OVERLOAD_P99_GOAL_MS = 1000.0
PROBE_RATE = 20.0

FULL = {"duration": 8.0, "warmup": 1.5, "raw_seconds": 2.0}
QUICK = {"duration": 2.5, "warmup": 0.75, "raw_seconds": 0.75}


@dataclass(frozen=True)
class Window:
    key: str
    label: str
    connections: int
    pin: bool
    goal: float
    probe: bool


WINDOWS = (
    Window("1", "1 connection", 1, pin=False, goal=RATIO_GOAL, probe=False),
    Window("8", "8 connections (as placed)", 8, pin=False, goal=DEFAULT_CASE_GOAL, probe=True),
    Window("8-pinned", "8 connections on one worker", 8, pin=True, goal=RATIO_GOAL, probe=True),
    Window("64", "64 connections (as placed)", 64, pin=False, goal=RATIO_GOAL, probe=True),
)


@dataclass
class Target:
    """One server under test: this checkout, or the ``--compare`` one."""

    name: str
    server: Server
    login: bytes
    results: dict[str, tuple[Measurement, float, Samples]] = field(default_factory=dict)
    overload: Measurement | None = None
    offered: float = math.nan


async def signup(server: Server) -> bytes:
    """One account; the raw HTTP request that logs it in."""
    email = f"bench-{secrets.token_hex(4)}@example.com"
    password = "bench-" + secrets.token_urlsafe(12)
    async with httpx.AsyncClient(base_url=server.url, timeout=REQUEST_TIMEOUT_SECONDS) as client:
        response = await client.post("/v1/signup", json={"email": email, "password": password})
        if response.status_code != 201:
            raise RuntimeError(f"signup failed: {response.status_code} {response.text}")
        body = httpx.Request("POST", "/", json={"email": email, "password": password}).content
        check = await client.post("/v1/login", content=body, headers={"content-type": "application/json"})
        if check.status_code != 200:
            raise RuntimeError(f"login failed: {check.status_code} {check.text}")
    return http_request("POST", "/v1/login", server.port, {"Content-Type": "application/json"}, body)


async def ceiling(args: argparse.Namespace, threads: int) -> float:
    rate = await asyncio.to_thread(raw_argon2_rate, args.raw_seconds, threads)
    args.last_ceiling = (threads, rate)
    return rate


async def run_window(args: argparse.Namespace, target: Target, window: Window, prober: Prober) -> None:
    threads = min(window.connections, CORES)
    # --quick: the previous window's "after" was measured a moment ago with as many threads
    # (nothing ran in between): it is this window's "before" too.
    last = args.last_ceiling if args.quick else None
    before = last[1] if last is not None and last[0] == threads else await ceiling(args, threads)
    samples: Samples = []
    jwks = f"{target.server.url}/.well-known/jwks.json"

    async def probe() -> None:
        samples.extend(await prober.probe(jwks, PROBE_RATE, args.duration, True))

    result = await measure(
        f"{target.name}: {window.label}",
        target.server.port,
        [FixedRequest(target.login) for _ in range(window.connections)],
        target.server.pids,
        duration=args.duration,
        warmup=args.warmup,
        balance=False,
        pin=window.pin,
        honour_retry_after=True,
        during=probe if window.probe else None,
        probe_pid=prober.pid,
        quiet=True,
    )
    after = await ceiling(args, threads)
    raw = (before + after) / 2
    target.results[window.key] = (result, raw, samples)
    print(f"  {_line(result, raw, samples)}", flush=True)


async def run_overload(args: argparse.Namespace, target: Target, prober: Prober) -> None:
    capacity = target.results["8"][0].rate
    target.offered = OVERLOAD_FACTOR * capacity
    target.overload = await measure_open_loop(
        f"{target.name}: overload, {target.offered:.0f} logins/s offered",
        target.server.port,
        target.login,
        target.server.pids,
        rate=target.offered,
        connections=args.overload_connections,
        duration=args.duration,
        warmup=args.warmup,
        probe_pid=prober.pid,
        quiet=False,
    )


def _ok_ms(samples: Samples) -> list[float]:
    return [ms for ms, status in samples if status == 200]


def _line(result: Measurement, raw: float, samples: Samples) -> str:
    spread = "/".join(str(n) for n in result.connections.values())
    jwks = f", JWKS p99 {percentile(_ok_ms(samples), 99):.1f} ms" if samples else ""
    shed = f", {result.statuses[503]} x 503" if result.statuses[503] else ""
    return (
        f"{result.label:<44} {result.rate:6.1f} logins/s / raw {raw:6.1f} = {result.rate / raw:.2f}"
        f"  p50 {result.p50_ms:5.0f} ms  p99 {result.p99_ms:5.0f} ms{jwks}{shed}"
        f"  (connections per worker {spread}; others ~{result.other_cores:.2f} cores)"
    )


@contextlib.asynccontextmanager
async def serve(args: argparse.Namespace, source: Path, workdir: Path) -> AsyncIterator[Server]:
    async with contextlib.AsyncExitStack() as stack:
        database_url = await stack.enter_async_context(throwaway_database(args.database_url))
        prefix = None
        if database_url is not None:  # a PostgreSQL deployment keeps sessions in Redis
            _, prefix = await stack.enter_async_context(redis_namespace("idpbench"))
        env = server_env(source, database_url, redis_prefix=prefix)
        workdir.mkdir()
        yield await stack.enter_async_context(running_server(workdir, env, args.workers))


async def run(args: argparse.Namespace, tmp: Path) -> list[Target]:
    sources = [("this checkout", args.source)]
    if args.compare is not None:
        sources.append(("compared", args.compare))
    prober = Prober()
    try:
        async with contextlib.AsyncExitStack() as stack:
            targets = []
            for index, (name, source) in enumerate(sources):
                server = await stack.enter_async_context(serve(args, source, tmp / f"server-{index}"))
                targets.append(Target(name, server, await signup(server)))
            for window in WINDOWS:
                for target in targets:
                    await run_window(args, target, window, prober)
            for target in targets:
                await run_overload(args, target, prober)
    finally:
        prober.close()
    return targets


def goals_and_figures(targets: Sequence[Target]) -> tuple[list[Goal], dict[str, Any]]:
    goals: list[Goal] = []
    figures: dict[str, Any] = {}
    for index, target in enumerate(targets):
        figure: dict[str, Any] = {}
        for window in WINDOWS:
            result, raw, samples = target.results[window.key]
            ratio = result.rate / raw
            jwks_p99 = percentile(_ok_ms(samples), 99)
            figure[window.key] = {
                "logins_per_second": result.rate,
                "argon2_raw": raw,
                "ratio": ratio,
                "login_p50_ms": result.p50_ms,
                "login_p99_ms": result.p99_ms,
                "statuses": dict(result.statuses),
                "connections_per_worker": list(result.connections.values()),
                "jwks_p99_ms": jwks_p99 if window.probe else None,
                "other_cores": result.other_cores,
            }
            if index == 0:
                goals.append(Goal.at_least(f"login / argon2 ceiling, {window.label}", ratio, window.goal))
                if window.probe:
                    name = f"JWKS p99 under login load, {window.label}"
                    goals.append(Goal.below(name, jwks_p99, JWKS_P99_GOAL_MS, "ms"))
        over = target.overload
        assert over is not None
        answers = over.answers
        shed = over.statuses[503]
        others = answers - over.statuses[200] - shed
        # Every 503 carries Retry-After (and no other answer does: the rate limits are off).
        with_retry_after = over.retry_after / shed if shed else 1.0
        figure["overload"] = {
            "offered_per_second": target.offered,
            "admitted_per_second": over.rate,
            "admitted_p50_ms": over.p50_ms,
            "admitted_p99_ms": over.p99_ms,
            "share_503": shed / answers if answers else math.nan,
            "share_503_with_retry_after": with_retry_after,
            "other_answers": others,
            "unsent": over.unsent,
            "statuses": dict(over.statuses),
        }
        if index == 0:
            goals += [
                Goal.below("overload (4x capacity): admitted p99", over.p99_ms, OVERLOAD_P99_GOAL_MS, "ms"),
                Goal.at_least("overload: share of 503 answers with Retry-After", with_retry_after, 1.0),
                Goal.below("overload: answers other than 200 and 503", others, 1),
            ]
        figures[target.name] = figure
    return goals, figures


def print_report(args: argparse.Namespace, targets: Sequence[Target]) -> None:
    backend = "SQLite (temp dir)" if args.database_url is None else "PostgreSQL + Redis"
    print(
        f"\nidp login spread bench: {machine()}, uvicorn --workers {args.workers}, {backend}, "
        f"{args.duration:g}s windows after {args.warmup:g}s warm-up, load average {os.getloadavg()[0]:.2f}\n"
    )
    rows = []
    for window in WINDOWS:
        for target in targets:
            result, raw, samples = target.results[window.key]
            rows.append(
                (
                    window.label,
                    target.name,
                    f"{result.rate:.1f}",
                    f"{raw:.1f} ({min(window.connections, CORES)} thr)",
                    f"{result.rate / raw:.2f} (>= {window.goal:g})",
                    f"{result.p50_ms:.0f} / {result.p99_ms:.0f}",
                    f"{percentile(_ok_ms(samples), 99):.1f}" if window.probe else "",
                    str(result.statuses[503]),
                    "/".join(str(n) for n in result.connections.values()),
                    f"{result.other_cores:.2f}",
                )
            )
    header = (
        "window",
        "server",
        "logins/s",
        "raw argon2/s",
        "ratio",
        "p50/p99 ms",
        "JWKS p99 ms",
        "503",
        "conns/worker",
        "others (cores)",
    )
    print_table(header, rows)
    print()
    overload_rows: list[tuple[str, ...]] = []
    for target in targets:
        over = target.overload
        assert over is not None
        shed = over.statuses[503]
        overload_rows.append(
            (
                target.name,
                f"{target.offered:.0f}",
                f"{over.rate:.1f}",
                f"{over.p50_ms:.0f} / {over.p99_ms:.0f}",
                f"{shed / over.answers:.0%}" if over.answers else "n/a",
                f"{over.retry_after}/{shed}",
                str(over.answers - over.statuses[200] - shed),
                str(over.unsent),
            )
        )
    overload_header = (
        "overload",
        "offered/s",
        "admitted/s",
        "admitted p50/p99 ms",
        "503 share",
        "503 with Retry-After",
        "other answers",
        "not sent",
    )
    print_table(overload_header, overload_rows)
    print()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_standard_arguments(parser)
    parser.add_argument("--duration", type=float, help="each measured window, seconds (8; --quick 2.5)")
    parser.add_argument("--warmup", type=float, help="load before each window, seconds (1.5; --quick 0.75)")
    parser.add_argument("--raw-seconds", type=float, help="each raw argon2 measurement (2; --quick 0.75)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (idp serve --workers)")
    parser.add_argument(
        "--overload-connections", type=int, default=256, help="connection pool of the overload window"
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_ADMIN_URL,
        help="admin connection used to create and drop a throwaway database (loopback only)",
    )
    parser.add_argument("--sqlite", action="store_true", help="SQLite in the temp dir instead of PostgreSQL")
    parser.add_argument(
        "--source", type=Path, default=REPO_ROOT, help="checkout whose service/ is served (default: this one)"
    )
    parser.add_argument("--compare", type=Path, help="another checkout, measured alternately (figures only)")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.last_ceiling = None  # (threads, rate) of the latest raw argon2 measurement
    if args.sqlite:
        args.database_url = None
    elif not args.database_url.startswith(("postgresql://", "postgres://")):
        parser.error("--database-url must be a postgresql:// URL")
    elif httpx.URL(args.database_url).host not in LOOPBACK_HOSTS:
        parser.error("--database-url must point at the loopback interface")
    for name in ("source", "compare"):
        path = getattr(args, name)
        if path is None:
            continue
        setattr(args, name, path.resolve())
        if not (path / "service" / "__main__.py").is_file():
            parser.error(f"--{name} {path} has no service/ package")
    if min(args.duration, args.workers, args.overload_connections) <= 0:
        parser.error("--duration, --workers and --overload-connections must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="idp-bench-") as tmp:
        targets = run_uvloop(run(args, Path(tmp)))
    print_report(args, targets)
    goals, figures = goals_and_figures(targets)
    figures["load_average"] = os.getloadavg()[0]
    return finish(goals, figures, args)


if __name__ == "__main__":
    run_main(main)
