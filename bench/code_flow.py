"""The OpenID Connect authorization-code flow, end to end: our IdP against Better Auth's own
OAuth/OIDC provider (``@better-auth/oauth-provider``), on the same machine in the same run.

Run from the repository root::

    npm ci --prefix tests/interop/better_auth     # once
    uv run python bench/code_flow.py              # ~110 s on 2 cores
    uv run python bench/code_flow.py --quick      # one window per side and mode, 45-58 s when busy
    uv run python bench/code_flow.py --json results/code_flow.json

It starts, on loopback, our IdP (``idp serve --workers 2``, a throwaway PostgreSQL database +
the local Redis under a unique prefix, rate limits out of the way, default argon2id) with one
confidential client declared in ``IDP_CONFIG`` (``client_secret_basic``, first-party: no consent
screen), and Better Auth 1.7.25 with its JWT plugin and its OAuth provider plugin
(``tests/support/better_auth.py``, memory adapter, one Node process) with the same kind of
client (``client_secret_basic``, ``skip_consent``, PKCE required). Both sign ID tokens with
RS256 (our default for ID tokens; Better Auth's JWT plugin set to RS256 for the same work).
One user on each side.

``--concurrency`` (32) simulated browsers, each with its own keep-alive connection (spread
evenly over our uvicorn workers) and cookie jar, loop over whole flows; the sides alternate over
``--rounds`` windows of ``--duration`` seconds, each after a warm-up that lasts at least until
every browser has completed a flow. A flow, with a fresh PKCE verifier, ``state`` and ``nonce``:

- ``signin`` (the issue's "authorize → form post → code → token"; a new browser per flow, so
  no session cookie): ours ``GET /oauth2/authorize`` (the hosted sign-in page and its CSRF
  cookie) → ``POST /oauth2/authorize/signin`` (email, password, CSRF token) → 303 to the
  redirect URI with the code; Better Auth ``GET /api/auth/oauth2/authorize`` → 302 to the
  application's login page with the signed query → ``POST /api/auth/sign-in/email`` with
  ``oauth_query`` (what its ``oauthProviderClient`` sends from that page) → JSON with the
  redirect URI and the code. Each side hashes the password with its own default (argon2id
  m=19456 t=2 p=1 vs scrypt N=16384 r=16 p=1), so this figure is mostly the two hashes.
- ``session`` (a returning user: the browser already holds the provider's session cookie from
  one sign-in through the same form): authorize → redirect with the code. No hashing: this
  figure is the OIDC machinery itself.

Then ``POST .../oauth2/token`` (``authorization_code``, HTTP Basic client authentication,
``code_verifier``) must answer 200 with an ``id_token`` whose ``aud`` is the client and whose
``nonce`` is the flow's; one ID token per side is also verified against the provider's JWKS
before the load. Reported per side and mode: flows/s, the ratio, flow latency, the token
request's latency ("ID-token issuance", p50/p99), CPU per flow (ours: the uvicorn processes,
the PostgreSQL backends of its database and Redis), the load generator's CPU, the machine's
busy fraction.

Two kinds of load. **Closed loop** (the windows above): each browser starts its next flow as
soon as one ends, so the server is saturated and a request's latency is mostly its wait behind
the other 31 browsers' requests (Little's law): this gives the capacity (flows/s) and the
throughput ratio; its token p99 is reported as information only. **Paced** (``session`` mode,
after its closed-loop windows): the same 32 signed-in browsers run open loop on fixed slots,
evenly interleaved, offering ``--paced-load`` (default 0.5) of that side's closed-loop
``session`` rate measured a moment before; a flow whose slot passed while the browser's
previous flow was still running starts at once and later slots do not move (slow answers never
lower the offered rate; its flow latency counts from its slot; such late starts are counted).
50 %: the latency goal is about issuing an ID token, not about queueing at saturation; half
the measured capacity is the headroom a deployment is sized with, and on a shared machine the
capacity measured a moment earlier can shrink while others' load rises, which at 70-80 % would
tip the paced run back into saturation. ``--paced-load 0.7`` is the stricter setting.

Goals: closed-loop flows/s ours >= 3x Better Auth in both modes; our token request's p99 < 25
ms with 32 browsers in the paced run. Exit 0 when every goal is met, 1 when one is missed, 2 on
error.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import html
import json
import math
import os
import re
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet
from lib.load import Stream, open_balanced, open_connections, read_body, run_uvloop
from lib.procs import CORES, HAS_PROC, cmdline, cpu_seconds, free_port, system_cpu
from lib.report import Goal, add_standard_arguments, finish, percentile, print_table, run_main
from lib.servers import (
    DEFAULT_ADMIN_URL,
    REPO_ROOT,
    better_auth,
    check_loopback,
    redis_namespace,
    running_server,
    server_env,
    start_together,
    throwaway_database,
)

if TYPE_CHECKING:
    from tests.support.better_auth import BetterAuthServer

MODES = ("session", "signin")
FLOW_GOAL = 3.0
TOKEN_P99_GOAL_MS = 25.0
PACED_LOAD = 0.5
"""Default offered rate of the paced run, as a fraction of our closed-loop ``session`` rate."""
LATE_MS = 10.0  # a paced flow that starts this much after its slot counts as late
REDIRECT_URI = "https://app.example.com/callback"  # never followed: the code is read from it
SCOPE = "openid profile email"
OUR_CLIENT_ID = "bench-web"
SECRET_ENV = "CODE_FLOW_BENCH_CLIENT_SECRET"
REQUEST_TIMEOUT_SECONDS = 30.0
WARMUP_LIMIT_SECONDS = 30.0
WINDOW_LIMIT_SECONDS = 20.0
_HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')

# --------------------------------------------------------------------------------------------
# A browser: one keep-alive HTTP/1.1 connection that keeps response headers, and a cookie jar
# --------------------------------------------------------------------------------------------


class FlowError(RuntimeError):
    def __init__(self, step: str, status: int, detail: str = "") -> None:
        self.step, self.status = step, status
        super().__init__(f"{step}: HTTP {status} {detail[:300]}")


@dataclass
class Reply:
    status: int
    headers: dict[str, list[str]]  # lower-case names
    body: bytes

    def header(self, name: str) -> str:
        values = self.headers.get(name, [])
        return values[0] if values else ""


async def _read_reply(reader: asyncio.StreamReader) -> Reply:
    """One response with its headers (the flows need Location and Set-Cookie)."""
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
    return Reply(int(lines[0][9:12]), headers, await read_body(reader, raw.lower()))


class Browser:
    """One simulated browser (and, for the token request, the client's back end) on one
    keep-alive connection; reconnects when the server closes it."""

    def __init__(self, port: int, stream: Stream | None) -> None:
        self.port = port
        self.host = f"127.0.0.1:{port}"
        self._stream = stream
        self.cookies: dict[str, str] = {}

    async def send(
        self, method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Reply:
        if self._stream is None:
            self._stream = (await open_connections(self.port, 1))[0]
        reader, writer = self._stream
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if self.cookies:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        try:
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            reply = await _read_reply(reader)
        except BaseException:
            self.close()
            raise
        for line in reply.headers.get("set-cookie", []):
            pair = line.split(";", 1)[0]
            name, _, value = pair.partition("=")
            if value and "max-age=0" not in line.lower():
                self.cookies[name.strip()] = value.strip()
            else:
                self.cookies.pop(name.strip(), None)
        if reply.header("connection").lower() == "close":
            self.close()
        return reply

    def attach(self, stream: Stream) -> None:
        """Continue on ``stream`` (the cookies stay)."""
        self.close()
        self._stream = stream

    def close(self) -> None:
        if self._stream is not None:
            self._stream[1].close()
            self._stream = None


# --------------------------------------------------------------------------------------------
# The two providers: the same steps, each in its own protocol dialect
# --------------------------------------------------------------------------------------------


@dataclass
class Authorization:
    """One flow's authorization request (fresh PKCE verifier, state and nonce)."""

    client_id: str
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    state: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(12))

    def query(self) -> str:
        digest = hashlib.sha256(self.verifier.encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        return urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": REDIRECT_URI,
                "scope": SCOPE,
                "state": self.state,
                "nonce": self.nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )

    def code_from(self, location: str, step: str) -> str:
        if not location.startswith(REDIRECT_URI + "?"):
            raise FlowError(step, 0, f"redirected to {location!r}")
        params = parse_qs(urlsplit(location).query)
        if params.get("state") != [self.state] or "code" not in params:
            raise FlowError(step, 0, f"no code or a wrong state in {location!r}")
        return params["code"][0]


