"""Our IdP side by side with a real Better Auth 1.7.25 server, driven by the same load generator.

Run from the repository root (whole run well under 3 minutes)::

    uv run python bench/versus_better_auth.py
    uv run python bench/versus_better_auth.py --quick          # shorter windows, ~45 s
    uv run python bench/versus_better_auth.py --duration 4 --concurrency 32
    uv run python bench/versus_better_auth.py --source /tmp/idp-before --only jwks,token

It starts, on loopback:

- our IdP: ``python -m service serve --workers 2`` on a throwaway PostgreSQL database (created
  and dropped with asyncpg) + the local Redis under a unique ``IDP_REDIS_PREFIX`` (its keys are
  deleted at the end), every ``IDP_RATELIMIT_*`` at ``1000000/60``, default argon2 parameters;
- Better Auth (``tests/support/better_auth.run_better_auth``: memory adapter, JWT plugin with
  EdDSA keys, ``NODE_ENV=test``, one Node process);
- for the Litestar-overhead figure only, a bare ASGI app (this file, ``--serve-bare``) serving
  our JWKS bytes under the same ``uvicorn.run`` settings as ``idp serve``.

Every HTTP figure comes from the same generator (``bench/lib/load.py``, shared with
``bench/login_jwks.py``): a minimal HTTP/1.1 keep-alive client on uvloop, a fixed number of
connections looping request → response for a fixed time after a warm-up. It prints, with
PASS/MISS per goal:

1. JWKS: ``GET /.well-known/jwks.json`` vs ``GET /api/auth/jwks``, req/s and p99 (goal >= 10x);
2. token issuance: our refresh grant (each connection carries its own rotating session chain)
   vs ``GET /api/auth/token`` with a session cookie; both sign a fresh JWT (goal >= 5x);
3. login: ``POST /v1/login`` vs ``POST /api/auth/sign-in/email``, each divided by its own hash's
   raw rate measured in this run (argon2id m=19456 t=2 p=1 via libsodium, as the service runs
   it, one thread per core; argon2-cffi's rate is printed beside it;
   scrypt N=16384 r=16 p=1 dkLen=64 via Node's ``crypto.scrypt``, what Better Auth calls, one
   request in flight per core; before and after the servers run, ``--quick`` once right before
   the login figures) (goal ours >= 0.85 of its ceiling);
4. offline verification: ``examples/fastapi-api/idp_auth.py``'s ``IdPAuth.verify`` on one of our
   access tokens (JWKS cached) vs raw ``cryptography`` Ed25519 verify of the same signing input,
   single-threaded ops/s (goal >= 0.75);
5. Litestar overhead: our JWKS req/s vs the bare ASGI app's (goal >= 0.45).

``--source DIR`` serves another checkout's ``service/`` package as "ours" (e.g.
``git worktree add /tmp/idp-before <rev>``) for before/after comparisons. Everything started is
stopped at the end, also on error or Ctrl-C. Exit status: 0 every goal met, 1 one missed,
2 error (``--json PATH`` writes the goals and figures).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from lib.ceilings import (
    ARGON2_MEMORY_KIB,
    ARGON2_PARALLELISM,
    ARGON2_TIME_COST,
    SCRYPT_DKLEN,
    SCRYPT_N,
    SCRYPT_P,
    SCRYPT_R,
    raw_argon2_rate,
    raw_scrypt_rate,
)
from lib.load import (
    REQUEST_TIMEOUT_SECONDS,
    FixedRequest,
    Job,
    Measurement,
    http_request,
    measure,
    run_uvloop,
)
from lib.procs import CORES, HAS_PROC, free_port, machine, worker_pids
from lib.report import Goal, add_standard_arguments, finish, print_table, run_main, verdict
from lib.servers import (
    DEFAULT_ADMIN_URL,
    LOOPBACK_HOSTS,
    REPO_ROOT,
    better_auth,
    each_worker_answers,
    redis_namespace,
    running_server,
    server_env,
    start_together,
    stop_process_group,
    throwaway_database,
)

if TYPE_CHECKING:
    from tests.support.better_auth import BetterAuthServer

BENCH_DIR = Path(__file__).resolve().parent

FIGURES = ("jwks", "token", "login", "verify")
JWKS_GOAL = 25.0  # issue 16: raised from 10x
TOKEN_GOAL = 8.0  # issue 16: raised from 5x
LOGIN_GOAL = 0.9  # issue 16: raised from 0.85
VERIFY_GOAL = 0.75
LITESTAR_GOAL = 0.45
NOISE_WARNING = 0.15  # relative before/after spread of a raw hash rate
FOREIGN_WARNING_CORES = 0.25

START_TIMEOUT_SECONDS = 30.0
BARE_BODY_ENV = "VBA_BARE_BODY"
BARE_HEADERS_ENV = "VBA_BARE_HEADERS"

# Durations (seconds) of a full run and of --quick; an explicit option overrides either.
FULL = {"duration": 8.0, "warmup": 1.0, "raw_seconds": 2.0, "verify_seconds": 2.0}
QUICK = {"duration": 2.0, "warmup": 0.5, "raw_seconds": 1.0, "verify_seconds": 0.5}


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
        while len(worker_pids(process.pid)) < workers and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        found = worker_pids(process.pid)
        if not HAS_PROC:
            await asyncio.sleep(0.5)
        elif not await each_worker_answers(urlsplit(f"http://127.0.0.1:{port}/"), found, deadline):
            raise RuntimeError("bare ASGI server: not every worker answers")
        yield port, [process.pid, *found]
    finally:
        await asyncio.to_thread(stop_process_group, process)


# --------------------------------------------------------------------------------------------
# Load: the shared client (bench/lib/load.py) and our one stateful job
# --------------------------------------------------------------------------------------------


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


async def measure_figure(
    label: str, port: int, jobs: Sequence[Job], server_pids: Sequence[int], args: argparse.Namespace
) -> Measurement:
    """One figure: connections spread evenly over the workers, ``--warmup`` then ``--duration``."""
    return await measure(label, port, jobs, server_pids, duration=args.duration, warmup=args.warmup)


# --------------------------------------------------------------------------------------------
# Offline verification
# --------------------------------------------------------------------------------------------


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
    argon2_reference: list[float] = field(default_factory=list)
    """argon2-cffi's rate for the same hash (information: the service runs libsodium's)."""
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


async def run(args: argparse.Namespace, workdir: Path) -> Results:
    results = Results()
    if "login" in args.only and not args.quick:  # --quick: once, right before the login figures
        await _hash_ceilings(args, results)

    async with (
        throwaway_database(args.database_url) as database_url,
        redis_namespace("idpvs") as (_, prefix),
    ):
        env = server_env(args.source, database_url, "default", redis_prefix=prefix)
        env.update(args.server_env)
        port = free_port()
        async with contextlib.AsyncExitStack() as stack:
            idp, ba = await start_together(
                stack,
                running_server(workdir, env, args.workers, port=port),
                better_auth(workdir, audience=f"http://127.0.0.1:{port}"),
            )
            assert ba._process is not None
            ba_pids = [ba._process.pid]
            await _measure_all(args, workdir, idp.url, idp.port, idp.pids, ba, ba_pids, results)

    if "login" in args.only and not args.quick:
        await _hash_ceilings(args, results)
    return results


async def _hash_ceilings(args: argparse.Namespace, results: Results) -> None:
    """Raw argon2id and scrypt rates (measured before and after the servers; --quick: once,
    right before the login figures)."""
    print(f"raw hash ceilings ({args.raw_seconds:g}s each) ...", flush=True)
    results.argon2_raw.append(await asyncio.to_thread(raw_argon2_rate, args.raw_seconds, CORES))
    results.argon2_reference.append(
        await asyncio.to_thread(raw_argon2_rate, args.raw_seconds, CORES, reference=True)
    )
    results.scrypt_raw.append(await asyncio.to_thread(raw_scrypt_rate, args.raw_seconds, CORES))
    print(
        f"  argon2id {results.argon2_raw[-1]:.1f} /s (argon2-cffi {results.argon2_reference[-1]:.1f} /s),"
        f" scrypt {results.scrypt_raw[-1]:.1f} /s",
        flush=True,
    )


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
    results.jwks_ours = await measure_figure(
        "ours GET /.well-known/jwks.json",
        idp_port,
        [FixedRequest(ours_jwks) for _ in range(n)],
        ours_pids,
        args,
    )
    results.jwks_ba = await measure_figure(
        "BA GET /api/auth/jwks", ba_port, [FixedRequest(ba_jwks) for _ in range(n)], ba_pids, args
    )
    headers = [
        [name, value]
        for name, value in jwks_response.headers.items()
        if name.lower() not in {"content-length", "date", "server"}
    ]
    async with running_bare(workdir, jwks_response.content, headers, args.workers) as (bare_port, bare_pids):
        bare_request = http_request("GET", "/.well-known/jwks.json", bare_port, {})
        results.jwks_bare = await measure_figure(
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
    label = "ours POST /oauth2/token (refresh)"
    results.token_ours = await measure_figure(label, idp_port, chains, ours_pids, args)
    results.refresh_chains_broken = sum(chain.broken for chain in chains)
    ba_token = http_request(
        "GET", "/api/auth/token", ba_port, {"Origin": ba.url, "Cookie": _ba_cookie(ba_session)}
    )
    results.token_ba = await measure_figure(
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
    if args.quick:  # the servers idle meanwhile, as during the full run's before/after ceilings
        await _hash_ceilings(args, results)
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
    results.login_ours = await measure_figure(
        "ours POST /v1/login", idp_port, [FixedRequest(ours_login_request) for _ in range(m)], ours_pids, args
    )
    results.login_ba = await measure_figure(
        "BA POST /api/auth/sign-in/email",
        ba_port,
        [FixedRequest(ba_login_request) for _ in range(m)],
        ba_pids,
        args,
    )


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def goals_and_rows(results: Results) -> tuple[list[Goal], list[tuple[str, ...]], dict[str, Any]]:
    """The goals, the table rows and the figures of whatever was measured."""
    goals: list[Goal] = []
    rows: list[tuple[str, ...]] = []
    figures: dict[str, Any] = {
        name: {"rate": m.rate, "p50_ms": m.p50_ms, "p99_ms": m.p99_ms, "statuses": dict(m.statuses)}
        for name, m in (
            ("jwks_ours", results.jwks_ours),
            ("jwks_ba", results.jwks_ba),
            ("jwks_bare", results.jwks_bare),
            ("token_ours", results.token_ours),
            ("token_ba", results.token_ba),
            ("login_ours", results.login_ours),
            ("login_ba", results.login_ba),
        )
        if m is not None
    }
    figures["argon2_raw"] = results.argon2_raw
    figures["argon2_reference"] = results.argon2_reference
    figures["scrypt_raw"] = results.scrypt_raw
    figures["refresh_chains_broken"] = results.refresh_chains_broken

    def goal_row(goal: Goal, metric: str, ours: str, reference: str, ratio: str) -> None:
        goals.append(goal)
        target = f"{goal.target} {goal.unit}".rstrip()
        rows.append((metric, ours, reference, ratio, target, verdict(goal.met)))

    jo, jb, jr = results.jwks_ours, results.jwks_ba, results.jwks_bare
    if jo and jb:
        ratio = jo.rate / jb.rate
        goal = Goal.at_least("JWKS req/s, ours / Better Auth", ratio, JWKS_GOAL, "x")
        goal_row(goal, "JWKS req/s", f"{jo.rate:.0f}", f"{jb.rate:.0f} (BA)", f"{ratio:.2f}x")
        rows.append(("JWKS p99", f"{jo.p99_ms:.2f} ms", f"{jb.p99_ms:.2f} ms (BA)", "", "", ""))
    if jr and jb:
        # Not a goal: what an ASGI app with no work at all shows on this uvicorn and machine, the
        # most the JWKS goal's ratio could be here (docs/PERFORMANCE.md).
        figures["jwks_bare_ratio_ba"] = jr.rate / jb.rate
        rows.append(
            (
                "JWKS, bare ASGI app",
                f"{jr.rate:.0f} (bare)",
                f"{jb.rate:.0f} (BA)",
                f"{jr.rate / jb.rate:.2f}x",
                "",
                "",
            )
        )
    to, tb = results.token_ours, results.token_ba
    if to and tb:
        ratio = to.rate / tb.rate
        goal = Goal.at_least("token issuance req/s, ours / Better Auth", ratio, TOKEN_GOAL, "x")
        goal_row(goal, "token issuance req/s", f"{to.rate:.0f}", f"{tb.rate:.0f} (BA)", f"{ratio:.2f}x")
        rows.append(("token issuance p99", f"{to.p99_ms:.2f} ms", f"{tb.p99_ms:.2f} ms (BA)", "", "", ""))
    lo, lb = results.login_ours, results.login_ba
    if lo and lb:
        argon2 = sum(results.argon2_raw) / len(results.argon2_raw)
        scrypt = sum(results.scrypt_raw) / len(results.scrypt_raw)
        login_ours, login_ba = lo.rate / argon2, lb.rate / scrypt
        figures["login_ratio_ba"] = login_ba
        goal_row(
            Goal.at_least("login / own hash ceiling (ours)", login_ours, LOGIN_GOAL),
            "login / own hash ceiling",
            f"{lo.rate:.1f}/{argon2:.1f} = {login_ours:.2f}",
            f"{lb.rate:.1f}/{scrypt:.1f} = {login_ba:.2f} (BA)",
            "",
        )
    verify = results.verify
    if verify:
        ratio = verify.kit_rate / verify.raw_rate
        figures["verify"] = {"kit_rate": verify.kit_rate, "raw_rate": verify.raw_rate}
        goal_row(
            Goal.at_least("offline verify, kit / raw Ed25519", ratio, VERIFY_GOAL),
            "offline verify ops/s",
            f"{verify.kit_rate:.0f} (kit)",
            f"{verify.raw_rate:.0f} (raw Ed25519)",
            f"{ratio:.2f}",
        )
    if jo and jr:
        ratio = jo.rate / jr.rate
        goal_row(
            Goal.at_least("JWKS req/s, Litestar / bare ASGI", ratio, LITESTAR_GOAL),
            "Litestar JWKS vs bare ASGI",
            f"{jo.rate:.0f}",
            f"{jr.rate:.0f} (bare)",
            f"{ratio:.2f}",
        )
    return goals, rows, figures


def report(args: argparse.Namespace, results: Results, rows: Sequence[tuple[str, ...]]) -> None:
    jb, tb = results.jwks_ba, results.token_ba
    print()
    print(
        f"idp vs Better Auth 1.7.25: {machine()}, idp uvicorn --workers {args.workers}"
        " on PostgreSQL + Redis,"
        f" Better Auth on Node {_node_version()} (one process, memory adapter);"
        f" {args.concurrency} keep-alive connections ({args.login_concurrency} for logins),"
        f" {args.duration:g}s after {args.warmup:g}s warm-up"
    )
    if args.source != REPO_ROOT:
        print(f"ours served from {args.source}")
    if args.server_env:
        print("our server's extra settings: " + " ".join(f"{k}={v}" for k, v in args.server_env))
    if results.argon2_raw:
        print(
            f"hash ceilings: argon2id m={ARGON2_MEMORY_KIB} t={ARGON2_TIME_COST} p={ARGON2_PARALLELISM}"
            f" (libsodium as served, {CORES} threads) "
            + " / ".join(f"{v:.1f}" for v in results.argon2_raw)
            + " /s (argon2-cffi: "
            + " / ".join(f"{v:.1f}" for v in results.argon2_reference)
            + f"); scrypt N={SCRYPT_N} r={SCRYPT_R} p={SCRYPT_P} dkLen={SCRYPT_DKLEN}"
            f" (Node crypto.scrypt, {CORES} in flight) "
            + " / ".join(f"{v:.1f}" for v in results.scrypt_raw)
            + " /s (before / after)"
        )
    print()
    print_table(("metric", "ours", "reference", "ratio", "goal", "result"), rows)
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
    add_standard_arguments(parser)
    parser.add_argument("--duration", type=float, help="measured seconds per figure (8; --quick 2)")
    parser.add_argument("--warmup", type=float, help="load before each measurement, seconds (1; --quick 0.5)")
    parser.add_argument("--concurrency", type=int, default=16, help="connections for JWKS and tokens")
    parser.add_argument("--login-concurrency", type=int, default=8, help="connections for logins")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (ours and the bare app)")
    parser.add_argument("--raw-seconds", type=float, help="each raw hash measurement (2; --quick 1)")
    parser.add_argument("--verify-seconds", type=float, help="each offline verify loop (2; --quick 0.5)")
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
    parser.add_argument(
        "--source",
        type=Path,
        default=REPO_ROOT,
        help="checkout whose service/ package is served as ours (default: this repository), e.g. "
        "`git worktree add /tmp/idp-before <rev>` for a before/after comparison",
    )
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if not args.only or not args.only <= set(FIGURES):
        parser.error(f"--only takes a comma-separated subset of {','.join(FIGURES)}")
    if urlsplit(args.database_url).hostname not in LOOPBACK_HOSTS:
        parser.error("--database-url must point at the loopback interface")
    if min(args.duration, args.concurrency, args.login_concurrency, args.workers) <= 0:
        parser.error("--duration, --concurrency, --login-concurrency and --workers must be positive")
    args.source = args.source.resolve()
    if not (args.source / "service" / "__main__.py").is_file():
        parser.error(f"--source {args.source} has no service/ package")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_bare is not None:
        serve_bare(args.serve_bare, args.workers)
        return 0
    with tempfile.TemporaryDirectory(prefix="idp-vs-ba-") as tmp:
        results = run_uvloop(run(args, Path(tmp)))
    goals, rows, figures = goals_and_rows(results)
    report(args, results, rows)
    return finish(goals, figures, args)


if __name__ == "__main__":
    if "--serve-bare" in sys.argv:
        sys.exit(main())  # the bare ASGI server (a child of the bench): no report
    run_main(main)
