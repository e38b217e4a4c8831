"""Memory: RSS of each uvicorn worker at idle, under each kind of load, and over a soak.

Run from the repository root::

    uv run python bench/soak.py                  # 10-minute soak (~11 min in all)
    uv run python bench/soak.py --quick          # 15-second soak, RSS every 5 s (~30 s in all)
    uv run python bench/soak.py --duration 1800 --plot /tmp/soak.png

It starts ``python -m service serve --workers 2`` on loopback, on a throwaway PostgreSQL
database (created and dropped through ``--database-url``) with the local Redis under a unique
``IDP_REDIS_PREFIX`` (its keys are deleted at the end), default argon2 parameters and every
``IDP_RATELIMIT_*`` at ``1000000/60``. Then, with every connection pinned to a worker so that
both workers get the same traffic:

1. **idle**: RSS of each worker (``VmRSS``) after start-up, a few warm-up requests and overlapping
   logins on each worker (every argon2 pool thread keeps its 19 MiB buffer once it has hashed);
2. **each load alone** for ``--phase`` seconds at a bounded rate: signup, login, refresh
   (``POST /oauth2/token``), ``GET /v1/me``, ``GET /v1/sessions``, JWKS; RSS at its end;
3. **the soak**: all six together at the (lower) mixed rates for ``--duration`` seconds, RSS of
   each worker sampled every ``--every`` seconds.

Goal (exit 1 when missed): for each worker, RSS at the end minus RSS at the end of the first
minute (``--quick``: of the first third) is at most ``max(GROWTH_BOUND_MIB, GROWTH_BOUND_FRACTION
x that RSS)``. Exit 2 on an error. Every request is paced (a slow answer delays the next one; no
catch-up bursts), so the load stays bounded on a shared machine. Results: docs/PERFORMANCE.md
("Memory").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from lib.load import Sequential, open_pinned, post_admitted
from lib.procs import CORES, HAS_PROC, machine, rss_bytes
from lib.report import Goal, add_standard_arguments, finish, percentile, print_table, run_main
from lib.servers import (
    DEFAULT_ADMIN_URL,
    REPO_ROOT,
    check_loopback,
    redis_namespace,
    running_server,
    server_env,
    throwaway_database,
)

GROWTH_BOUND_MIB = 8.0
GROWTH_BOUND_FRACTION = 0.05
REQUEST_TIMEOUT_SECONDS = 10.0
MIB = 1024 * 1024
KINDS = ("signup", "login", "refresh", "me", "sessions", "jwks")
# Requests per second over both workers: each kind alone, and all together during the soak.
PHASE_RATES = {"signup": 10.0, "login": 20.0, "refresh": 200.0, "me": 200.0, "sessions": 50.0, "jwks": 400.0}
SOAK_RATES = {"signup": 1.0, "login": 4.0, "refresh": 40.0, "me": 40.0, "sessions": 10.0, "jwks": 40.0}
ACCOUNTS = 20


# --------------------------------------------------------------------------------------------
# Traffic
# --------------------------------------------------------------------------------------------


@dataclass
class Account:
    email: str
    password: str
    access_token: str


@dataclass
class Traffic:
    """What the generators share: accounts, refresh chains, counts."""

    port: int
    accounts: list[Account]
    chains: list[str]  # refresh tokens, each rotated by the refresh generator
    access_token: str  # the newest from a refresh, for /v1/me
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: {kind: Counter() for kind in KINDS})
    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: {kind: [] for kind in KINDS})
    next_chain: int = 0

    def request(self, kind: str, conn: Sequential) -> tuple[bytes, Callable[[int, bytes], None]]:
        """The next request of ``kind`` and what to do with its answer."""
        json_headers = {"Content-Type": "application/json"}
        if kind == "signup":
            email = f"soak-{secrets.token_hex(6)}@soak.example.com"
            password = "soak-" + secrets.token_urlsafe(12)
            body = json.dumps({"email": email, "password": password}).encode()

            def signed_up(status: int, answer: bytes) -> None:
                if status == 201 and len(self.accounts) < 10 * ACCOUNTS:
                    tokens = json.loads(answer)["tokens"]
                    self.accounts.append(Account(email, password, tokens["access_token"]))

            return conn.request("POST", "/v1/signup", json_headers, body), signed_up
        if kind == "login":
            account = random.choice(self.accounts)
            body = json.dumps({"email": account.email, "password": account.password}).encode()

            def logged_in(status: int, answer: bytes) -> None:
                if status == 200:
                    account.access_token = json.loads(answer)["access_token"]

            return conn.request("POST", "/v1/login", json_headers, body), logged_in
        if kind == "refresh":
            slot = self.next_chain % len(self.chains)
            self.next_chain += 1
            body = f"grant_type=refresh_token&refresh_token={quote(self.chains[slot], safe='')}".encode()
            form = {"Content-Type": "application/x-www-form-urlencoded"}

            def refreshed(status: int, answer: bytes) -> None:
                if status == 200:
                    tokens = json.loads(answer)
                    self.chains[slot] = tokens["refresh_token"]
                    self.access_token = tokens["access_token"]

            return conn.request("POST", "/oauth2/token", form, body), refreshed
        if kind == "me":
            bearer = {"Authorization": f"Bearer {self.access_token}"}
            return conn.request("GET", "/v1/me", bearer), _ignore
        if kind == "sessions":
            bearer = {"Authorization": f"Bearer {random.choice(self.accounts).access_token}"}
            return conn.request("GET", "/v1/sessions", bearer), _ignore
        return conn.request("GET", "/.well-known/jwks.json"), _ignore


def _ignore(status: int, answer: bytes) -> None:
    return None


async def pinned_connection(port: int, worker: int, workers: Sequence[int]) -> Sequential:
    """A connection accepted by ``worker``."""
    conn = Sequential(port)
    conn.stream = (await open_pinned(port, 1, worker, workers))[0]
    return conn


async def warm_argon2_pools(port: int, workers: Sequence[int], traffic: Traffic) -> None:
    """Overlapping logins on each worker, so that every thread of its argon2 pool has hashed.

    An argon2id hash allocates 19 MiB that glibc keeps in the hashing thread's malloc arena: a
    worker's RSS steps up once per pool thread (one per core), the first time two hashes overlap
    there. Taken before the idle figure, that step cannot land inside the soak's window and read
    as growth."""
    account = traffic.accounts[0]
    body = json.dumps({"email": account.email, "password": account.password}).encode()
    for worker in workers:
        conns = [Sequential(port) for _ in range(2 * CORES)]
        for conn, stream in zip(conns, await open_pinned(port, len(conns), worker, workers), strict=True):
            conn.stream = stream
        try:
            for _ in range(2):
                await asyncio.gather(
                    *(
                        conn.send(
                            conn.request("POST", "/v1/login", {"Content-Type": "application/json"}, body)
                        )
                        for conn in conns
                    )
                )
        finally:
            for conn in conns:
                await conn.close()


async def paced(kind: str, rate: float, conn: Sequential, traffic: Traffic, stop: asyncio.Event) -> None:
    """Requests of ``kind`` every ``1 / rate`` seconds on one connection; a late answer delays
    the next request (no catch-up burst)."""
    interval = 1.0 / rate
    next_at = time.monotonic() + random.random() * interval
    while not stop.is_set():
        delay = next_at - time.monotonic()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return
        raw, answered = traffic.request(kind, conn)
        try:
            status, body, ms = await asyncio.wait_for(conn.send(raw), REQUEST_TIMEOUT_SECONDS)
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
            await conn.close()
            status, body, ms = 0, b"", math.nan
        traffic.statuses[kind][status] += 1
        if status // 100 == 2:
            traffic.latencies_ms[kind].append(ms)
        answered(status, body)
        next_at = max(next_at + interval, time.monotonic())


async def run_load(
    port: int,
    workers: Sequence[int],
    traffic: Traffic,
    rates: dict[str, float],
    seconds: float,
    sample: Callable[[float], None] | None = None,
    every: float = 10.0,
) -> None:
    """Each kind in ``rates`` over one pinned connection per worker, for ``seconds``."""
    conns = [(kind, await pinned_connection(port, worker, workers)) for kind in rates for worker in workers]
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(paced(kind, rates[kind] / len(workers), conn, traffic, stop))
        for kind, conn in conns
    ]
    started = time.monotonic()
    try:
        if sample is None:
            await asyncio.sleep(seconds)
        else:
            sample(0.0)
            while (elapsed := time.monotonic() - started) < seconds:
                await asyncio.sleep(min(every - elapsed % every, seconds - elapsed))
                sample(time.monotonic() - started)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _, conn in conns:
            await conn.close()


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


@dataclass
class Results:
    workers: list[int] = field(default_factory=list)
    idle: dict[int, int] = field(default_factory=dict)
    phases: list[tuple[str, float, dict[int, int]]] = field(default_factory=list)  # kind, rate, RSS
    samples: list[tuple[float, dict[int, int]]] = field(default_factory=list)  # seconds, RSS
    traffic: Traffic | None = None
    phase_traffic: dict[str, tuple[int, int]] = field(default_factory=dict)  # kind: ok, errors


async def setup_traffic(client: httpx.AsyncClient, port: int) -> Traffic:
    """The accounts and refresh chains, ``2 x CORES`` requests at a time (nothing measured yet)."""
    slots = asyncio.Semaphore(2 * CORES)

    async def signup() -> Account:
        email = f"soak-{secrets.token_hex(6)}@soak.example.com"
        password = "soak-" + secrets.token_urlsafe(12)
        async with slots:
            response = await post_admitted(client, "/v1/signup", json={"email": email, "password": password})
        if response.status_code != 201:
            raise RuntimeError(f"signup failed: {response.status_code} {response.text}")
        return Account(email, password, response.json()["tokens"]["access_token"])

    async def chain(account: Account) -> str:
        async with slots:
            response = await post_admitted(
                client, "/v1/login", json={"email": account.email, "password": account.password}
            )
        if response.status_code != 200:
            raise RuntimeError(f"login failed: {response.status_code} {response.text}")
        return str(response.json()["refresh_token"])

    accounts = list(await asyncio.gather(*(signup() for _ in range(ACCOUNTS))))
    chains = list(await asyncio.gather(*(chain(account) for account in accounts[:10])))
    return Traffic(port, accounts, chains, accounts[0].access_token)


async def run(args: argparse.Namespace, workdir: Path) -> Results:
    results = Results()
    async with (
        throwaway_database(args.database_url) as database_url,
        redis_namespace("idpsoak") as (_, prefix),
    ):
        env = server_env(REPO_ROOT, database_url, redis_prefix=prefix)
        async with (
            running_server(workdir, env, args.workers) as server,
            httpx.AsyncClient(base_url=server.url, timeout=REQUEST_TIMEOUT_SECONDS) as client,
        ):
            workers = server.workers
            results.workers = list(workers)
            traffic = await setup_traffic(client, server.port)
            # Warm each worker on each route once and every thread of its argon2 pool, then let
            # it settle.
            await run_load(server.port, workers, traffic, {kind: 2.0 * len(workers) for kind in KINDS}, 1.0)
            await warm_argon2_pools(server.port, workers, traffic)
            await asyncio.sleep(2.0)
            results.idle = {pid: rss_bytes(pid) for pid in workers}
            print("idle RSS: " + _mib_list(results.idle), flush=True)
            for kind in KINDS:
                before = {k: (sum(c.values()), c[200] + c[201]) for k, c in traffic.statuses.items()}
                await run_load(server.port, workers, traffic, {kind: PHASE_RATES[kind]}, args.phase)
                rss = {pid: rss_bytes(pid) for pid in workers}
                results.phases.append((kind, PHASE_RATES[kind], rss))
                counts = traffic.statuses[kind]
                total, ok = (
                    sum(counts.values()) - before[kind][0],
                    counts[200] + counts[201] - before[kind][1],
                )
                results.phase_traffic[kind] = (ok, total - ok)
                print(f"{kind:<8} alone at {PHASE_RATES[kind]:g}/s: RSS {_mib_list(rss)}", flush=True)
            traffic.statuses = {kind: Counter() for kind in KINDS}
            traffic.latencies_ms = {kind: [] for kind in KINDS}
            print(f"soak: mixed traffic for {args.duration:g}s ...", flush=True)

            def sample(at: float) -> None:
                rss = {pid: rss_bytes(pid) for pid in workers}
                results.samples.append((at, rss))
                print(f"  {at:6.0f}s  RSS {_mib_list(rss)}", flush=True)

            await run_load(server.port, workers, traffic, SOAK_RATES, args.duration, sample, args.every)
            results.traffic = traffic
    return results


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _mib(value: float) -> str:
    return f"{value / MIB:.1f}"


def _mib_list(rss: dict[int, int]) -> str:
    return ", ".join(f"{pid}: {_mib(value)} MiB" for pid, value in rss.items())


def baseline_index(results: Results, duration: float) -> int:
    """The sample at the end of the first minute (of the first third for a soak under 3 min)."""
    mark = min(60.0, duration / 3)
    return min(range(len(results.samples)), key=lambda i: abs(results.samples[i][0] - mark))


def goals(results: Results, duration: float) -> list[Goal]:
    found = []
    base_at, base = results.samples[baseline_index(results, duration)]
    end_at, end = results.samples[-1]
    for number, pid in enumerate(results.workers, start=1):
        growth = end[pid] - base[pid]
        bound = max(GROWTH_BOUND_MIB * MIB, GROWTH_BOUND_FRACTION * base[pid])
        found.append(
            Goal(  # named by the worker's place, not its pid: run.py matches goals across runs
                f"worker {number}: RSS growth {base_at:.0f}s -> {end_at:.0f}s",
                growth / MIB,
                f"<= {bound / MIB:.1f}",
                "MiB",
                growth <= bound,
            )
        )
    return found


def slope_mib_per_minute(results: Results, pid: int, duration: float) -> float:
    """Least-squares slope of RSS after the baseline sample."""
    points = [(at, rss[pid]) for at, rss in results.samples[baseline_index(results, duration) :]]
    if len(points) < 2:
        return math.nan
    mean_t = sum(t for t, _ in points) / len(points)
    mean_r = sum(r for _, r in points) / len(points)
    var = sum((t - mean_t) ** 2 for t, _ in points)
    cov = sum((t - mean_t) * (r - mean_r) for t, r in points)
    return cov / var * 60 / MIB if var else math.nan


def print_report(args: argparse.Namespace, results: Results) -> None:
    workers = results.workers
    print()
    print(
        f"idp memory: {machine()}, uvicorn --workers {len(workers)}, PostgreSQL + Redis, "
        f"RSS (VmRSS) per worker in MiB; each connection pinned to one worker"
    )
    print()
    header = ["state", "rate /s", *(f"worker {pid}" for pid in workers), "answers ok / errors"]
    rows = [["idle", "", *(_mib(results.idle[pid]) for pid in workers), ""]]
    for kind, rate, rss in results.phases:
        ok, errors = results.phase_traffic.get(kind, (0, 0))
        rows.append(
            [
                f"{kind} alone ({args.phase:g}s)",
                f"{rate:g}",
                *(_mib(rss[pid]) for pid in workers),
                f"{ok} / {errors}",
            ]
        )
    base_at, base = results.samples[baseline_index(results, args.duration)]
    end_at, end = results.samples[-1]
    mixed = " ".join(f"{kind} {SOAK_RATES[kind]:g}" for kind in KINDS)
    rows.append([f"soak at {base_at:.0f}s", mixed, *(_mib(base[pid]) for pid in workers), ""])
    traffic = results.traffic
    if traffic is not None:
        ok = sum(c[200] + c[201] for c in traffic.statuses.values())
        errors = sum(sum(c.values()) for c in traffic.statuses.values()) - ok
        rows.append([f"soak at {end_at:.0f}s", "", *(_mib(end[pid]) for pid in workers), f"{ok} / {errors}"])
    rows.append(
        [
            "slope after the baseline",
            "MiB/min",
            *(f"{slope_mib_per_minute(results, pid, args.duration):+.3f}" for pid in workers),
            "",
        ]
    )
    print_table(header, rows)
    if traffic is not None:
        print()
        print("soak answers per kind (p50 / p99 ms of the 2xx):")
        for kind in KINDS:
            counts = traffic.statuses[kind]
            lat = traffic.latencies_ms[kind]
            others = {s: n for s, n in counts.items() if s // 100 != 2}
            print(
                f"  {kind:<8} {sum(counts.values()) - sum(others.values()):>7} ok"
                f"  p50 {percentile(lat, 50):7.2f}  p99 {percentile(lat, 99):7.2f}"
                + (f"  other statuses {others}" if others else "")
            )
    print()
    print("samples (seconds: MiB per worker):")
    for at, rss in results.samples:
        print(f"  {at:6.0f}  " + "  ".join(_mib(rss[pid]) for pid in workers))
    print()


def plot(results: Results, path: Path) -> None:
    import matplotlib  # noqa: PLC0415 (only when plotting)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, axis = plt.subplots(figsize=(9, 4.5))
    for pid in results.workers:
        axis.plot(
            [at for at, _ in results.samples],
            [rss[pid] / MIB for _, rss in results.samples],
            marker=".",
            label=f"worker {pid}",
        )
    axis.set_xlabel("seconds of mixed traffic")
    axis.set_ylabel("RSS MiB")
    axis.set_title("idp worker RSS during the soak")
    axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    print(f"plotted {path}")


def figures(results: Results) -> dict[str, Any]:
    return {
        "idle": results.idle,
        "phases": [{"kind": kind, "rate": rate, "rss": rss} for kind, rate, rss in results.phases],
        "samples": [{"seconds": at, "rss": rss} for at, rss in results.samples],
    }


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_standard_arguments(parser)
    parser.add_argument("--duration", type=float, help="soak seconds (default 600; --quick 15)")
    parser.add_argument("--phase", type=float, help="seconds of each load alone (default 10; --quick 1)")
    parser.add_argument("--every", type=float, help="seconds between RSS samples (default 10; --quick 5)")
    parser.add_argument("--plot", type=Path, help="PNG of the RSS samples")
    parser.add_argument("--database-url", default=DEFAULT_ADMIN_URL, help="admin URL (loopback PostgreSQL)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        check_loopback(args.database_url)
    except ValueError as exc:
        parser.error(str(exc))
    if args.duration is None:
        args.duration = 15.0 if args.quick else 600.0
    if args.phase is None:
        args.phase = 1.0 if args.quick else 10.0
    if args.every is None:
        args.every = 5.0 if args.quick else 10.0
    if args.duration < 3 * args.every or args.phase <= 0:
        parser.error("--duration must cover at least three samples (--every) and --phase must be positive")
    if not HAS_PROC:
        parser.error("RSS comes from /proc: Linux only")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="idp-soak-") as tmp:
        results = asyncio.run(run(args, Path(tmp)))
    print_report(args, results)
    if args.plot:
        plot(results, args.plot)
    return finish(goals(results, args.duration), figures(results), args)


if __name__ == "__main__":
    run_main(main)
