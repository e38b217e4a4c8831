"""Faults under load: Redis killed and restarted, PostgreSQL restarted, while signups, logins,
token exchanges and refreshes are under way. Never a 500; the service recovers by itself; and
after every fault two invariants hold:

- no refresh family has two valid successors: every token presented for rotation (some twice
  at once) always got the same successor, and at most one token ever handed out per family is
  still current (asked through RFC 7662 introspection for client-bound families, read-only
  from the session store for first-party ones, which no client may introspect);
- no account was lost or duplicated: every signup answered 201 exists exactly once and logs in;
  one answered only 503 exists at most once.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from service.store.redis import RedisFamilyStore, connect_redis
from service.tokens.refresh import hash_secret, parse_token
from tests.conftest import empty_postgres
from tests.support.own_postgres import run_own_postgres
from tests.support.own_redis import OwnRedis
from tests.support.server import free_port, run_server
from tests.support.token_issuer import TokenIssuer, run_token_issuer

PASSWORD = "correct horse battery"
LOAD_SECONDS = 6.0
DRIVERS = 4
# Each driver pauses this long per round, so the load stays bounded (a few hundred accounts).
PACE_SECONDS = 0.02
# Refresh families each driver keeps rotating (older ones stay recorded and checked).
HELD_FAMILIES = 6
HTTP_TIMEOUT = 10.0
CLIENT_ID = "api"
CLIENT_SECRET = "api-secret-" + "z" * 32
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
# What a client may see while a store is down: 503 for the outage, the rest normal answers.
ALLOWED = {200, 201, 400, 401, 409, 503}


def client_auth() -> dict[str, str]:
    credentials = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    return {"Authorization": f"Basic {credentials}"}


def fault_env(workdir: Path, issuer: TokenIssuer, idp_url: str) -> dict[str, str]:
    """IDP_CONFIG: the test's issuer, trusted for the confidential client 'api', linking
    verified emails to the accounts the drivers signed up (so exchanges add no account)."""
    config = workdir / "idp.toml"
    config.write_text(
        f"""
[[trusted_issuers]]
issuer = "{issuer.url}"
jwks_uri = "{issuer.jwks_uri}"
audiences = ["{idp_url}"]
algorithms = ["EdDSA"]
clients = ["{CLIENT_ID}"]
link_verified_email = true

