"""RFC 8693 token exchange against a real Better Auth server (npm better-auth, JWT plugin).

Better Auth runs as a real Node process on loopback; our IdP runs in-process on PostgreSQL +
Redis or on SQLite, with a trust configuration written for the test.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jws, jwt
from joserfc.jwk import OctKey, OKPKey
from litestar import Litestar

from service.app import create_app, serving
from service.clock import FrozenClock
from service.config import Settings
from service.exchange.remote_jwks import JWKS_EVENTS
from service.runtime import Runtime
from tests.support.better_auth import BetterAuthServer, run_better_auth
from tests.support.server import free_port

IDP = "http://127.0.0.1:8000"
GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ACCESS_TYPE = "urn:ietf:params:oauth:token-type:access_token"
SECRETS = {"WEB_SECRET": "web-secret-" + "x" * 32, "OTHER_SECRET": "other-secret-" + "y" * 32}
PASSWORD = "correct horse battery"


def trust_config(path: Path, issuer: str, jwks_uri: str, **overrides: str) -> Path:
    """A TOML trust file: Better Auth trusted for client 'web'; client 'other' exists but is not allowed."""
    options = {"max_token_age": "900", "link_verified_email": "false", **overrides}
    path.write_text(
        f"""
[[trusted_issuers]]
issuer = "{issuer}"
jwks_uri = "{jwks_uri}"
audiences = ["{IDP}"]
algorithms = ["EdDSA", "RS256"]
clients = ["web"]
max_token_age = {options["max_token_age"]}
link_verified_email = {options["link_verified_email"]}

[[clients]]
id = "web"
name = "Next.js app"
secret_env = "WEB_SECRET"

[[clients]]
id = "other"
secret_env = "OTHER_SECRET"
"""
    )
    return path


@pytest.fixture(scope="module", params=["EdDSA", "RS256"])
def better_auth(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BetterAuthServer]:
    """One Better Auth per algorithm for the module, its JWTs addressed to our IdP."""
    with run_better_auth(tmp_path_factory.mktemp("better-auth"), audience=IDP, alg=request.param) as server:
        yield server


@pytest.fixture
def clock() -> FrozenClock:
    """Real time to start with (Better Auth signs with the real clock), moved by the tests."""
    return FrozenClock(time.time())


@pytest.fixture
def idp_factory(
    tmp_path: Path, make_settings: Callable[..., Settings], backend_env: dict[str, str], clock: FrozenClock
) -> Callable[..., Litestar]:
    def make(issuer: str, jwks_uri: str, **trust: str) -> Litestar:
        config = trust_config(tmp_path / f"trust-{uuid.uuid4().hex[:6]}.toml", issuer, jwks_uri, **trust)
        return create_app(make_settings(IDP_CONFIG=str(config), **SECRETS, **backend_env), clock=clock)

    return make


@pytest.fixture
async def idp(
    idp_factory: Callable[..., Litestar], better_auth: BetterAuthServer
) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(idp_factory(better_auth.issuer, better_auth.jwks_url)) as client:
        yield client


class serve:  # noqa: N801 - used like a function: ``async with serve(app) as client``
    def __init__(self, app: Litestar) -> None:
        self.app = app
        self._serving = serving(app)

    async def __aenter__(self) -> httpx.AsyncClient:
        self.runtime: Runtime = await self._serving.__aenter__()
        transport = httpx.ASGITransport(app=self.app)  # type: ignore[arg-type]
        self.client = httpx.AsyncClient(transport=transport, base_url=IDP)
        return self.client

    async def __aexit__(self, *_: object) -> None:
        await self.client.aclose()
        await self._serving.__aexit__(None, None, None)


def exchange_form(subject_token: str, **extra: str) -> dict[str, str]:
    return {"grant_type": GRANT, "subject_token": subject_token, "subject_token_type": JWT_TYPE, **extra}


async def exchange(
    idp: httpx.AsyncClient,
    subject_token: str,
    client: tuple[str, str] = ("web", SECRETS["WEB_SECRET"]),
    extra: dict[str, str] | None = None,
) -> httpx.Response:
    return await idp.post("/oauth2/token", data=exchange_form(subject_token, **(extra or {})), auth=client)


def ba_user(better_auth: BetterAuthServer) -> tuple[str, str]:
    email = f"user-{uuid.uuid4().hex[:8]}@example.com"
    session = better_auth.sign_up(email, PASSWORD, "Ada Lovelace")
    return email, better_auth.jwt(session)


async def test_exchange_then_call_me(idp: httpx.AsyncClient, better_auth: BetterAuthServer) -> None:
    """Sign up on Better Auth, exchange its JWT, call /v1/me with our token; the same Better Auth
    user maps to the same local account on the next exchange."""
    email, subject_token = ba_user(better_auth)
    response = await exchange(idp, subject_token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["issued_token_type"], body["token_type"], body["expires_in"]) == (ACCESS_TYPE, "Bearer", 900)
    assert body["refresh_token"].startswith("idprt_")
    assert response.headers["cache-control"] == "no-store"
    me = (await idp.get("/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})).json()
    assert (me["email"], me["name"]) == (email, "Ada Lovelace")
    time.sleep(1.1)  # Better Auth's JWTs have 1-second iat and no jti: same second, same bytes
    second = better_auth.jwt(better_auth.sign_in(email, PASSWORD))
    again = await exchange(idp, second)
    assert again.status_code == 200, again.text
    me_again = (
        await idp.get("/v1/me", headers={"Authorization": f"Bearer {again.json()['access_token']}"})
    ).json()
    assert me_again["id"] == me["id"]
    refreshed = await idp.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        auth=("web", SECRETS["WEB_SECRET"]),
    )
    assert refreshed.status_code == 200, "the exchanged session is bound to client 'web'"


async def test_replay_is_refused(idp: httpx.AsyncClient, better_auth: BetterAuthServer) -> None:
    """Better Auth tokens have no jti: the token itself is remembered until it expires."""
    _, subject_token = ba_user(better_auth)
    assert (await exchange(idp, subject_token)).status_code == 200
    replay = await exchange(idp, subject_token)
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_request")


async def test_expired_and_too_old_tokens(
    idp: httpx.AsyncClient, better_auth: BetterAuthServer, clock: FrozenClock
) -> None:
    """Past exp (+30 s leeway) the token is refused, without sleeping: the clock is injected."""
    _, subject_token = ba_user(better_auth)
    clock.advance(15 * 60 + 40)
    response = await exchange(idp, subject_token)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


async def test_maximum_token_age(
    idp_factory: Callable[..., Litestar], better_auth: BetterAuthServer, clock: FrozenClock
) -> None:
    """A token still within exp but older than the issuer's max_token_age is refused."""
    _, subject_token = ba_user(better_auth)
    async with serve(idp_factory(better_auth.issuer, better_auth.jwks_url, max_token_age="60")) as idp:
        clock.advance(120)
        response = await exchange(idp, subject_token)
        assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


