"""Growth curves: does a request get slower, or a session bigger, as the data grows?

Run from the repository root::

    uv run python bench/growth.py            # full sizes, plots docs/growth.png (~3-4 min on 2 cores)
    uv run python bench/growth.py --quick    # smaller sizes, no plot unless --plot (~1 min)

It starts ``python -m service serve --workers 2`` twice, on loopback, with the default argon2
parameters and every ``IDP_RATELIMIT_*`` at ``1000000/60``:

- on a throwaway PostgreSQL database (created and dropped through ``--database-url``) with the
  local Redis under a unique ``IDP_REDIS_PREFIX`` (its keys are deleted at the end):

  1. login latency with 1 k, 100 k and 1 M accounts (``--quick``: 1 k, 10 k, 100 k). The
     accounts are written with one binary ``COPY`` each step: a handful of real argon2id hashes
     made by the service's own ``PasswordService`` with its default parameters, reused across
     rows, unique emails keyed by ``service.emails.email_key``; the schema is the service's own
     (the server migrates the database before the rows go in). Each login picks a random account.
     The direct SQL lookup of an account by key is timed too (reference, no goal);
  2. refresh latency of one session after 1, 1 000 and 10 000 rotations (``--quick``: 1, 1 000);
  3. ``GET /v1/sessions`` with 1, 100 and 1 000 sessions of one account (``--quick``: 1, 10, 100);
  4. ``GET /.well-known/jwks.json`` with the keys the server starts with and with 10 (added
     with ``idp keys rotate``; the server reloads its key folder every second);
  5. Redis memory of one session after 1 000 rotations (``MEMORY USAGE`` of each of its keys);

- on SQLite in a temp dir: refresh latency after 1, 1 000 and 10 000 rotations.

Every timed request is sent alone on one keep-alive connection (latency, not throughput), so a
curve shows the cost of the data, not queueing. Each measured login, refresh and JWKS request
alternates with a reference request whose cost does not depend on the size (a login with an
unknown address, a fresh session's refresh, ``/health/live``). Goals (exit 1 when one is missed):
each flat curve's largest p50 ÷ reference p50 is at most ``FLAT_FACTOR`` times its smallest;
``/v1/sessions`` grows linearly (one Redis read per session) and must stay under
``SESSIONS_P50_GOAL_MS`` at its largest size; a session's reuse-detection index grows by at
most ``USED_BYTES_PER_ROTATION_GOAL`` bytes per rotation (it keeps every rotated token's hash
until the session expires: linear by design), and its sealed successors live no longer than the
reuse grace window + 60 s. Exit 2 on an error.
Results and why each curve looks the way it does: docs/PERFORMANCE.md ("Growth").
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import random
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import redis.asyncio as aioredis
from lib.load import Sequential, post_admitted
from lib.procs import machine
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

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from service.config import Argon2Settings
from service.emails import email_key
from service.passwords import PasswordService

FLAT_FACTOR = 1.5
SESSIONS_P50_GOAL_MS = 50.0
USED_BYTES_PER_ROTATION_GOAL = 160.0
SEALED_MARGIN_SECONDS = 60.0  # service/store/redis.py SEALED_MARGIN
REUSE_GRACE_SECONDS = 10.0  # service/config.py reuse_grace default
REQUEST_TIMEOUT_SECONDS = 10.0
DISTINCT_HASHES = 4
EMAIL_DOMAIN = "growth.example.com"
COPY_BATCH = 100_000
SQLITE_GRACE = 2.0
"""IDP_REFRESH_REUSE_GRACE on the SQLite server (default 10 s). A SQLite rotation empties the
sealed successors older than the grace window, scanning the family's rows that still hold one:
those rotated within the window. Rotating one session ~1 000 times a second (this bench, no real
client) keeps thousands there, and the curve would show the burst rate, not the session's age.
The chain pauses for the grace window before each measured window instead; a short grace keeps
the pauses short (``--quick``: half of it)."""


ROTATE_KEYS = """
import sys
from service.cli import main
for _ in range(int(sys.argv[1])):
    if main(["keys", "rotate", "--delay", "86400", "--force"]) != 0:
        sys.exit("idp keys rotate failed")