[[clients]]
id = "{CLIENT_ID}"
secret_env = "FAULTS_CLIENT_SECRET"
"""
    )
    return {"IDP_CONFIG": str(config), "FAULTS_CLIENT_SECRET": CLIENT_SECRET}


@dataclass
class Ledger:
    """Everything the drivers saw, for the invariants afterwards."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[int] = field(default_factory=Counter)
    by_kind: Counter[tuple[str, int]] = field(default_factory=Counter)
    # presented refresh token → every successor it was answered with
    successors: dict[str, set[str]] = field(default_factory=dict)
    # family id → every refresh token handed out for it
    tokens: dict[str, set[str]] = field(default_factory=dict)
    bound: set[str] = field(default_factory=set)
    # email → the status of every signup attempt for it, in order
    signups: dict[str, list[int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    failovers: int = 0
    cut: list[str] = field(default_factory=list)
    ok_after: dict[str, int] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)

    def answered(self, kind: str, status: int) -> None:
        with self.lock:
            self.statuses[status] += 1
            self.by_kind[kind, status] += 1
            if status in {200, 201}:
                now = time.monotonic()
                for mark, at in self.marks.items():
                    if now > at:
                        self.ok_after[mark] = self.ok_after.get(mark, 0) + 1

    def mark(self, name: str) -> None:
        with self.lock:
            self.marks[name] = time.monotonic()

    def issued(self, token: str, *, bound: bool) -> str:
        family = parse_token(token)[0]
        with self.lock:
            self.tokens.setdefault(family, set()).add(token)
            if bound:
                self.bound.add(family)
        return family

    def rotated(self, presented: str, successor: str) -> None:
        with self.lock:
            self.successors.setdefault(presented, set()).add(successor)


@dataclass
class Driver:
    """One client thread: fresh signups (a 503 is retried with the same email), logins of its
    accounts, token exchanges for them (client-bound families), and refreshes of the families
    it holds (a 503 is retried with the same token, as a real client would)."""

    urls: Sequence[str]
    """Instances behind an imaginary balancer: the first, then the next once it refuses
    connections. Each request opens its own connection, so a refused connection always means
    the request never reached an instance."""
    audience: str
    ledger: Ledger
    issuer: TokenIssuer
    name: str
    stop_at: float
    accounts: list[str] = field(default_factory=list)
    held: dict[str, tuple[str, bool]] = field(default_factory=dict)
    pending_email: str | None = None
    logins: int = 0
    refreshes: int = 0
    instance: int = 0

    def run(self) -> None:
        try:
            with httpx.Client(timeout=HTTP_TIMEOUT, limits=httpx.Limits(max_keepalive_connections=0)) as http:
                actions: list[Callable[[httpx.Client], None]] = [self.signup, self.login, self.exchange]
                for round_no in itertools.count():
                    if time.monotonic() >= self.stop_at:
                        return
                    actions[round_no % len(actions)](http)
                    self.refresh(http)
                    time.sleep(PACE_SECONDS)
        except Exception as exc:
            with self.ledger.lock:
                self.ledger.errors.append(f"{self.name}: {type(exc).__name__}: {exc}")

    def post(
        self, http: httpx.Client, path: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """POST to the current instance with a request id of our own. A refused connection
        moves on to the next instance; so does a connection cut before any answer (recorded
        in ``ledger.cut`` with its request id, to check afterwards that the instance never
        handled it), retried as a client would: every request here is safe to retry."""
        # Two threads of this driver may fail over at once (the concurrent refresh pair): each
        # call follows its own index, and the first to notice moves the driver on.
        instance = self.instance
        while True:
            request_id = f"{self.name}-{uuid.uuid4().hex[:16]}"
            try:
                return http.post(
                    self.urls[instance] + path,
                    headers={**(headers or {}), "X-Request-ID": request_id},
                    **kwargs,
                )
            except (httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as exc:
                if instance + 1 >= len(self.urls):
                    raise
                with self.ledger.lock:
                    if self.instance == instance:
                        self.ledger.failovers += 1
                        self.instance = instance + 1
                    if not isinstance(exc, httpx.ConnectError):
                        self.ledger.cut.append(request_id)
                instance += 1

    def hold(self, token: str, *, bound: bool) -> None:
        family = self.ledger.issued(token, bound=bound)
        self.held[family] = (token, bound)
        while len(self.held) > HELD_FAMILIES:
            del self.held[next(iter(self.held))]

    def signup(self, http: httpx.Client) -> None:
        email = self.pending_email or f"{self.name}-{uuid.uuid4().hex[:10]}@example.com"
        response = self.post(http, "/v1/signup", json={"email": email, "password": PASSWORD})
        self.ledger.answered("signup", response.status_code)
        with self.ledger.lock:
            self.ledger.signups.setdefault(email, []).append(response.status_code)
        self.pending_email = email if response.status_code == 503 else None
        if response.status_code == 201:
            self.accounts.append(email)
            self.hold(response.json()["tokens"]["refresh_token"], bound=False)
        elif response.status_code == 409:
            self.accounts.append(email)  # an earlier 503 attempt did create it

    def login(self, http: httpx.Client) -> None:
        if not self.accounts:
            return
        self.logins += 1
        email = self.accounts[self.logins % len(self.accounts)]
        response = self.post(http, "/v1/login", json={"email": email, "password": PASSWORD})
        self.ledger.answered("login", response.status_code)
        if response.status_code == 200:
            self.hold(response.json()["refresh_token"], bound=False)

    def exchange(self, http: httpx.Client) -> None:
        if not self.accounts:
            return
        email = self.accounts[-1]
        subject_token = self.issuer.sign(subject=f"sub-{email}", email=email, audience=self.audience)
        form = {"grant_type": EXCHANGE, "subject_token": subject_token, "subject_token_type": JWT_TYPE}
        response = self.post(http, "/oauth2/token", data=form, headers=client_auth())
        self.ledger.answered("exchange", response.status_code)
        if response.status_code == 200:
            self.hold(response.json()["refresh_token"], bound=True)

    def refresh(self, http: httpx.Client) -> None:
        """Rotate the family held longest. Every fourth time the token is sent twice at once,
        as a client racing itself or retrying a lost response would: both must get the same
        successor (the reuse grace), never two."""
        if not self.held:
            return
        family = next(iter(self.held))
        token, bound = self.held.pop(family)
        self.refreshes += 1

        def send(_: int) -> httpx.Response:
            form = {"grant_type": "refresh_token", "refresh_token": token}
            return self.post(http, "/oauth2/token", data=form, headers=client_auth() if bound else None)

        if self.refreshes % 4 == 0:
            with ThreadPoolExecutor(2) as pool:
                responses = list(pool.map(send, range(2)))
        else:
            responses = [send(0)]
        successor = None
        for response in responses:
            self.ledger.answered("refresh", response.status_code)
            if response.status_code == 200:
                successor = response.json()["refresh_token"]
                self.ledger.rotated(token, successor)
        if successor is not None:
            self.hold(successor, bound=bound)
        elif 503 in {response.status_code for response in responses}:
            self.held[family] = (token, bound)  # to the back of the queue, same token
        # 400: the session is gone (a Redis that keeps nothing on disk); stop using it.


def run_load(
    urls: Sequence[str], issuer: TokenIssuer, ledger: Ledger, fault: Callable[[], None], *, audience: str
) -> None:
    """``DRIVERS`` threads for ``LOAD_SECONDS``; ``fault`` runs on this thread meanwhile."""
    stop_at = time.monotonic() + LOAD_SECONDS
    drivers = [Driver(urls, audience, ledger, issuer, f"d{i}", stop_at) for i in range(DRIVERS)]
    threads = [threading.Thread(target=driver.run, name=driver.name) for driver in drivers]
    for thread in threads:
        thread.start()
    try:
        fault()
    finally:
        for thread in threads:
            thread.join(timeout=LOAD_SECONDS + 2 * HTTP_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a driver hung"
    assert not ledger.errors, ledger.errors


async def current_tokens(redis_url: str, prefix: str, tokens: set[str]) -> set[str]:
    """The tokens that are their family's current one, read from the session store without
    changing it (the same check introspection makes, for first-party families)."""
    store = RedisFamilyStore(await connect_redis(redis_url), prefix=prefix)
    try:
        now = time.time()
        current = set()
        for token in tokens:
            family, secret = parse_token(token)
            if await store.owns_token(family, hash_secret(secret), now, current_only=True):
                current.add(token)
        return current
    finally:
        await store.close()


async def account_counts(database_url: str, emails: list[str]) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT e.email, count(u.id) AS n FROM unnest($1::text[]) AS e(email) "
            "LEFT JOIN users u ON u.email = e.email GROUP BY e.email",
            emails,
        )
        return {row["email"]: row["n"] for row in rows}
    finally:
        await conn.close()


def assert_invariants(
    http: httpx.Client, ledger: Ledger, *, database_url: str, redis_url: str, redis_prefix: str
) -> dict[str, str]:
    """The invariants after a fault; returns family id → its one current token (if any)."""
    # No refresh family has two valid successors: a token presented again (a retry after a 503,
    # within the grace window) always got the same successor, in the same family…
    for token, successors in ledger.successors.items():
        assert len(successors) == 1, f"{token[:28]}… was answered with {len(successors)} successors"
        assert parse_token(next(iter(successors)))[0] == parse_token(token)[0], "a successor left its family"
    # …and at most one token ever handed out per family is still current. Client-bound
    # families are asked through introspection (read-only, current tokens only); a first-party
    # family cannot be introspected by any client, so its tokens are read from the store.
    active: dict[str, list[str]] = {}
    for family in ledger.bound:
        for token in ledger.tokens[family]:
            response = http.post("/oauth2/introspect", data={"token": token}, headers=client_auth())
            assert response.status_code == 200, response.text
            if response.json()["active"]:
                assert (response.json()["sid"], response.json()["client_id"]) == (family, CLIENT_ID)
                active.setdefault(family, []).append(token)
    first_party = set[str]().union(*(ledger.tokens[f] for f in ledger.tokens.keys() - ledger.bound))
    for token in asyncio.run(current_tokens(redis_url, redis_prefix, first_party)):
        active.setdefault(parse_token(token)[0], []).append(token)
    doubles = {family: len(tokens) for family, tokens in active.items() if len(tokens) > 1}
    assert not doubles, f"families with more than one valid token: {doubles}"
    # Introspection rotated nothing: the current tokens are still current.
    for family in list(ledger.bound & active.keys())[:20]:
        again = http.post("/oauth2/introspect", data={"token": active[family][0]}, headers=client_auth())
        assert again.json()["active"] is True

    # No account lost or duplicated.
    counts = asyncio.run(account_counts(database_url, list(ledger.signups)))
    for email, attempts in ledger.signups.items():
        if 201 in attempts or 409 in attempts:
            assert counts[email] == 1, (email, attempts, counts[email])
            login = http.post("/v1/login", json={"email": email, "password": PASSWORD})
            assert login.status_code == 200, (email, attempts, login.text)
        else:
            assert set(attempts) == {503}, (email, attempts)
            assert counts[email] <= 1, (email, attempts, counts[email])
    return {family: tokens[0] for family, tokens in active.items()}


def summary(ledger: Ledger) -> str:
    return f"statuses={dict(ledger.statuses)} by_kind={dict(ledger.by_kind)} ok_after={ledger.ok_after}"


def assert_statuses(ledger: Ledger, log: str) -> None:
    """Never a 500; the outage was seen (503) and requests succeeded again after it; an
    account that signed up was never refused a login."""
    assert 500 not in ledger.statuses, f"{summary(ledger)}\n{log[-3000:]}"
    assert "unhandled" not in log, log[-3000:]
    assert set(ledger.statuses) <= ALLOWED, summary(ledger)
    assert ledger.statuses[503] > 0, f"the outage was observed: {summary(ledger)}"
    assert ledger.ok_after.get("up", 0) > 0, f"requests succeeded after the store returned: {summary(ledger)}"
    assert ledger.by_kind["login", 401] == 0, f"an account that signed up could not log in: {summary(ledger)}"


def test_redis_restart_under_load(tmp_path: Path, postgres_server: str) -> None:
    """Bounded load from four threads; Redis dies at 2 s and returns at 4 s (empty: it keeps
    nothing on disk, so earlier sessions are gone and their refreshes get 400)."""
    redis = OwnRedis(tmp_path)
    redis.start()
    port = free_port()
    idp_url = f"http://127.0.0.1:{port}"
    ledger = Ledger()
    try:
        with run_token_issuer() as issuer:
            env = {
                "IDP_DATABASE_URL": postgres_server,
                "IDP_REDIS_URL": redis.url,
                "IDP_REFRESH_REUSE_GRACE": "30",
                **fault_env(tmp_path, issuer, idp_url),
            }
            with (
                run_server(tmp_path, env, port=port) as server,
                httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT) as http,
            ):

                def fault() -> None:
                    time.sleep(2)
                    redis.stop()
                    ledger.mark("down")
                    time.sleep(2)
                    redis.start()
                    ledger.mark("up")

                run_load([server.url], issuer, ledger, fault, audience=idp_url)
                print(summary(ledger))  # shown with -rP
                assert_statuses(ledger, server.log())
                assert http.get("/health/ready").status_code == 200
                email = next(email for email, attempts in ledger.signups.items() if 201 in attempts)
                fresh = http.post("/v1/login", json={"email": email, "password": PASSWORD})
                assert fresh.status_code == 200, "logins work again without a restart"
                form = {"grant_type": "refresh_token", "refresh_token": fresh.json()["refresh_token"]}
                assert http.post("/oauth2/token", data=form).status_code == 200
                assert_invariants(
                    http, ledger, database_url=postgres_server, redis_url=redis.url, redis_prefix="idp:"
                )
    finally:
        redis.stop()
        asyncio.run(empty_postgres(postgres_server))


def test_postgres_restart_under_load(tmp_path: Path, redis_server: str, redis_prefix: str) -> None:
    """Bounded load from four threads against a private PostgreSQL (the shared one is never
    touched), restarted at 2 s: 1 s shutting down (sessions terminated, new connections refused
    with 57P03), 1 s stopped, then started. The IdP's asyncpg pool recovers without a restart,
    and Redis kept every session, so every family is still live with one current token."""
    port = free_port()
    idp_url = f"http://127.0.0.1:{port}"
    ledger = Ledger()
    with run_own_postgres() as postgres, run_token_issuer() as issuer:
        env = {
            "IDP_DATABASE_URL": postgres.url,
            "IDP_REDIS_URL": redis_server,
            "IDP_REDIS_PREFIX": redis_prefix,
            **fault_env(tmp_path, issuer, idp_url),
        }
        with (
            run_server(tmp_path, env, port=port) as server,
            httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT) as http,
        ):

            def fault() -> None:
                time.sleep(2)
                ledger.mark("down")
                postgres.stop_after_shutdown_window(1.0)
                time.sleep(1.0)
                postgres.start()
                ledger.mark("up")

            run_load([server.url], issuer, ledger, fault, audience=idp_url)
            print(summary(ledger))  # shown with -rP
            assert_statuses(ledger, server.log())
            refused = ledger.by_kind["refresh", 400]
            assert not refused, f"Redis kept every session, yet refreshes were refused: {summary(ledger)}"
            ready = http.get("/health/ready")
            assert ready.status_code == 200, ready.text
            signup = http.post("/v1/signup", json={"email": "after@example.com", "password": PASSWORD})
            assert signup.status_code == 201, signup.text
            login = http.post("/v1/login", json={"email": "after@example.com", "password": PASSWORD})
            assert login.status_code == 200, login.text
            current = assert_invariants(
                http, ledger, database_url=postgres.url, redis_url=redis_server, redis_prefix=redis_prefix
            )
            assert "unhandled" not in server.log()
    assert set(current) == set(ledger.tokens), "every family is still live, with exactly one current token"


def test_an_exchange_refused_by_an_outage_can_be_retried_with_the_same_token(
    tmp_path: Path, redis_server: str, redis_prefix: str
) -> None:
    """The replay mark is taken before the account lookup; when PostgreSQL is down that lookup
    answers 503 and the mark is released, so the client's retry with the same subject token
    succeeds once the database is back (and a second retry is a replay)."""
    port = free_port()
    idp_url = f"http://127.0.0.1:{port}"
    with run_own_postgres() as postgres, run_token_issuer() as issuer:
        env = {
            "IDP_DATABASE_URL": postgres.url,
            "IDP_REDIS_URL": redis_server,
            "IDP_REDIS_PREFIX": redis_prefix,
            **fault_env(tmp_path, issuer, idp_url),
        }
        with (
            run_server(tmp_path, env, port=port) as server,
            httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT) as http,
        ):
            token = issuer.sign(subject="retry-user", email="retry@example.com", audience=idp_url)
            form = {"grant_type": EXCHANGE, "subject_token": token, "subject_token_type": JWT_TYPE}
            postgres.stop()
            refused = http.post("/oauth2/token", data=form, headers=client_auth())
            postgres.start()
            retried = http.post("/oauth2/token", data=form, headers=client_auth())
            replayed = http.post("/oauth2/token", data=form, headers=client_auth())
    assert (refused.status_code, refused.json()["error"]) == (503, "temporarily_unavailable")
    assert retried.status_code == 200, retried.text
    assert (replayed.status_code, replayed.json()["error"]) == (400, "invalid_request")