class Provider(Protocol):
    label: str
    port: int
    pids: list[int]
    client_id: str
    token_path: str
    jwks_path: str
    basic: str  # the Authorization header value for the token request

    def datastore_pids(self) -> list[int]:
        """Processes outside the server that do its work (PostgreSQL, Redis)."""
        ...

    async def sign_in(self, browser: Browser, email: str, password: str) -> None:
        """Give ``browser`` a session cookie (a sign-in through the same form as the flows)."""
        ...

    async def code_with_sign_in(
        self, browser: Browser, auth: Authorization, email: str, password: str
    ) -> str: ...

    async def code_with_session(self, browser: Browser, auth: Authorization) -> str: ...


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass
class Ours:
    port: int
    pids: list[int]
    secret: str
    database: str = ""  # our throwaway database's name: its PostgreSQL backends are ours
    label: str = "ours"
    client_id: str = OUR_CLIENT_ID
    token_path: str = "/oauth2/token"
    jwks_path: str = "/.well-known/jwks.json"
    basic: str = ""

    def __post_init__(self) -> None:
        self.basic = _basic(self.client_id, self.secret)

    def datastore_pids(self) -> list[int]:
        """The PostgreSQL backends serving our database, and Redis (shared with anything else
        that uses it on this machine: an upper bound)."""
        found = []
        for name in os.listdir("/proc") if HAS_PROC else []:
            if name.isdigit():
                line = cmdline(int(name))
                if (self.database and f" {self.database} " in line) or line.startswith("redis-server"):
                    found.append(int(name))
        return found

    async def code_with_sign_in(
        self, browser: Browser, auth: Authorization, email: str, password: str
    ) -> str:
        page = await browser.send("GET", "/oauth2/authorize?" + auth.query())
        if page.status != 200:
            raise FlowError("authorize", page.status, page.body.decode(errors="replace"))
        fields = {name: html.unescape(value) for name, value in _HIDDEN.findall(page.body.decode())}
        form = urlencode({**fields, "email": email, "password": password}).encode()
        reply = await browser.send("POST", "/oauth2/authorize/signin", FORM, form)
        if reply.status != 303:
            raise FlowError("sign-in", reply.status, reply.body.decode(errors="replace"))
        return auth.code_from(reply.header("location"), "sign-in")

    async def code_with_session(self, browser: Browser, auth: Authorization) -> str:
        reply = await browser.send("GET", "/oauth2/authorize?" + auth.query())
        if reply.status != 303:
            raise FlowError("authorize", reply.status, reply.body.decode(errors="replace"))
        return auth.code_from(reply.header("location"), "authorize")

    async def sign_in(self, browser: Browser, email: str, password: str) -> None:
        await self.code_with_sign_in(browser, Authorization(self.client_id), email, password)


