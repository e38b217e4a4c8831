"""The OpenAPI document's response codes are the ones the service really answers.

A table of probes drives every documented operation into each answer it can give: on SQLite,
on a deployment with limits of one request, and on PostgreSQL + Redis that have both stopped.
Each probe's status is asserted; then, per operation, the codes observed must equal the codes
documented (a code documented but never produced, or produced but undocumented, fails). Every
documented operation is probed.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx

from service.admin.access import ADMIN_SCOPES
from service.app import create_app
from service.app import serving as open_app
from service.clock import FrozenClock
from service.config import Settings
from service.runtime import Runtime
from tests.http.openapi_probes import (
    AS_TEXT,
    LINK,
    MAX_BODY,
    METRICS_TOKEN,
    NOT_JSON,
    PASSWORD,
    PUBLIC,
    TOO_LARGE,
    MakeSettings,
    Observed,
    Operation,
    Probe,
    account_answers,
    bearer,
    mfa_answers,
    mfa_down,
    mfa_limited,
)
from tests.support.own_postgres import OwnPostgres
from tests.support.own_redis import OwnRedis


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    """The app in this event loop, its runtime started as the lifespan would."""
    app = create_app(settings, clock=FrozenClock(1_800_000_000.0))
    async with open_app(app) as runtime:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
            yield http, runtime


async def reset_token(probe: Probe, runtime: Runtime, outbox: Path, address: str) -> str:
    """Ask for a reset link and read it from the mail the worker writes."""
    await probe(202, "POST", "/v1/password/reset", json={"email": address})
    await runtime.background.settle()
    while await runtime.mail_worker.run_once():
        pass
    links = []
    for path in outbox.glob("*.eml"):  # the reset mail, and the verification link from signup
        message = email.message_from_bytes(path.read_bytes())
        text = next(part for part in message.walk() if part.get_content_type() == "text/plain")
        payload = text.get_payload(decode=True)
        assert isinstance(payload, bytes)
        links.extend(LINK.findall(payload.decode()))
        path.unlink()
    (link,) = links
    return str(link)


ADMIN_USER = "/admin/v1/users/{user_id}"
ADMIN_CLIENT = "/admin/v1/clients/{client_id}"


async def admin_bearer(runtime: Runtime, client_id: str, scopes: list[str]) -> dict[str, str]:
    """A new client holding ``scopes`` and the token the client_credentials grant would give it
    (minted directly: the tight instance's token endpoint allows one request)."""
    await runtime.clients.register(client_id, client_id, scopes=scopes)
    issued = runtime.access_tokens.issue(
        subject=client_id, email=None, roles=(), client_id=client_id, scope=" ".join(scopes)
    )
    return bearer(issued.token)


async def admin_answers(probe: Probe, runtime: Runtime) -> None:
    """The admin API: each operation's success and client errors (the scopes' matrix itself is
    tests/http/test_admin_authz.py)."""
    root = await admin_bearer(runtime, "backoffice", list(ADMIN_SCOPES))
    weak = await admin_bearer(runtime, "weak", ["unrelated"])
    user = await runtime.accounts.create_user("carol@example.com", PASSWORD)
    one, gone = f"/admin/v1/users/{user.id}", f"/admin/v1/users/{uuid.uuid4()}"
    await probe(200, "GET", "/admin/v1/users", headers=root)
    await probe(400, "GET", "/admin/v1/users", params={"cursor": "x"}, headers=root)
    await probe(200, "GET", "/admin/v1/audit", headers=root)
    await probe(400, "GET", "/admin/v1/audit", params={"since": "yesterday"}, headers=root)
    await probe(200, "GET", "/admin/v1/clients", headers=root)
    for method, path, url in (
        ("GET", "/admin/v1/users", None),
        ("GET", "/admin/v1/audit", None),
        ("GET", "/admin/v1/clients", None),
        ("POST", "/admin/v1/users", None),
        ("POST", "/admin/v1/clients", None),
        ("GET", ADMIN_USER, one),
        ("DELETE", ADMIN_USER, one),
        ("POST", ADMIN_USER + "/disable", one + "/disable"),
        ("POST", ADMIN_USER + "/enable", one + "/enable"),
        ("PUT", ADMIN_USER + "/roles", one + "/roles"),
        ("POST", ADMIN_USER + "/mfa/reset", one + "/mfa/reset"),
        ("GET", ADMIN_USER + "/sessions", one + "/sessions"),
        ("DELETE", ADMIN_USER + "/sessions", one + "/sessions"),
        ("DELETE", ADMIN_USER + "/sessions/{session_id}", one + "/sessions/abc"),
        ("DELETE", ADMIN_CLIENT, "/admin/v1/clients/weak"),
        ("POST", ADMIN_CLIENT + "/secret", "/admin/v1/clients/weak/secret"),
    ):
        await probe(401, method, path, url)
        await probe(403, method, path, url, headers=weak)
    await probe(200, "GET", ADMIN_USER, one, headers=root)
    await probe(404, "GET", ADMIN_USER, gone, headers=root)
    for method, path in ADMIN_OPERATIONS:
        if path.startswith(ADMIN_USER):  # an id that is not a UUID
            url = path.replace("{user_id}", "not-a-uuid").replace("{session_id}", "s")
            await probe(400, method, path, url, json={"roles": []}, headers=root)
    for action in ("disable", "enable", "mfa/reset"):
        await probe(200, "POST", f"{ADMIN_USER}/{action}", f"{one}/{action}", headers=root)
        await probe(404, "POST", f"{ADMIN_USER}/{action}", f"{gone}/{action}", headers=root)
    roles = ADMIN_USER + "/roles"
    await probe(200, "PUT", roles, one + "/roles", json={"roles": ["a"]}, headers=root)
    await probe(404, "PUT", roles, gone + "/roles", json={"roles": ["a"]}, headers=root)
    for expected, body in ((400, NOT_JSON), (415, AS_TEXT), (413, TOO_LARGE)):
        await probe(
            expected, "PUT", roles, one + "/roles", content=body["content"], headers=root | body["headers"]
        )
    sessions = ADMIN_USER + "/sessions"
    await probe(200, "GET", sessions, one + "/sessions", headers=root)
    await probe(404, "GET", sessions, gone + "/sessions", headers=root)
    await probe(200, "DELETE", sessions, one + "/sessions", headers=root)
    await probe(404, "DELETE", sessions, gone + "/sessions", headers=root)
    await probe(404, "DELETE", sessions + "/{session_id}", one + "/sessions/abc", headers=root)
    await runtime.sessions.start(user, origin="password", user_agent=None)
    (family,) = await runtime.sessions.list(user.id)
    await probe(204, "DELETE", sessions + "/{session_id}", f"{one}/sessions/{family.id}", headers=root)
    new = {"email": "dave@example.com"}
    await probe(201, "POST", "/admin/v1/users", json=new, headers=root)
    await probe(409, "POST", "/admin/v1/users", json=new, headers=root)
    await probe(422, "POST", "/admin/v1/users", json={"email": "not an address"}, headers=root)
    for expected, body in ((400, NOT_JSON), (415, AS_TEXT), (413, TOO_LARGE)):
        await probe(
            expected, "POST", "/admin/v1/users", content=body["content"], headers=root | body["headers"]
        )
    app = {"name": "App", "id": "app"}
    await probe(201, "POST", "/admin/v1/clients", json=app, headers=root)
    await probe(409, "POST", "/admin/v1/clients", json=app, headers=root)
    for expected, body in ((400, NOT_JSON), (415, AS_TEXT), (413, TOO_LARGE)):
        await probe(
            expected, "POST", "/admin/v1/clients", content=body["content"], headers=root | body["headers"]
        )
    await probe(200, "POST", ADMIN_CLIENT + "/secret", "/admin/v1/clients/app/secret", headers=root)
    await probe(404, "POST", ADMIN_CLIENT + "/secret", "/admin/v1/clients/nobody/secret", headers=root)
    await probe(400, "POST", ADMIN_CLIENT + "/secret", "/admin/v1/clients/declared/secret", headers=root)
    await probe(204, "DELETE", ADMIN_CLIENT, "/admin/v1/clients/app", headers=root)
    await probe(404, "DELETE", ADMIN_CLIENT, "/admin/v1/clients/app", headers=root)
    await probe(400, "DELETE", ADMIN_CLIENT, "/admin/v1/clients/declared", headers=root)
    await probe(204, "DELETE", ADMIN_USER, one, headers=root)
    await probe(404, "DELETE", ADMIN_USER, one, headers=root)


async def admin_limited(probe: Probe, runtime: Runtime) -> None:
    """IDP_RATELIMIT_ADMIN_CLIENT of one call: every admin operation's next call is 429."""
    root = await admin_bearer(runtime, "backoffice", list(ADMIN_SCOPES))
    await probe(200, "GET", "/admin/v1/clients", headers=root)
    for method, path in ADMIN_OPERATIONS:
        url = (
            path.replace("{user_id}", str(uuid.uuid4()))
            .replace("{session_id}", "s")
            .replace("{client_id}", "c")
        )
        await probe(429, method, path, url, headers=root)


async def admin_down(probe: Probe, access: dict[str, str]) -> None:
    """With the stores stopped every admin operation is 503 (the token's client is looked up)."""
    for method, path in ADMIN_OPERATIONS:
        url = (
            path.replace("{user_id}", str(uuid.uuid4()))
            .replace("{session_id}", "s")
            .replace("{client_id}", "c")
        )
        await probe(503, method, path, url, headers=access)


ADMIN_OPERATIONS: list[Operation] = [
    ("GET", "/admin/v1/users"),
    ("POST", "/admin/v1/users"),
    ("GET", ADMIN_USER),
    ("DELETE", ADMIN_USER),
    ("POST", ADMIN_USER + "/disable"),
    ("POST", ADMIN_USER + "/enable"),
    ("PUT", ADMIN_USER + "/roles"),
    ("POST", ADMIN_USER + "/mfa/reset"),
    ("GET", ADMIN_USER + "/sessions"),
    ("DELETE", ADMIN_USER + "/sessions"),
    ("DELETE", ADMIN_USER + "/sessions/{session_id}"),
    ("GET", "/admin/v1/clients"),
    ("POST", "/admin/v1/clients"),
    ("DELETE", ADMIN_CLIENT),
    ("POST", ADMIN_CLIENT + "/secret"),
    ("GET", "/admin/v1/audit"),
]


async def every_answer(probe: Probe, runtime: Runtime, outbox: Path) -> None:
    """Each operation's successes and client errors, on an instance with generous limits."""
    credentials = {"email": "ada@example.com", "password": PASSWORD}
    await probe(201, "POST", "/v1/signup", json=credentials)
    await probe(409, "POST", "/v1/signup", json=credentials)
    await probe(422, "POST", "/v1/signup", json={"email": "bob@example.com", "password": "short"})
    await probe(422, "POST", "/v1/signup", json={"email": "not an address", "password": PASSWORD})
    for expected, body in ((400, NOT_JSON), (415, AS_TEXT), (413, TOO_LARGE)):
        await probe(expected, "POST", "/v1/signup", **body)

    tokens = (await probe(200, "POST", "/v1/login", json=credentials)).json()
    await probe(401, "POST", "/v1/login", json={**credentials, "password": "wrong horse battery"})
    for expected, body in ((400, NOT_JSON), (415, AS_TEXT), (413, TOO_LARGE)):
        await probe(expected, "POST", "/v1/login", **body)
    access = tokens["access_token"]

    await probe(200, "GET", "/v1/me", headers=bearer(access))
    await probe(401, "GET", "/v1/me", headers=bearer("not.a.token"))
    await probe(200, "GET", "/v1/sessions", headers=bearer(access))
    await probe(401, "GET", "/v1/sessions")
    other_sid = next(
        s["id"]
        for s in (await probe(200, "GET", "/v1/sessions", headers=bearer(access))).json()
        if not s["current"]
    )
    path = "/v1/sessions/{session_id}"
    await probe(204, "DELETE", path, f"/v1/sessions/{other_sid}", headers=bearer(access))
    await probe(404, "DELETE", path, "/v1/sessions/no-such-session", headers=bearer(access))
    await probe(401, "DELETE", path, f"/v1/sessions/{other_sid}")
    await probe(400, "DELETE", path, "/v1/sessions/" + "x" * 65, headers=bearer(access))

    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    rotated = (await probe(200, "POST", "/oauth2/token", data=refresh)).json()
    await probe(400, "POST", "/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": "nope"})
    await probe(401, "POST", "/oauth2/token", data=refresh, auth=("no-such-client", "secret"))
    await probe(413, "POST", "/oauth2/token", **TOO_LARGE)

    client, secret = await runtime.clients.register("Billing", "billing")
    await probe(
        200, "POST", "/oauth2/introspect", data={"token": rotated["access_token"]}, auth=(client.id, secret)
    )
    await probe(401, "POST", "/oauth2/introspect", data={"token": rotated["access_token"]})
    await probe(400, "POST", "/oauth2/introspect", data={}, auth=(client.id, secret))
    await probe(413, "POST", "/oauth2/introspect", **TOO_LARGE)

    await probe(200, "POST", "/oauth2/revoke", data={"token": "anything"})
    await probe(400, "POST", "/oauth2/revoke", data={})
    await probe(401, "POST", "/oauth2/revoke", data={"token": "x"}, auth=("no-such-client", "secret"))
    await probe(413, "POST", "/oauth2/revoke", **TOO_LARGE)

    access = rotated["access_token"]
    change = {"current_password": PASSWORD, "new_password": "staple gun lighthouse"}
    await probe(422, "POST", "/v1/password", json={**change, "new_password": "short"}, headers=bearer(access))
    await probe(401, "POST", "/v1/password", json=change)
    for expected, body in ((400, NOT_JSON), (415, AS_TEXT), (413, TOO_LARGE)):
        await probe(
            expected,
            "POST",
            "/v1/password",
            content=body["content"],
            headers=bearer(access) | body["headers"],
        )
    await probe(204, "POST", "/v1/password", json=change, headers=bearer(access))

    for expected, body in ((400, NOT_JSON), (415, AS_TEXT), (413, TOO_LARGE)):
        await probe(
            expected, "POST", "/v1/logout", content=body["content"], headers=bearer(access) | body["headers"]
        )
    await probe(401, "POST", "/v1/logout")
    await probe(204, "POST", "/v1/logout", headers=bearer(access))

    for expected, body in ((400, NOT_JSON), (415, AS_TEXT), (413, TOO_LARGE)):
        await probe(expected, "POST", "/v1/password/reset", **body)
    token = await reset_token(probe, runtime, outbox, "ada@example.com")
    confirm = "/v1/password/reset/confirm"
    await probe(422, "POST", confirm, json={"token": token, "new_password": "short"})
    await probe(400, "POST", confirm, json={"token": "x" * 43, "new_password": PASSWORD})
    for expected, body in ((400, NOT_JSON), (415, AS_TEXT), (413, TOO_LARGE)):
        await probe(expected, "POST", confirm, **body)
    await probe(204, "POST", confirm, json={"token": token, "new_password": PASSWORD})

    etag = (await probe(200, "GET", "/.well-known/jwks.json")).headers["etag"]
    await probe(304, "GET", "/.well-known/jwks.json", headers={"if-none-match": etag})
    await probe(200, "GET", "/.well-known/openid-configuration")
    await probe(200, "GET", "/.well-known/oauth-authorization-server")
    await probe(200, "GET", "/health/live")
    await probe(200, "GET", "/health/ready")
    await probe(200, "GET", "/metrics")
    await probe(403, "GET", "/metrics", headers={"x-forwarded-for": "203.0.113.7"})