def test_sigterm_under_load(
    tmp_path: Path, postgres_server: str, redis_server: str, redis_prefix: str
) -> None:
    """Two instances share PostgreSQL, Redis and the keys folder behind one issuer URL; the
    drivers use the first and fail over to the second once it refuses connections. SIGTERM
    reaches the first at 2 s: every request it had accepted is answered (a cut connection is a
    driver error), it exits cleanly, the load carries on against the second, and the
    invariants hold across both."""
    first_port = free_port()
    issuer_url = f"http://127.0.0.1:{first_port}"  # the balancer's address in a real deployment
    ledger = Ledger()
    try:
        with run_token_issuer() as issuer:
            env = {
                "IDP_DATABASE_URL": postgres_server,
                "IDP_REDIS_URL": redis_server,
                "IDP_REDIS_PREFIX": redis_prefix,
                "IDP_ISSUER": issuer_url,
                **fault_env(tmp_path, issuer, issuer_url),
            }
            with (
                run_server(tmp_path, env, port=first_port) as first,
                run_server(tmp_path, env) as second,
                httpx.Client(base_url=second.url, timeout=HTTP_TIMEOUT) as http,
            ):

                def fault() -> None:
                    time.sleep(2)
                    ledger.mark("down")
                    first.process.send_signal(signal.SIGTERM)
                    first.process.wait(timeout=20)

                run_load([first.url, second.url], issuer, ledger, fault, audience=issuer_url)
                print(summary(ledger), f"failovers={ledger.failovers} cut={ledger.cut}")  # shown with -rP
                assert first.process.returncode in {0, -signal.SIGTERM}
                assert "Application shutdown complete" in first.log()
                assert ledger.failovers == DRIVERS, "every driver moved to the second instance"
                # A connection cut without an answer was one the first instance had not taken
                # from its accept queue when it closed its socket: the app never saw it. (The
                # audit lines do carry the drivers' request ids.)
                assert '"request_id":"d0-' in first.log()
                for request_id in ledger.cut:
                    assert request_id not in first.log(), f"{request_id} was handled, then its answer lost"
                assert 500 not in ledger.statuses, summary(ledger)
                assert set(ledger.statuses) <= ALLOWED - {503}, summary(ledger)
                assert ledger.ok_after.get("down", 0) > 0, summary(ledger)
                assert ledger.by_kind["refresh", 400] == 0, "no session was lost"
                current = assert_invariants(
                    http,
                    ledger,
                    database_url=postgres_server,
                    redis_url=redis_server,
                    redis_prefix=redis_prefix,
                )
                assert set(current) == set(ledger.tokens), "every family is live, with one current token"
    finally:
        asyncio.run(empty_postgres(postgres_server))