@dataclass
class BetterAuth:
    port: int
    pids: list[int]
    client_id: str
    secret: str
    label: str = "Better Auth"
    token_path: str = "/api/auth/oauth2/token"
    jwks_path: str = "/api/auth/jwks"
    basic: str = ""
    origin: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.basic = _basic(self.client_id, self.secret)
        # Its CSRF check: a cookie-bearing POST must come from a trusted origin (its baseURL).
        self.origin = {"Origin": f"http://127.0.0.1:{self.port}", "Content-Type": "application/json"}

    async def code_with_sign_in(
        self, browser: Browser, auth: Authorization, email: str, password: str
    ) -> str:
        reply = await browser.send("GET", "/api/auth/oauth2/authorize?" + auth.query())
        location = reply.header("location")
        if reply.status != 302 or not location.startswith("/sign-in?"):
            raise FlowError("authorize", reply.status, location or reply.body.decode(errors="replace"))
        # The application's login page (static, not loaded here) posts the signed query back.
        body = json.dumps({"email": email, "password": password, "oauth_query": urlsplit(location).query})
        reply = await browser.send("POST", "/api/auth/sign-in/email", self.origin, body.encode())
        if reply.status != 200:
            raise FlowError("sign-in", reply.status, reply.body.decode(errors="replace"))
        return auth.code_from(str(json.loads(reply.body).get("url", "")), "sign-in")

    async def code_with_session(self, browser: Browser, auth: Authorization) -> str:
        reply = await browser.send("GET", "/api/auth/oauth2/authorize?" + auth.query())
        if reply.status != 302:
            raise FlowError("authorize", reply.status, reply.body.decode(errors="replace"))
        return auth.code_from(reply.header("location"), "authorize")

    async def sign_in(self, browser: Browser, email: str, password: str) -> None:
        await self.code_with_sign_in(browser, Authorization(self.client_id), email, password)

    def datastore_pids(self) -> list[int]:
        return []  # the memory adapter: everything is in the Node process


async def token_request(provider: Provider, browser: Browser, auth: Authorization, code: str) -> str:
    """The client's token request; returns the ID token after checking ``aud`` and ``nonce``."""
    form = urlencode(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": auth.verifier,
        }
    ).encode()
    headers = {**FORM, "Authorization": provider.basic}
    reply = await browser.send("POST", provider.token_path, headers, form)
    if reply.status != 200:
        raise FlowError("token", reply.status, reply.body.decode(errors="replace"))
    id_token = json.loads(reply.body).get("id_token")
    if not isinstance(id_token, str) or id_token.count(".") != 2:
        raise FlowError("token", reply.status, "no id_token in the answer")
    payload = id_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    audience = claims.get("aud")
    if claims.get("nonce") != auth.nonce or audience not in (provider.client_id, [provider.client_id]):
        raise FlowError("token", reply.status, f"ID token with the wrong nonce or aud: {claims}")
    return id_token