async def rate_limited(probe: Probe) -> None:
    """Limits of one request: the second of each kind is answered 429. (And a metrics token.)"""
    credentials = {"email": "ada@example.com", "password": PASSWORD}
    tokens = (await probe(201, "POST", "/v1/signup", json=credentials)).json()["tokens"]
    await probe(429, "POST", "/v1/signup", json={**credentials, "email": "bob@example.com"})
    await probe(200, "POST", "/v1/login", json=credentials)
    await probe(429, "POST", "/v1/login", json=credentials)
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    await probe(200, "POST", "/oauth2/token", data=refresh)
    await probe(429, "POST", "/oauth2/token", data=refresh)
    await probe(202, "POST", "/v1/password/reset", json={"email": "ada@example.com"})
    await probe(429, "POST", "/v1/password/reset", json={"email": "ada@example.com"})
    await probe(202, "POST", "/v1/email/verify/resend", json={"email": "ada@example.com"})
    await probe(429, "POST", "/v1/email/verify/resend", json={"email": "ada@example.com"})
    await probe(401, "GET", "/metrics")  # with IDP_METRICS_TOKEN, loopback alone is not enough
    await probe(200, "GET", "/metrics", headers=bearer(METRICS_TOKEN))


async def storage_down(probe: Probe, runtime: Runtime, stop: Callable[[], None]) -> None:
    """With PostgreSQL and Redis stopped, whatever needs them answers 503 (never 500)."""
    credentials = {"email": "ada@example.com", "password": PASSWORD}
    tokens = (await probe(201, "POST", "/v1/signup", json=credentials)).json()["tokens"]
    admin = await admin_bearer(runtime, "backoffice", list(ADMIN_SCOPES))
    await mfa_down(probe, stop)
    access = bearer(tokens["access_token"])
    await admin_down(probe, admin)
    await probe(503, "POST", "/v1/signup", json={**credentials, "email": "bob@example.com"})
    await probe(503, "POST", "/v1/login", json=credentials)
    await probe(503, "GET", "/v1/me", headers=access)
    await probe(503, "GET", "/v1/sessions", headers=access)
    await probe(503, "DELETE", "/v1/sessions/{session_id}", "/v1/sessions/abc", headers=access)
    await probe(503, "POST", "/v1/logout", headers=access)
    change = {"current_password": PASSWORD, "new_password": "staple gun lighthouse"}
    await probe(503, "POST", "/v1/password", json=change, headers=access)
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    await probe(503, "POST", "/oauth2/token", data=refresh)
    await probe(503, "POST", "/oauth2/revoke", data={"token": tokens["refresh_token"]})
    await probe(503, "POST", "/oauth2/introspect", data={"token": "x"}, auth=("billing", "secret"))
    await probe(503, "POST", "/v1/password/reset", json={"email": "ada@example.com"})
    confirm = {"token": "x" * 43, "new_password": PASSWORD}
    await probe(503, "POST", "/v1/password/reset/confirm", json=confirm)
    await probe(503, "GET", "/health/ready")
    await probe(200, "GET", "/.well-known/jwks.json")