async def test_tampered_signature_and_payload(idp: httpx.AsyncClient, better_auth: BetterAuthServer) -> None:
    """A flipped signature byte or an edited payload fails verification."""
    _, subject_token = ba_user(better_auth)
    head, payload, signature = subject_token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    for forged in (f"{head}.{payload}.{flipped}", f"{head}.{payload[:-4]}AAAA.{signature}"):
        response = await exchange(idp, forged)
        assert (response.status_code, response.json()["error"]) == (400, "invalid_request")
    assert (await exchange(idp, subject_token)).status_code == 200


async def test_client_rules(idp: httpx.AsyncClient, better_auth: BetterAuthServer) -> None:
    """Exchange needs client authentication, and only clients allowed for the issuer."""
    _, subject_token = ba_user(better_auth)
    anonymous = await idp.post("/oauth2/token", data=exchange_form(subject_token))
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "invalid_client")
    wrong_secret = await exchange(idp, subject_token, client=("web", "nope"))
    assert (wrong_secret.status_code, wrong_secret.json()["error"]) == (401, "invalid_client")
    other = await exchange(idp, subject_token, client=("other", SECRETS["OTHER_SECRET"]))
    assert (other.status_code, other.json()["error"]) == (400, "unauthorized_client")
    assert (await exchange(idp, subject_token)).status_code == 200, "refusals did not burn the token"


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"subject_token_type": "urn:ietf:params:oauth:token-type:saml2"}, "invalid_request"),
        ({"requested_token_type": "urn:ietf:params:oauth:token-type:id_token"}, "invalid_request"),
        ({"audience": "https://elsewhere.example"}, "invalid_target"),
        ({"actor_token": "x", "actor_token_type": JWT_TYPE}, "invalid_request"),
    ],
    ids=["saml", "id-token", "audience", "actor"],
)
async def test_request_errors(
    idp: httpx.AsyncClient, better_auth: BetterAuthServer, extra: dict[str, str], error: str
) -> None:
    """RFC 8693 §2.2.2 errors for what we do not issue."""
    _, subject_token = ba_user(better_auth)
    response = await exchange(idp, subject_token, extra=extra)
    assert (response.status_code, response.json()["error"]) == (400, error)


async def test_wrong_audience(tmp_path: Path, idp_factory: Callable[..., Litestar]) -> None:
    """A Better Auth whose tokens name another audience is refused."""
    with run_better_auth(tmp_path, audience="https://some-other-api.example") as other:
        _, subject_token = ba_user(other)
        async with serve(idp_factory(other.issuer, other.jwks_url)) as idp:
            response = await exchange(idp, subject_token)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


async def test_untrusted_issuer(idp_factory: Callable[..., Litestar], better_auth: BetterAuthServer) -> None:
    """Tokens whose iss is not configured exactly are refused, with no JWKS fetch."""
    _, subject_token = ba_user(better_auth)
    async with serve(idp_factory(better_auth.issuer + "/", better_auth.jwks_url)) as idp:
        response = await exchange(idp, subject_token)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