async def verify_one_flow(provider: Provider, email: str, password: str) -> dict[str, Any]:
    """One full sign-in flow, then the ID token's RS256 signature against the provider's JWKS."""
    browser = Browser(provider.port, None)
    try:
        auth = Authorization(provider.client_id)
        code = await provider.code_with_sign_in(browser, auth, email, password)
        id_token = await token_request(provider, browser, auth, code)
        keys = json.loads((await browser.send("GET", provider.jwks_path)).body)
    finally:
        browser.close()
    token = jwt.decode(id_token, KeySet.import_key_set(keys), algorithms=["RS256"])
    claims: dict[str, Any] = dict(token.claims)
    if token.header.get("alg") != "RS256" or claims.get("nonce") != auth.nonce:
        raise RuntimeError(f"{provider.label}: unexpected ID token {token.header} {claims}")
    return claims


# --------------------------------------------------------------------------------------------
# Load: ``concurrency`` browsers looping over whole flows
# --------------------------------------------------------------------------------------------


@dataclass
class FlowLoad:
    recording: bool = False
    flows: int = 0
    flow_ms: list[float] = field(default_factory=list)
    token_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    last_error: str = ""
    warm: set[int] = field(default_factory=set)  # browsers that completed a flow this round
    slowest_warm_s: float = 0.0  # the slowest flow of this round's warm-up


async def browser_loop(
    provider: Provider,
    browser: Browser,
    mode: str,
    email: str,
    password: str,
    load: FlowLoad,
    stop: asyncio.Event,
) -> None:
    session_cookies = dict(browser.cookies)
    while not stop.is_set():
        auth = Authorization(provider.client_id)
        started = time.perf_counter()
        try:
            if mode == "signin":
                browser.cookies.clear()  # a new browser: no session, no CSRF cookie yet
                code = await provider.code_with_sign_in(browser, auth, email, password)
            else:
                browser.cookies = dict(session_cookies)
                code = await provider.code_with_session(browser, auth)
            sent = time.perf_counter()
            await token_request(provider, browser, auth, code)
            done = time.perf_counter()
        except (FlowError, OSError, ValueError, asyncio.IncompleteReadError) as exc:
            if load.recording:
                load.errors[exc.step if isinstance(exc, FlowError) else type(exc).__name__] += 1
                load.last_error = str(exc)
            browser.close()
            await asyncio.sleep(0.01)
            continue
        load.warm.add(id(browser))
        if not load.recording:
            load.slowest_warm_s = max(load.slowest_warm_s, done - started)
        else:
            load.flows += 1
            load.flow_ms.append((done - started) * 1000.0)
            load.token_ms.append((done - sent) * 1000.0)


@dataclass
class Figure:
    side: str
    mode: str
    flows_per_s: float
    flow_p50_ms: float
    flow_p99_ms: float
    token_p50_ms: float
    token_p99_ms: float
    errors: dict[str, int]
    server_cores: float
    datastore_cores: float  # our PostgreSQL backends + Redis (0 for Better Auth's memory adapter)
    bench_cores: float
    machine_busy: float

    @property
    def other_cores(self) -> float:
        used = self.server_cores + self.datastore_cores + self.bench_cores
        return max(0.0, self.machine_busy * CORES - used)

    @property
    def server_ms_per_flow(self) -> float:
        """CPU per flow of the server and its data stores: less sensitive to a shared machine."""
        cores = self.server_cores + self.datastore_cores
        return cores * 1000.0 / self.flows_per_s if self.flows_per_s else math.nan

    def describe(self) -> str:
        return (
            f"{self.side:<12} {self.mode:<8} {self.flows_per_s:8.1f} flows/s"
            f"  flow p50 {self.flow_p50_ms:7.1f} p99 {self.flow_p99_ms:7.1f} ms"
            f"  token p50 {self.token_p50_ms:6.2f} p99 {self.token_p99_ms:6.2f} ms"
            f"  server {self.server_cores:.2f} + data stores {self.datastore_cores:.2f} cores"
            f" ({self.server_ms_per_flow:.2f} ms CPU/flow),"
            f" load generator {self.bench_cores:.2f}, machine busy {self.machine_busy:.0%}"
            f" (others ~{self.other_cores:.2f})" + (f", errors {self.errors}" if self.errors else "")
        )


async def open_streams(provider: Provider, count: int) -> list[Stream]:
    workers = provider.pids[1:]  # supervisor first, then its workers (none for Node)
    if workers:
        return await open_balanced(provider.port, count, workers)
    return await open_connections(provider.port, count)