async def test_documented_response_codes_are_the_observed_ones(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    """Per operation: {codes the probes observed} == {codes the OpenAPI document lists}."""
    observed: Observed = defaultdict(set)
    mail = {"IDP_PUBLIC_URL": PUBLIC, "IDP_MAX_BODY_BYTES": str(MAX_BODY)}
    declared = tmp_path / "idp.toml"
    declared.write_text(
        '[[clients]]\nid = "declared"\nname = "Declared"\nsecret_sha256 = "' + "0" * 64 + '"\n'
    )
    generous = make_settings(
        IDP_CONFIG=str(declared),
        IDP_DATABASE_URL=f"sqlite:///{tmp_path / 'generous.sqlite3'}",
        IDP_MAIL_DIR=str(tmp_path / "outbox"),
        **mail,
    )
    async with serving(generous) as (http, runtime):
        await every_answer(Probe(http, observed), runtime, tmp_path / "outbox")
        await admin_answers(Probe(http, observed), runtime)
        await account_answers(Probe(http, observed), runtime, tmp_path / "outbox")
        await mfa_answers(Probe(http, observed))
    one = "1/3600"
    tight = make_settings(
        IDP_DATABASE_URL=f"sqlite:///{tmp_path / 'tight.sqlite3'}",
        IDP_MAIL_DIR=str(tmp_path / "tight-outbox"),
        IDP_RATELIMIT_SIGNUP_IP=one,
        IDP_RATELIMIT_LOGIN_IP=one,
        IDP_RATELIMIT_TOKEN_IP=one,
        IDP_RATELIMIT_MAIL_REQUEST_IP=one,
        IDP_METRICS_TOKEN=METRICS_TOKEN,
        IDP_RATELIMIT_ADMIN_CLIENT=one,
        **mail,
    )
    async with serving(tight) as (http, tight_runtime):
        await rate_limited(Probe(http, observed))
        await admin_limited(Probe(http, observed), tight_runtime)
    verifying = make_settings(
        IDP_DATABASE_URL=f"sqlite:///{tmp_path / 'verifying.sqlite3'}",
        IDP_MAIL_DIR=str(tmp_path / "verifying-outbox"),
        IDP_EMAIL_VERIFICATION="required",
        **mail,
    )
    async with serving(verifying) as (http, _):
        probe = Probe(http, observed)
        credentials = {"email": "ada@example.com", "password": PASSWORD}
        await probe(201, "POST", "/v1/signup", json=credentials)
        await probe(403, "POST", "/v1/login", json=credentials)  # email_not_verified
    second_factor = make_settings(
        IDP_DATABASE_URL=f"sqlite:///{tmp_path / 'mfa.sqlite3'}",
        IDP_MAIL_DIR=str(tmp_path / "mfa-outbox"),
        IDP_RATELIMIT_MFA_ACCOUNT=one,
        **mail,
    )
    async with serving(second_factor) as (http, _):
        await mfa_limited(Probe(http, observed))
    redis, postgres = OwnRedis(tmp_path), OwnPostgres()
    redis.start()
    try:
        await asyncio.to_thread(postgres.start)  # its own start-up check runs an event loop
        down = make_settings(
            IDP_DATABASE_URL=postgres.url,
            IDP_REDIS_URL=redis.url,
            IDP_MAIL_DIR=str(tmp_path / "down-outbox"),
            **mail,
        )

        def stop() -> None:
            redis.stop()
            postgres.stop()

        async with serving(down) as (http, down_runtime):
            await storage_down(Probe(http, observed), down_runtime, stop)
    finally:
        redis.stop()
        await asyncio.to_thread(postgres.cleanup)

    app = create_app(generous)
    schema = app.openapi_schema.to_schema()
    documented = {
        (method.upper(), path): {int(code) for code in operation["responses"]}
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    }
    assert set(documented) - set(observed) == set(), "probe new operations here"
    assert {op: sorted(codes) for op, codes in observed.items()} == {
        op: sorted(codes) for op, codes in documented.items()
    }