"""


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass
class Point:
    size: int
    samples_ms: list[float]
    reference_ms: list[float] = field(default_factory=list)  # the same requests at size 1, interleaved

    @property
    def p50(self) -> float:
        return percentile(self.samples_ms, 50)

    @property
    def p99(self) -> float:
        return percentile(self.samples_ms, 99)


@dataclass
class Curve:
    name: str
    unit: str  # what "size" counts
    points: list[Point] = field(default_factory=list)

    def growth(self) -> float:
        """Largest p50 / smallest p50; with interleaved references, of p50 / the reference's p50."""
        if self.points and all(point.reference_ms for point in self.points):
            p50s = [point.p50 / percentile(point.reference_ms, 50) for point in self.points]
        else:
            p50s = [point.p50 for point in self.points]
        return max(p50s) / min(p50s) if p50s and min(p50s) > 0 else math.nan


@dataclass
class SessionMemory:
    rotations: int
    family_bytes: int  # rf:{family}
    used_bytes: int  # rf:{family}:used, one field per rotation
    sealed_keys: int  # rf:{family}:s:<hash>, alive for the grace window + margin only
    sealed_bytes: int
    sealed_ttl_ms: int  # the longest time to live among them
    index_bytes: int  # uf:{user}
    fresh_bytes: int  # the same keys of a session never rotated

    @property
    def lasting_bytes(self) -> int:
        return self.family_bytes + self.used_bytes + self.index_bytes