@dataclass
class Window:
    """One side's measured windows in one mode, summed over the rounds."""

    load: FlowLoad = field(default_factory=FlowLoad)
    seconds: float = 0.0
    server_cpu: float = 0.0
    stores_cpu: float = 0.0
    bench_cpu: float = 0.0
    busy: int = 0
    total: int = 0

    def figure(self, side: str, mode: str) -> Figure:
        load, seconds = self.load, self.seconds
        if not load.flows:
            raise RuntimeError(f"{side}: no {mode} flow completed ({dict(load.errors)}: {load.last_error})")
        return Figure(
            side=side,
            mode=mode,
            flows_per_s=load.flows / seconds,
            flow_p50_ms=percentile(load.flow_ms, 50),
            flow_p99_ms=percentile(load.flow_ms, 99),
            token_p50_ms=percentile(load.token_ms, 50),
            token_p99_ms=percentile(load.token_ms, 99),
            errors=dict(load.errors),
            server_cores=self.server_cpu / seconds,
            datastore_cores=self.stores_cpu / seconds,
            bench_cores=self.bench_cpu / seconds,
            machine_busy=self.busy / self.total if self.total else math.nan,
        )


async def run_round(
    provider: Provider,
    browsers: Sequence[Browser],
    mode: str,
    email: str,
    password: str,
    args: argparse.Namespace,
    window: Window,
    drain: bool = True,
) -> None:
    """Fresh (balanced) connections for ``browsers``, warm-up, then one measured window.

    Afterwards the browsers finish their flows in flight (up to a few seconds for Better Auth's
    sign-ins), so that they do not load the next window; without ``drain`` (the run's last
    window, nothing measured after it) they are cancelled."""
    for browser, stream in zip(browsers, await open_streams(provider, len(browsers)), strict=True):
        browser.attach(stream)
    load, stop = window.load, asyncio.Event()
    flows_before = load.flows
    load.warm.clear()
    load.slowest_warm_s = 0.0
    tasks = [
        asyncio.create_task(browser_loop(provider, browser, mode, email, password, load, stop))
        for browser in browsers
    ]
    try:
        # Warm up for --warmup seconds and until every browser has completed a flow: a sign-in
        # flow takes seconds under load, and a window must not start on an empty pipeline.
        deadline = time.monotonic() + WARMUP_LIMIT_SECONDS
        await asyncio.sleep(args.warmup)
        while len(load.warm) < len(browsers) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        # Under a convoy (32 sign-ins queued at once) flows complete in waves: a window shorter
        # than two flows could fall between waves. Stretch it to twice the slowest warm-up flow
        # (at most 20 s, 10 s with --quick).
        limit = WINDOW_LIMIT_SECONDS / 2 if args.quick else WINDOW_LIMIT_SECONDS
        span = min(max(args.duration, 2 * load.slowest_warm_s), limit)
        before_at, before_sys, before_bench = time.monotonic(), system_cpu(), time.process_time()
        before_srv = sum(cpu_seconds(pid) for pid in provider.pids)
        stores = {pid: cpu_seconds(pid) for pid in provider.datastore_pids()}
        load.recording = True
        await asyncio.sleep(span)
        load.recording = False
        after_at, after_sys, after_bench = time.monotonic(), system_cpu(), time.process_time()
        after_srv = sum(cpu_seconds(pid) for pid in provider.pids)
        stores_used = sum(cpu_seconds(pid) - before for pid, before in stores.items())
    finally:
        stop.set()
        _, pending = await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_SECONDS if drain else 0)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for browser in browsers:
            browser.close()
    elapsed = after_at - before_at
    window.seconds += elapsed
    window.server_cpu += after_srv - before_srv
    window.stores_cpu += 0.0 if math.isnan(stores_used) else stores_used
    window.bench_cpu += after_bench - before_bench
    window.busy += after_sys[0] - before_sys[0]
    window.total += sum(after - before for after, before in zip(after_sys, before_sys, strict=True))
    rate = (load.flows - flows_before) / elapsed
    print(f"    {provider.label:<12} {rate:8.1f} flows/s over {elapsed:.1f} s", flush=True)