async def test_jwks_unreachable_fails_closed(
    idp_factory: Callable[..., Litestar], better_auth: BetterAuthServer
) -> None:
    """No keys, no tokens: 503 temporarily_unavailable, never an acceptance."""
    _, subject_token = ba_user(better_auth)
    dead = f"http://127.0.0.1:{free_port()}/api/auth/jwks"
    async with serve(idp_factory(better_auth.issuer, dead)) as idp:
        response = await exchange(idp, subject_token)
    assert (response.status_code, response.json()["error"]) == (503, "temporarily_unavailable")


async def test_key_rotation_mid_run(idp: httpx.AsyncClient, better_auth: BetterAuthServer) -> None:
    """Better Auth restarts with a new key (new kid): one refetch finds it; repeated unknown kids
    do not refetch more than once per interval."""
    _, before = ba_user(better_auth)
    assert (await exchange(idp, before)).status_code == 200
    better_auth.restart()
    _, after = ba_user(better_auth)
    fetches = JWKS_EVENTS.labels(better_auth.issuer, "fetch")
    start = fetches._value.get()
    assert (await exchange(idp, after)).status_code == 200, "refetched on the unknown kid"
    assert fetches._value.get() == start + 1
    _, later = ba_user(better_auth)
    head = before.split(".")[0]
    bogus = f"{head}.{later.split('.')[1]}.{later.split('.')[2]}"
    for _ in range(5):
        assert (await exchange(idp, bogus)).json()["error"] == "invalid_request"
    assert fetches._value.get() == start + 1, "unknown kids within the interval cause no fetch"


async def test_unverified_email_never_links(idp: httpx.AsyncClient, better_auth: BetterAuthServer) -> None:
    """A local account with the same email is not taken over by an unverified Better Auth email."""
    email = f"victim-{uuid.uuid4().hex[:6]}@example.com"
    local = await idp.post("/v1/signup", json={"email": email, "password": "victim pass phrase"})
    assert local.status_code == 201
    subject_token = better_auth.jwt(better_auth.sign_up(email, PASSWORD, "Mallory"))
    exchanged = await exchange(idp, subject_token)
    assert exchanged.status_code == 200, exchanged.text
    me: dict[str, Any] = (
        await idp.get("/v1/me", headers={"Authorization": f"Bearer {exchanged.json()['access_token']}"})
    ).json()
    assert me["id"] != local.json()["user"]["id"]
    login = await idp.post("/v1/login", json={"email": email, "password": "victim pass phrase"})
    assert login.status_code == 200


async def test_discovery_advertises_the_grant(idp: httpx.AsyncClient) -> None:
    """The token-exchange grant type is listed in the metadata."""
    metadata = (await idp.get("/.well-known/openid-configuration")).json()
    assert GRANT in metadata["grant_types_supported"]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forgeries(subject_token: str, jwks: dict[str, Any]) -> dict[str, str]:
    """Hostile subject tokens built from a genuine Better Auth token and its public JWKS."""
    head, payload, signature = subject_token.split(".")
    header = json.loads(base64.urlsafe_b64decode(head + "=="))
    attacker = OKPKey.generate_key("Ed25519")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    public = jwks["keys"][0]
    hs_key = OctKey.import_key(json.dumps(public).encode())
    return {
        "alg-none": f"{b64(json.dumps({'alg': 'none', 'kid': header['kid']}).encode())}.{payload}.",
        "hs256-with-public-key": jws.serialize_compact(
            {"alg": "HS256", "kid": header["kid"]}, json.dumps(claims).encode(), hs_key, algorithms=["HS256"]
        ),
        "jku-injection": jwt.encode(
            {"alg": "EdDSA", "kid": "attacker", "jku": "http://127.0.0.1:9/jwks.json"}, claims, attacker,
            algorithms=["EdDSA"],
        ),
        "embedded-jwk": jwt.encode(
            {"alg": "EdDSA", "kid": header["kid"], "jwk": attacker.as_dict(private=False)}, claims, attacker,
            algorithms=["EdDSA"],
        ),
        "attacker-key-same-kid": jwt.encode(
            {"alg": "EdDSA", "kid": header["kid"]}, claims, attacker, algorithms=["EdDSA"]
        ),
        "no-kid": f"{b64(json.dumps({'alg': header['alg']}).encode())}.{payload}.{signature}",
        "truncated": subject_token[: len(subject_token) // 2],
        "not-base64": f"{head}.@@@.{signature}",
        "oversized": f"{head}.{'A' * 20_000}.{signature}",
    }  # fmt: skip


FORGERIES = ["alg-none", "hs256-with-public-key", "jku-injection", "embedded-jwk", "attacker-key-same-kid",
             "no-kid", "truncated", "not-base64", "oversized"]  # fmt: skip


@pytest.mark.parametrize("case", FORGERIES)
async def test_hostile_subject_tokens(
    idp: httpx.AsyncClient, better_auth: BetterAuthServer, case: str
) -> None:
    """Each forgery is invalid_request; none is followed to a URL it names."""
    _, subject_token = ba_user(better_auth)
    forged = forgeries(subject_token, better_auth.jwks())
    assert set(forged) == set(FORGERIES)
    response = await exchange(idp, forged[case])
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")
    assert (await exchange(idp, subject_token)).status_code == 200, "the genuine token still works"