@dataclass
class Results:
    curves: list[Curve] = field(default_factory=list)
    lookup: Curve | None = None  # direct SQL, reference
    memory: SessionMemory | None = None
    seed_seconds: list[tuple[int, float]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Seeding accounts with COPY
# --------------------------------------------------------------------------------------------


def account_email(index: int) -> str:
    return f"growth-{index:08d}@{EMAIL_DOMAIN}"


def account_password(index: int) -> str:
    return f"growth-password-{index % DISTINCT_HASHES}"


async def real_hashes() -> list[str]:
    """``DISTINCT_HASHES`` argon2id hashes by the service's PasswordService, default parameters."""
    defaults = Argon2Settings()
    service = PasswordService(
        memory_kib=defaults.memory_kib,
        time_cost=defaults.time_cost,
        parallelism=defaults.parallelism,
        threads=DISTINCT_HASHES,
    )
    try:
        return list(
            await asyncio.gather(*(service.hash(account_password(i)) for i in range(DISTINCT_HASHES)))
        )
    finally:
        service.close()


def account_rows(first: int, stop: int, hashes: Sequence[str], now: datetime) -> list[tuple[Any, ...]]:
    rows = []
    for index in range(first, stop):
        email = account_email(index)
        rows.append((uuid.uuid4(), email, email_key(email), hashes[index % len(hashes)], now, now))
    return rows


async def seed_accounts(database_url: str, start: int, stop: int, hashes: Sequence[str]) -> None:
    """Accounts ``start`` .. ``stop - 1`` in binary COPY batches, then ANALYZE. The next batch is
    built in a thread while PostgreSQL writes the previous one."""
    now = datetime.now(UTC)
    columns = ("id", "email", "email_normalized", "password_hash", "created_at", "updated_at")
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        firsts = list(range(start, stop, COPY_BATCH))
        pending = (
            asyncio.create_task(
                asyncio.to_thread(account_rows, start, min(stop, start + COPY_BATCH), hashes, now)
            )
            if firsts
            else None
        )
        for first in firsts:
            assert pending is not None
            records = await pending
            after = first + COPY_BATCH
            pending = (
                asyncio.create_task(
                    asyncio.to_thread(account_rows, after, min(stop, after + COPY_BATCH), hashes, now)
                )
                if after < stop
                else None
            )
            await conn.copy_records_to_table("users", records=records, columns=columns)
        await conn.execute("ANALYZE users")
    finally:
        await conn.close()


async def time_lookups(database_url: str, accounts: int, count: int) -> list[float]:
    """The account read by email key, straight through asyncpg (what the login path queries)."""
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        statement = await conn.prepare("SELECT * FROM users WHERE email_normalized = $1")
        samples = []
        for _ in range(count):
            key = email_key(account_email(random.randrange(accounts)))
            started = time.perf_counter()
            if await statement.fetchrow(key) is None:
                raise RuntimeError("a seeded account is missing")
            samples.append((time.perf_counter() - started) * 1000.0)
        return samples
    finally:
        await conn.close()


# --------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------


def login_body(index: int) -> bytes:
    return json.dumps({"email": account_email(index), "password": account_password(index)}).encode()


async def login(client: httpx.AsyncClient, index: int) -> dict[str, Any]:
    response = await post_admitted(
        client, "/v1/login", content=login_body(index), headers={"content-type": "application/json"}
    )
    if response.status_code != 200:
        raise RuntimeError(f"login failed: {response.status_code} {response.text}")
    tokens: dict[str, Any] = response.json()
    return tokens


def token_claims(access_token: str) -> dict[str, Any]:
    payload = access_token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


async def login_curve(
    port: int, database_url: str, sizes: Sequence[int], count: int, results: Results
) -> None:
    hashes = await real_hashes()
    curve = Curve("login POST /v1/login (PostgreSQL)", "accounts")
    lookup = Curve("account read by key (direct SQL)", "accounts")
    seeded = 0
    conn = Sequential(port)
    headers = {"Content-Type": "application/json"}
    try:
        for size in sizes:
            started = time.monotonic()
            await seed_accounts(database_url, seeded, size, hashes)
            results.seed_seconds.append((size - seeded, time.monotonic() - started))
            seeded = size
            print(f"  {size:>9,} accounts (seeded in {time.monotonic() - started:.1f}s) ...", flush=True)
            samples, reference = [], []
            for _ in range(count + 2):
                body = login_body(random.randrange(size))
                status, _, ms = await conn.send(conn.request("POST", "/v1/login", headers, body))
                if status != 200:
                    raise RuntimeError(f"login answered {status}")
                samples.append(ms)
                # The reference: an unknown address, verified against the decoy hash (the same
                # argon2id work), right after on the same connection.
                missing = json.dumps(
                    {"email": f"missing-{secrets.token_hex(6)}@{EMAIL_DOMAIN}", "password": "x" * 12}
                )
                status, _, ms = await conn.send(conn.request("POST", "/v1/login", headers, missing.encode()))
                if status != 401:
                    raise RuntimeError(f"login with an unknown address answered {status}")
                reference.append(ms)
            curve.points.append(Point(size, samples[2:], reference[2:]))  # the first two warm up
            lookup.points.append(Point(size, await time_lookups(database_url, size, 500)))
    finally:
        await conn.close()
    results.curves.append(curve)
    results.lookup = lookup


class Chain:
    """One session's refresh token, rotated one request at a time."""

    def __init__(self, conn: Sequential, token: str) -> None:
        self.conn, self.token, self.done = conn, token, 0

    async def rotate(self) -> float:
        body = f"grant_type=refresh_token&refresh_token={quote(self.token, safe='')}".encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        status, answer, ms = await self.conn.send(self.conn.request("POST", "/oauth2/token", headers, body))
        if status != 200:
            raise RuntimeError(f"refresh answered {status}: {answer[:200]!r}")
        self.token = json.loads(answer)["refresh_token"]
        self.done += 1
        return ms


async def refresh_curve(
    name: str,
    port: int,
    new_session: Callable[[], Awaitable[str]],
    checkpoints: Sequence[int],
    window: int,
    settle: float = 0.0,
) -> Curve:
    """Latency of ``window`` rotations of one session after ``checkpoint`` rotations, each
    alternating with a rotation of a fresh session (the same-moment reference: on a shared
    machine the speed drifts between checkpoints, not between two neighbouring requests).

    With ``settle``, the chain pauses that long before each window and makes two unmeasured
    rotations (the first empties the sealed successors that left the grace window meanwhile), so
    that each window starts with no sealed successor in the grace window (see SQLITE_GRACE)."""
    curve = Curve(name, "rotations")
    conn = Sequential(port)
    chain = Chain(conn, await new_session())
    try:
        for checkpoint in checkpoints:
            while chain.done < checkpoint:
                await chain.rotate()
            fresh = Chain(conn, await new_session())
            if settle:
                await asyncio.sleep(settle)
                await chain.rotate()
                await chain.rotate()
            samples, reference = [], []
            for _ in range(window):
                samples.append(await chain.rotate())
                reference.append(await fresh.rotate())
            curve.points.append(Point(checkpoint, samples, reference))
            print(f"  {name}: {checkpoint:,} rotations done", flush=True)
    finally:
        await conn.close()
    return curve


async def sessions_curve(
    port: int, client: httpx.AsyncClient, index: int, sizes: Sequence[int], count: int
) -> Curve:
    curve = Curve("GET /v1/sessions (Redis)", "sessions")
    tokens = await login(client, index)
    conn = Sequential(port)
    try:
        # Count what the account already holds (a login retried after a 503 can leave two).
        listing = conn.request("GET", "/v1/sessions", {"Authorization": f"Bearer {tokens['access_token']}"})
        status, body, _ = await conn.send(listing)
        if status != 200:
            raise RuntimeError(f"/v1/sessions answered {status}")
        have = len(json.loads(body))
        for size in sizes:
            while have < size:
                batch = min(8, size - have)  # setup: sessions made 8 logins at a time
                await asyncio.gather(*(login(client, index) for _ in range(batch)))
                have += batch
            request = conn.request(
                "GET", "/v1/sessions", {"Authorization": f"Bearer {tokens['access_token']}"}
            )
            samples = []
            for attempt in range(count + 2):
                status, body, ms = await conn.send(request)
                if status != 200:
                    raise RuntimeError(f"/v1/sessions answered {status}")
                if attempt == 0 and len(json.loads(body)) != size:
                    raise RuntimeError(f"expected {size} sessions, listed {len(json.loads(body))}")
                samples.append(ms)
            curve.points.append(Point(size, samples[2:]))
            print(f"  /v1/sessions with {size:,} sessions", flush=True)
    finally:
        await conn.close()
    return curve


async def jwks_curve(port: int, workdir: Path, env: dict[str, str], target: int, count: int) -> Curve:
    curve = Curve("GET /.well-known/jwks.json", "keys")
    conn = Sequential(port)
    request = conn.request("GET", "/.well-known/jwks.json")
    live = conn.request("GET", "/health/live")
    sizes: list[int] = []

    async def sample() -> Point:
        """JWKS requests interleaved with ``/health/live`` (the same-moment reference)."""
        samples, reference = [], []
        keys, body = 0, b""
        for attempt in range(count + 10):
            status, body, ms = await conn.send(request)
            if status != 200:
                raise RuntimeError(f"JWKS answered {status}")
            keys = len(json.loads(body)["keys"])
            _, _, reference_ms = await conn.send(live)
            if attempt >= 10:
                samples.append(ms)
                reference.append(reference_ms)
        sizes.append(len(body))
        return Point(keys, samples, reference)

    try:
        curve.points.append(await sample())
        keys = curve.points[0].size
        # ``idp keys rotate`` ``target - keys`` times in one interpreter (one import, not one each).
        await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", ROTATE_KEYS, str(target - keys)],
            cwd=workdir,
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            _, body, _ = await conn.send(request)
            if len(json.loads(body)["keys"]) >= target:
                break
            await asyncio.sleep(0.2)
        else:
            raise RuntimeError(f"the JWKS did not reach {target} keys")
        await asyncio.sleep(1.5)  # both workers reloaded
        curve.points.append(await sample())
        print(
            f"  JWKS with {curve.points[0].size} and {curve.points[1].size} keys"
            f" ({sizes[0]:,} and {sizes[1]:,} bytes)",
            flush=True,
        )
    finally:
        await conn.close()
    return curve


async def session_memory(
    port: int, client: httpx.AsyncClient, index: int, redis_url: str, prefix: str, rotations: int
) -> SessionMemory:
    """Redis bytes of one session (``MEMORY USAGE … SAMPLES 0`` of each of its keys)."""
    redis = aioredis.Redis.from_url(redis_url)

    async def usage(pattern: str) -> list[tuple[bytes, int]]:
        keys = [key async for key in redis.scan_iter(match=pattern, count=1000)]
        sizes = [await redis.memory_usage(key, samples=0) for key in keys]
        return [(key, int(size or 0)) for key, size in zip(keys, sizes, strict=True)]

    try:
        fresh = await login(client, index)
        fresh_sid = token_claims(fresh["access_token"])["sid"]
        fresh_bytes = sum(size for _, size in await usage(f"{prefix}rf:{{{fresh_sid}}}*"))
        tokens = await login(client, index)
        claims = token_claims(tokens["access_token"])
        sid, user = claims["sid"], claims["sub"]
        chain = Chain(Sequential(port), tokens["refresh_token"])
        try:
            for _ in range(rotations):
                await chain.rotate()
        finally:
            await chain.conn.close()
        family = f"{prefix}rf:{{{sid}}}"
        found = await usage(f"{family}*")
        by_key = {key.decode(): size for key, size in found}
        sealed_keys = [key for key in by_key if key.startswith(family + ":s:")]
        sealed = [by_key[key] for key in sealed_keys]
        ttls = [int(await redis.pttl(key)) for key in sealed_keys]
        index_bytes = sum(size for _, size in await usage(f"{prefix}uf:{{{user}}}"))
        return SessionMemory(
            rotations=rotations,
            family_bytes=by_key.get(family, 0),
            used_bytes=by_key.get(family + ":used", 0),
            sealed_keys=len(sealed),
            sealed_bytes=sum(sealed),
            sealed_ttl_ms=max(ttls, default=0),
            index_bytes=index_bytes,
            fresh_bytes=fresh_bytes,
        )
    finally:
        await redis.aclose()


async def run(args: argparse.Namespace, workdir: Path) -> Results:
    results = Results()
    print("PostgreSQL + Redis server ...", flush=True)
    async with (
        throwaway_database(args.database_url) as database_url,
        redis_namespace("idpgrowth") as (redis_url, prefix),
    ):
        assert database_url is not None
        env = server_env(REPO_ROOT, database_url, redis_prefix=prefix)
        env["IDP_KEYS_RELOAD_INTERVAL"] = "1"
        pg_dir = workdir / "postgresql"
        pg_dir.mkdir()
        async with (
            running_server(pg_dir, env, args.workers) as server,
            httpx.AsyncClient(base_url=server.url, timeout=REQUEST_TIMEOUT_SECONDS) as client,
        ):
            await login_curve(server.port, database_url, args.accounts, args.logins, results)
            # Seeded accounts 0, 1, 2 carry the sessions below (each has its own index).

            async def pg_session() -> str:
                return str((await login(client, 0))["refresh_token"])

            results.curves.append(
                await refresh_curve(
                    "refresh POST /oauth2/token (Redis)", server.port, pg_session, args.rotations, args.window
                )
            )
            results.memory = await session_memory(
                server.port, client, 1, redis_url, prefix, args.memory_rotations
            )
            results.curves.append(await sessions_curve(server.port, client, 2, args.sessions, args.requests))
            results.curves.append(await jwks_curve(server.port, pg_dir, env, args.keys, args.requests))

    print("SQLite server ...", flush=True)
    sqlite_dir = workdir / "sqlite"
    sqlite_dir.mkdir()
    env = server_env(REPO_ROOT, None)
    grace = SQLITE_GRACE / 2 if args.quick else SQLITE_GRACE
    env["IDP_REFRESH_REUSE_GRACE"] = str(grace)
    async with (
        running_server(sqlite_dir, env, args.workers) as server,
        httpx.AsyncClient(base_url=server.url, timeout=REQUEST_TIMEOUT_SECONDS) as client,
    ):
        email, password = (
            f"growth-{secrets.token_hex(4)}@{EMAIL_DOMAIN}",
            "growth-" + secrets.token_urlsafe(12),
        )
        signup = await post_admitted(client, "/v1/signup", json={"email": email, "password": password})
        if signup.status_code != 201:
            raise RuntimeError(f"signup failed: {signup.status_code} {signup.text}")

        async def sqlite_session() -> str:
            response = await post_admitted(client, "/v1/login", json={"email": email, "password": password})
            if response.status_code != 200:
                raise RuntimeError(f"login failed: {response.status_code} {response.text}")
            return str(response.json()["refresh_token"])

        results.curves.append(
            await refresh_curve(
                "refresh POST /oauth2/token (SQLite)",
                server.port,
                sqlite_session,
                args.rotations,
                args.window,
                settle=grace + 1.0,
            )
        )
    return results


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

LINEAR_CURVES = ("GET /v1/sessions (Redis)",)


def goals(results: Results) -> list[Goal]:
    found = []
    for curve in results.curves:
        if curve.name in LINEAR_CURVES:
            largest = curve.points[-1]
            found.append(
                Goal(
                    f"{curve.name} p50 at {largest.size:,} {curve.unit}",
                    largest.p50,
                    f"<= {SESSIONS_P50_GOAL_MS:g}",
                    "ms",
                    largest.p50 <= SESSIONS_P50_GOAL_MS,
                )
            )
            continue
        growth = curve.growth()
        how = "p50 / reference p50" if curve.points[0].reference_ms else "p50"
        found.append(
            Goal(
                f"{curve.name}: largest / smallest {how}",
                growth,
                f"<= {FLAT_FACTOR:g}",
                "x",
                growth <= FLAT_FACTOR,
            )
        )
    if results.memory is not None:
        memory = results.memory
        per_rotation = memory.used_bytes / max(1, memory.rotations)
        found.append(
            Goal(
                f"Redis reuse index after {memory.rotations:,} rotations, per rotation",
                per_rotation,
                f"<= {USED_BYTES_PER_ROTATION_GOAL:g}",
                "B",
                per_rotation <= USED_BYTES_PER_ROTATION_GOAL,
            )
        )
        ttl_bound = (REUSE_GRACE_SECONDS + SEALED_MARGIN_SECONDS) * 1000
        found.append(
            Goal(
                "longest time to live of a sealed successor",
                memory.sealed_ttl_ms / 1000,
                f"<= {ttl_bound / 1000:g}",
                "s",
                0 < memory.sealed_ttl_ms <= ttl_bound,
            )
        )
    return found


def print_report(args: argparse.Namespace, results: Results) -> None:
    print()
    print(
        f"idp growth curves: {machine()}, uvicorn --workers {args.workers}, default argon2id; "
        "each request alone on one keep-alive connection"
    )
    print()
    header = ("curve", "size", "p50 ms", "p99 ms", "n", "reference p50 ms, interleaved")
    rows = []
    for curve in [*results.curves, *([results.lookup] if results.lookup else [])]:
        for point in curve.points:
            rows.append(
                (
                    curve.name,
                    f"{point.size:,} {curve.unit}",
                    f"{point.p50:.3f}",
                    f"{point.p99:.3f}",
                    str(len(point.samples_ms)),
                    f"{percentile(point.reference_ms, 50):.3f}" if point.reference_ms else "",
                )
            )
    print_table(header, rows)
    if results.memory is not None:
        memory = results.memory
        print()
        print(f"Redis memory of one session (MEMORY USAGE, bytes) after {memory.rotations:,} rotations:")
        print_table(
            ("key", "bytes", "note"),
            [
                ("rf:{family}", str(memory.family_bytes), "the family hash"),
                (
                    "rf:{family}:used",
                    str(memory.used_bytes),
                    f"{memory.used_bytes / max(1, memory.rotations):.1f} B per rotation",
                ),
                (
                    "rf:{family}:s:*",
                    str(memory.sealed_bytes),
                    f"{memory.sealed_keys} sealed successors, longest TTL {memory.sealed_ttl_ms // 1000} s",
                ),
                ("uf:{user}", str(memory.index_bytes), "the account's family index (shared)"),
                ("a fresh session", str(memory.fresh_bytes), "rf:{family} + :used before any rotation"),
            ],
        )
    if results.seed_seconds:
        print()
        print(
            "seeding: "
            + ", ".join(f"{rows:,} rows in {seconds:.1f}s" for rows, seconds in results.seed_seconds)
        )
    print()


def plot(results: Results, path: Path) -> None:
    import matplotlib  # noqa: PLC0415 (only when plotting)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    curves = results.curves
    figure, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    panels = list(axes.flat)
    for axis, curve in zip(panels, [c for c in curves if "SQLite" not in c.name], strict=False):
        _plot_curve(axis, curve)
        if "Redis" in curve.name and "refresh" in curve.name:
            sqlite = next((c for c in curves if "SQLite" in c.name), None)
            if sqlite is not None:
                _plot_curve(axis, sqlite)
                axis.set_title("refresh POST /oauth2/token", fontsize=10)
    memory = results.memory
    if memory is not None:
        axis = panels[4]
        labels = ["family", "reuse index", "sealed (70 s)", "fresh"]
        values = [memory.family_bytes, memory.used_bytes, memory.sealed_bytes, memory.fresh_bytes]
        axis.bar(labels, [v / 1024 for v in values], color=["C0", "C1", "C2", "C3"])
        axis.set_ylabel("KiB")
        axis.set_title(f"Redis memory of one session after {memory.rotations:,} rotations", fontsize=10)
    if results.lookup is not None:
        _plot_curve(panels[5], results.lookup)
    figure.suptitle("idp growth curves (p50 solid, p99 dashed; each request alone on one connection)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    print(f"plotted {path}")


def _plot_curve(axis: Any, curve: Curve) -> None:
    sizes = [point.size for point in curve.points]
    line = axis.plot(sizes, [p.p50 for p in curve.points], marker="o", label=f"{curve.name} p50")[0]
    axis.plot(sizes, [p.p99 for p in curve.points], linestyle="--", color=line.get_color(), label="p99")
    if curve.unit in {"accounts", "rotations"}:
        axis.set_xscale("log")
    axis.set_xlabel(curve.unit)
    axis.set_ylabel("ms")
    axis.set_ylim(bottom=0)
    axis.set_title(curve.name, fontsize=10)
    axis.legend(fontsize=7)


def figures(results: Results) -> dict[str, Any]:
    return {
        "curves": [
            {
                "name": curve.name,
                "unit": curve.unit,
                "points": [
                    {
                        "size": p.size,
                        "p50_ms": p.p50,
                        "p99_ms": p.p99,
                        "n": len(p.samples_ms),
                        "reference_p50_ms": percentile(p.reference_ms, 50) if p.reference_ms else None,
                    }
                    for p in curve.points
                ],
            }
            for curve in [*results.curves, *([results.lookup] if results.lookup else [])]
        ],
        "memory": results.memory.__dict__ if results.memory else None,
        "seed_seconds": results.seed_seconds,
    }


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_standard_arguments(parser)
    parser.add_argument("--plot", type=Path, help="PNG to draw (default docs/growth.png, none with --quick)")
    parser.add_argument("--no-plot", action="store_true", help="do not draw the PNG")
    parser.add_argument("--database-url", default=DEFAULT_ADMIN_URL, help="admin URL (loopback PostgreSQL)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        check_loopback(args.database_url)
    except ValueError as exc:
        parser.error(str(exc))
    if args.quick:
        args.accounts, args.rotations, args.sessions = [1_000, 10_000, 100_000], [1, 1_000], [1, 10, 100]
        args.logins, args.window, args.requests = 40, 200, 200
    else:
        args.accounts, args.rotations, args.sessions = (
            [1_000, 100_000, 1_000_000],
            [1, 1_000, 10_000],
            [1, 100, 1_000],
        )
        args.logins, args.window, args.requests = 200, 500, 1000
    args.memory_rotations, args.keys = 1_000, 10
    if args.no_plot:
        args.plot = None
    elif args.plot is None and not args.quick:
        args.plot = REPO_ROOT / "docs" / "growth.png"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="idp-growth-") as tmp:
        results = asyncio.run(run(args, Path(tmp)))
    print_report(args, results)
    if args.plot:
        plot(results, args.plot)
    return finish(goals(results), figures(results), args)


if __name__ == "__main__":
    run_main(main)