async def measure_mode(
    providers: Sequence[Provider], mode: str, email: str, password: str, args: argparse.Namespace
) -> tuple[list[Figure], list[PacedFigure]]:
    """Alternate the providers for ``--rounds`` windows each, so slow drift of a shared machine
    falls on both; one figure per provider over all its windows. In ``session`` mode, then
    the paced run of each provider at ``--paced-load`` of its own closed-loop rate."""
    print(f"{mode} flows, {args.concurrency} browsers, {args.rounds} x {args.duration:g} s each ...")
    browsers = {
        provider.label: [Browser(provider.port, None) for _ in range(args.concurrency)]
        for provider in providers
    }
    if mode == "session":  # one sign-in per browser, through the same form as the flows
        await asyncio.gather(  # both sides at once: nothing is measured yet
            *(
                provider.sign_in(browser, email, password)
                for provider in providers
                for browser in browsers[provider.label]
            )
        )
    windows = {provider.label: Window() for provider in providers}
    # The run's last window: its flows in flight need not finish (nothing is measured after it).
    last_mode = mode == args.modes[-1] and not (mode == "session" and args.paced_load > 0)
    for round_index in range(args.rounds):
        for index, provider in enumerate(providers):
            last = last_mode and round_index == args.rounds - 1 and index == len(providers) - 1
            await run_round(
                provider,
                browsers[provider.label],
                mode,
                email,
                password,
                args,
                windows[provider.label],
                drain=not last,
            )
    figures = [windows[provider.label].figure(provider.label, mode) for provider in providers]
    for provider, figure in zip(providers, figures, strict=True):
        print("  " + figure.describe(), flush=True)
        if windows[provider.label].load.errors:
            print(f"    last error: {windows[provider.label].load.last_error}", flush=True)
    paced: list[PacedFigure] = []
    if mode == "session" and args.paced_load > 0:
        print(
            f"session flows paced at {args.paced_load:.0%} of each side's closed-loop rate,"
            f" {args.concurrency} browsers, {args.duration:g} s ...",
            flush=True,
        )
        for provider, figure in zip(providers, figures, strict=True):
            paced.append(await measure_paced(provider, browsers[provider.label], figure.flows_per_s, args))
    return figures, paced


# --------------------------------------------------------------------------------------------
# Paced: the same browsers on a fixed schedule below saturation (the latency goal's setting)
# --------------------------------------------------------------------------------------------


@dataclass
class PacedLoad:
    flows: int = 0
    late: int = 0
    flow_ms: list[float] = field(default_factory=list)  # from the flow's slot, not its start
    token_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    last_error: str = ""


@dataclass
class PacedFigure:
    side: str
    fraction: float  # of the capacity below
    capacity: float  # this side's closed-loop session flows/s in this run
    offered: float  # flows/s, all browsers together
    achieved: float
    late: float  # share of flows that started more than LATE_MS after their slot
    flow_p50_ms: float
    flow_p99_ms: float
    token_p50_ms: float
    token_p99_ms: float
    errors: dict[str, int]

    def describe(self) -> str:
        return (
            f"{self.side:<12} paced    {self.offered:8.1f} flows/s offered"
            f" ({self.fraction:.0%} of {self.capacity:.1f}), {self.achieved:.1f} done"
            f"  flow p50 {self.flow_p50_ms:7.1f} p99 {self.flow_p99_ms:7.1f} ms"
            f"  token p50 {self.token_p50_ms:6.2f} p99 {self.token_p99_ms:6.2f} ms"
            f"  late starts {self.late:.1%}" + (f", errors {self.errors}" if self.errors else "")
        )


async def paced_browser(
    provider: Provider,
    browser: Browser,
    slots: Sequence[float],
    record_from: float,
    load: PacedLoad,
) -> None:
    """Open loop: one session flow per slot (perf_counter times). A flow whose slot passed
    while the previous one was still running starts at once, and the slots after it do not
    move, so slow answers never lower the offered rate; its latency counts from its slot."""
    session_cookies = dict(browser.cookies)
    for slot in slots:
        delay = slot - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        recording = slot >= record_from
        if recording and -delay * 1000.0 > LATE_MS:
            load.late += 1
        auth = Authorization(provider.client_id)
        browser.cookies = dict(session_cookies)
        try:
            code = await provider.code_with_session(browser, auth)
            sent = time.perf_counter()
            await token_request(provider, browser, auth, code)
            done = time.perf_counter()
        except (FlowError, OSError, ValueError, asyncio.IncompleteReadError) as exc:
            if recording:
                load.errors[exc.step if isinstance(exc, FlowError) else type(exc).__name__] += 1
                load.last_error = str(exc)
            browser.close()
            continue
        if recording:
            load.flows += 1
            load.flow_ms.append((done - slot) * 1000.0)
            load.token_ms.append((done - sent) * 1000.0)


async def measure_paced(
    provider: Provider, browsers: Sequence[Browser], capacity: float, args: argparse.Namespace
) -> PacedFigure:
    """``len(browsers)`` browsers offering ``args.paced_load`` x ``capacity`` flows/s together:
    browser i's slots are i/rate, (i + n)/rate, (i + 2n)/rate, ... (evenly interleaved), for
    ``--warmup`` seconds unrecorded, then ``--duration`` seconds recorded."""
    rate = args.paced_load * capacity
    count = len(browsers)
    for browser, stream in zip(browsers, await open_streams(provider, count), strict=True):
        browser.attach(stream)
    load = PacedLoad()
    start = time.perf_counter() + 0.05
    record_from = start + args.warmup
    end = record_from + args.duration
    schedules = [
        [start + (index + count * k) / rate for k in range(math.ceil((end - start) * rate / count) + 1)]
        for index in range(count)
    ]
    try:
        await asyncio.gather(
            *(
                paced_browser(provider, browser, [slot for slot in slots if slot < end], record_from, load)
                for browser, slots in zip(browsers, schedules, strict=True)
            )
        )
    finally:
        for browser in browsers:
            browser.close()
    if not load.flows:
        raise RuntimeError(
            f"{provider.label}: no paced flow completed ({dict(load.errors)}: {load.last_error})"
        )
    figure = PacedFigure(
        side=provider.label,
        fraction=args.paced_load,
        capacity=capacity,
        offered=rate,
        achieved=load.flows / args.duration,
        late=load.late / (load.flows + sum(load.errors.values())),
        flow_p50_ms=percentile(load.flow_ms, 50),
        flow_p99_ms=percentile(load.flow_ms, 99),
        token_p50_ms=percentile(load.token_ms, 50),
        token_p99_ms=percentile(load.token_ms, 99),
        errors=dict(load.errors),
    )
    print("  " + figure.describe(), flush=True)
    if load.errors:
        print(f"    last error: {load.last_error}", flush=True)
    return figure


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def _client_config(workdir: Path) -> Path:
    path = workdir / "clients.toml"
    path.write_text(
        "[[clients]]\n"
        f'id = "{OUR_CLIENT_ID}"\n'
        'name = "Code-flow bench"\n'
        f'secret_env = "{SECRET_ENV}"\n'
        f'redirect_uris = ["{REDIRECT_URI}"]\n'
        'grant_types = ["authorization_code"]\n'
        "first_party = true\n"
        'token_endpoint_auth_method = "client_secret_basic"\n'
        'id_token_signed_response_alg = "RS256"\n'
    )
    return path


async def run(args: argparse.Namespace, workdir: Path) -> tuple[list[Figure], list[PacedFigure]]:
    figures: list[Figure] = []
    paced: list[PacedFigure] = []
    email = f"flow-{secrets.token_hex(4)}@example.com"
    password = "bench-" + secrets.token_urlsafe(12)
    secret = secrets.token_urlsafe(32)
    async with (
        throwaway_database(args.database_url) as database_url,
        redis_namespace("idpflow") as (_, prefix),
    ):
        env = server_env(REPO_ROOT, database_url, redis_prefix=prefix)
        env["IDP_CONFIG"] = str(_client_config(workdir))
        # Capacity, not overload policy: 32 closed-loop sign-ins keep more hashes queued than
        # the argon2 pool admits by default (0.5 s of expected wait), which would answer 503s.
        env["IDP_ARGON2_MAX_WAIT"] = "60"
        env[SECRET_ENV] = secret
        port = free_port()
        async with contextlib.AsyncExitStack() as stack:
            idp, server = await start_together(
                stack,
                running_server(workdir, env, args.workers, port=port),
                better_auth(workdir, f"http://127.0.0.1:{port}", alg="RS256", oidc_redirect_uri=REDIRECT_URI),
            )
            database = urlsplit(database_url or "").path.lstrip("/")
            ours = Ours(idp.port, [idp.process.pid, *idp.workers], secret, database)
            ba = _better_auth(server)
            await _setup_users(idp.url, server, email, password)
            for provider in (ours, ba):
                claims = await verify_one_flow(provider, email, password)
                print(f"{provider.label}: ID token verified (RS256), claims {sorted(claims)}")
            for mode in args.modes:
                closed, paced_now = await measure_mode((ours, ba), mode, email, password, args)
                figures += closed
                paced += paced_now
    return figures, paced


def _better_auth(server: BetterAuthServer) -> BetterAuth:
    if server._process is None or server.oidc_client is None:
        raise RuntimeError("Better Auth started without its OAuth provider client")
    client = server.oidc_client
    return BetterAuth(server.port, [server._process.pid], client["client_id"], client["client_secret"])


async def _setup_users(idp_url: str, ba: BetterAuthServer, email: str, password: str) -> None:
    async with httpx.AsyncClient(base_url=idp_url, timeout=REQUEST_TIMEOUT_SECONDS) as client:
        signup = await client.post("/v1/signup", json={"email": email, "password": password})
        if signup.status_code != 201:
            raise RuntimeError(f"signup failed: {signup.status_code} {signup.text}")
    await asyncio.to_thread(ba.sign_up, email, password, "Flow Bench")


def _pairs(figures: Sequence[Figure]) -> list[tuple[str, Figure, Figure]]:
    by = {(f.side, f.mode): f for f in figures}
    return [
        (mode, by[("ours", mode)], by[("Better Auth", mode)])
        for mode in MODES
        if ("ours", mode) in by and ("Better Auth", mode) in by
    ]


def goals(figures: Sequence[Figure], paced: Sequence[PacedFigure]) -> list[Goal]:
    """Throughput: the closed-loop ratio, per mode. Latency: our token request's p99 in the
    paced run (below saturation); the closed-loop p99 is queueing and only reported."""
    result: list[Goal] = []
    for mode, ours, ba in _pairs(figures):
        ratio = ours.flows_per_s / ba.flows_per_s
        result.append(Goal.at_least(f"{mode} flows/s, ours / Better Auth", ratio, FLOW_GOAL, "x"))
    for figure in paced:
        if figure.side == "ours":
            name = f"paced session ({figure.fraction:.0%} of capacity): our token request (ID token) p99"
            result.append(Goal.below(name, figure.token_p99_ms, TOKEN_P99_GOAL_MS, "ms"))
    return result


def report(figures: Sequence[Figure], paced: Sequence[PacedFigure]) -> dict[str, Any]:
    """Print the comparison tables; return the figures for ``--json``."""
    rows, document = [], {}
    for mode, ours, ba in _pairs(figures):
        ratio = ours.flows_per_s / ba.flows_per_s
        cpu_ratio = ba.server_ms_per_flow / ours.server_ms_per_flow
        rows.append(
            (
                mode,
                f"{ours.flows_per_s:.1f}",
                f"{ba.flows_per_s:.1f}",
                f"{ratio:.2f}x",
                f"{ours.server_ms_per_flow:.2f} / {ba.server_ms_per_flow:.2f} = {cpu_ratio:.2f}x",
                f"{ours.token_p50_ms:.1f} / {ours.token_p99_ms:.1f}",
                f"{ba.token_p50_ms:.1f} / {ba.token_p99_ms:.1f}",
            )
        )
        document[mode] = {
            "ours": asdict(ours),
            "better_auth": asdict(ba),
            "ratio": ratio,
            "cpu_per_flow_ratio": cpu_ratio,
        }
    print()
    print("closed loop (saturated: every browser starts its next flow at once; token latency is queueing)")
    header = (
        "mode",
        "ours flows/s",
        "BA flows/s",
        "ratio",
        "CPU ms/flow ours / BA",
        "token p50/p99 ms ours",
        "BA",
    )
    print_table(header, rows)
    if paced:
        print()
        print("paced (open loop below saturation: the ID-token latency goal's setting)")
        paced_rows = [
            (
                figure.side,
                f"{figure.offered:.1f} ({figure.fraction:.0%} of {figure.capacity:.1f})",
                f"{figure.achieved:.1f}",
                f"{figure.late:.1%}",
                f"{figure.flow_p50_ms:.1f} / {figure.flow_p99_ms:.1f}",
                f"{figure.token_p50_ms:.1f} / {figure.token_p99_ms:.1f}",
            )
            for figure in paced
        ]
        paced_header = ("side", "offered flows/s", "done/s", "late", "flow p50/p99 ms", "token p50/p99 ms")
        print_table(paced_header, paced_rows)
        document["paced_session"] = {figure.side: asdict(figure) for figure in paced}
    print()
    return document


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_standard_arguments(parser)
    parser.add_argument("--duration", type=float, help="measured seconds per window (default 5, quick 2)")
    parser.add_argument(
        "--warmup", type=float, help="load before each window, seconds (default 1.5, quick 0.5)"
    )
    parser.add_argument(
        "--rounds", type=int, help="windows per side and mode, alternating the sides (default 2, quick 1)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="simulated browsers (default 32)")
    parser.add_argument("--workers", type=int, default=2, help="our uvicorn workers")
    parser.add_argument(
        "--paced-load",
        type=float,
        default=PACED_LOAD,
        help="paced session run's offered rate as a fraction of each side's closed-loop session"
        f" rate (default {PACED_LOAD:g}; 0 skips it)",
    )
    parser.add_argument(
        "--modes",
        type=lambda value: value.split(","),
        default=list(MODES),
        help="comma-separated subset of session,signin",
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_ADMIN_URL,
        help="admin connection used to create and drop a throwaway database (loopback only)",
    )
    args = parser.parse_args(argv)
    args.duration = args.duration or (2.0 if args.quick else 5.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 1.5)
    args.rounds = args.rounds or (1 if args.quick else 2)
    if not args.modes or not set(args.modes) <= set(MODES):
        parser.error("--modes takes a comma-separated subset of session,signin")
    try:
        check_loopback(args.database_url)
    except ValueError as exc:
        parser.error(f"--database-url: {exc}")
    if not 0 <= args.paced_load < 1:
        parser.error("--paced-load is a fraction of the closed-loop rate: 0 (skip) up to below 1")
    if min(args.duration, args.concurrency, args.workers, args.rounds) <= 0:
        parser.error("--duration, --concurrency, --rounds and --workers must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="idp-code-flow-") as tmp:
        figures, paced = run_uvloop(run(args, Path(tmp)))
    return finish(goals(figures, paced), report(figures, paced), args)


if __name__ == "__main__":
    run_main(main)
