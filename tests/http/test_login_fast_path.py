"""``POST /v1/login`` is answered before Litestar routing (service.http.fast.LoginEndpointFast).

Every other login test goes through the fast path already (the test client wraps the whole
app); these check that it answers exactly as the Litestar route does, that input it does not
take (other media types, malformed or unexpected JSON) reaches the route with its body, and
that request ids, metrics, the user agent and CORS behave as on the route.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from litestar import Litestar

from service.app import create_app, serving
from service.clock import FrozenClock
from service.config import Settings
from service.http.accounts import LOGIN_PATH
from service.http.prerouter import Defer, FastRequest, FastResponse, FastRoute, PreRouter
from tests.http.test_token_fast_path import VARYING

PASSWORD = "correct horse battery"
EMAIL = "ada@example.com"
JSON_TYPE = {"content-type": "application/json"}
Pair = tuple[httpx.AsyncClient, httpx.AsyncClient]


def _headers(response: httpx.Response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name not in VARYING}


def _counter(metrics: str, sample: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _metric(status: int) -> str:
    return f'idp_http_requests_total{{app_name="idp",method="POST",path="/v1/login",status_code="{status}"}}'


BAD_REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("form body", {"data": {"email": EMAIL, "password": PASSWORD}}),
    (
        "plain text",
        {"content": b'{"email":"a@b.c","password":"x"}', "headers": {"content-type": "text/plain"}},
    ),
    ("no content type", {"content": b'{"email":"a@b.c","password":"x"}'}),
    ("malformed json", {"content": b'{"email": ', "headers": JSON_TYPE}),
    ("missing password", {"json": {"email": EMAIL}}),
    ("unknown field", {"json": {"email": EMAIL, "password": PASSWORD, "remember": True}}),
    ("number as password", {"json": {"email": EMAIL, "password": 12345678}}),
    ("an array", {"json": [EMAIL, PASSWORD]}),
    ("deeply nested", {"content": b"[" * 5000 + b"]" * 5000, "headers": JSON_TYPE}),
    ("not utf-8", {"content": b'{"email":"\xff\xfe","password":"x"}', "headers": JSON_TYPE}),
    ("too large", {"json": {"email": EMAIL, "password": "x" * 70_000}}),
    ("overlong email", {"json": {"email": "a" * 400 + "@example.com", "password": PASSWORD}}),
    ("wrong password", {"json": {"email": EMAIL, "password": "not the password"}}),
    ("unknown account", {"json": {"email": "nobody@example.com", "password": PASSWORD}}),
    (
        "json with charset",
        {
            "json": None,
            "content": b'{"email":"x"}',
            "headers": {"content-type": "application/json; charset=utf-8"},
        },
    ),
]


DEFERRED = {"form body", "plain text", "no content type", "malformed json", "missing password",
            "unknown field", "number as password", "an array", "deeply nested", "not utf-8",
            "overlong email", "json with charset"}  # fmt: skip


@pytest.mark.parametrize(("case", "request_args"), BAD_REQUESTS, ids=[case for case, _ in BAD_REQUESTS])
async def test_errors_match_the_litestar_route(
    both: Pair, app: Litestar, case: str, request_args: dict[str, Any]
) -> None:
    fast, routed = both
    seen = answered_before_routing(app)
    await fast.post("/v1/signup", json={"email": EMAIL, "password": PASSWORD})
    before = (await fast.get("/metrics")).text
    fast_answer = await fast.post("/v1/login", **request_args)
    after = (await fast.get("/metrics")).text
    routed_answer = await routed.post("/v1/login", **request_args)
    assert 400 <= fast_answer.status_code < 500, (case, fast_answer.text)
    assert (fast_answer.status_code, fast_answer.json()) == (routed_answer.status_code, routed_answer.json())
    assert _headers(fast_answer) == _headers(routed_answer)
    assert fast_answer.headers["cache-control"] == "no-store"
    assert int(fast_answer.headers["content-length"]) == len(fast_answer.content)
    status = fast_answer.status_code
    assert _counter(after, _metric(status)) - _counter(before, _metric(status)) == 1  # once, either way in
    assert seen == ["deferred" if case in DEFERRED else "answered"]


def answered_before_routing(app: Litestar) -> list[str]:
    """Spy on the pre-router's login endpoint: one entry per request, "answered" or "deferred"."""
    router = app.asgi_handler
    assert isinstance(router, PreRouter)
    route = router.routes[("POST", LOGIN_PATH)]
    assert isinstance(route, FastRoute)
    endpoint, seen = route.endpoint, []

    async def spy(request: FastRequest) -> FastResponse:
        try:
            answer = await endpoint(request)
        except Defer:
            seen.append("deferred")
            raise
        seen.append("answered")
        return answer

    router.routes[("POST", LOGIN_PATH)] = route._replace(endpoint=spy)
    return seen


async def test_a_login_matches_the_litestar_route(
    both: Pair, app: Litestar, caplog: pytest.LogCaptureFixture
) -> None:
    fast, routed = both
    seen = answered_before_routing(app)
    caplog.set_level(logging.INFO, logger="idp.audit")
    await fast.post("/v1/signup", json={"email": EMAIL, "password": PASSWORD})
    before = (await fast.get("/metrics")).text
    body = {"email": EMAIL, "password": PASSWORD}
    by_fast = await fast.post(
        "/v1/login", json=body, headers={"X-Request-ID": "login-req-0001", "User-Agent": "curl/8.5.0"}
    )
    assert by_fast.status_code == 200, by_fast.text
    by_route = await routed.post("/v1/login", json=body)
    assert by_route.status_code == 200, by_route.text
    assert _headers(by_fast) == _headers(by_route)
    assert by_fast.json().keys() == by_route.json().keys() == {
        "access_token", "token_type", "expires_in", "refresh_token"
    }  # fmt: skip
    assert by_fast.headers["x-request-id"] == "login-req-0001"
    assert any(
        '"event":"login"' in record.getMessage() and '"request_id":"login-req-0001"' in record.getMessage()
        for record in caplog.records
    )
    after = (await fast.get("/metrics")).text
    assert _counter(after, _metric(200)) - _counter(before, _metric(200)) == 2
    assert seen == ["answered"]  # the fast path's answer, the route's only through `routed`
    token = by_fast.json()["access_token"]
    sessions = await fast.get("/v1/sessions", headers={"Authorization": f"Bearer {token}"})
    assert "curl/8.5.0" in {session["user_agent"] for session in sessions.json()}


async def test_a_second_factor_answer_matches_the_litestar_route(both: Pair, clock: FrozenClock) -> None:
    """The 401 ``mfa_required`` carries its ticket fields on both paths (tickets differ)."""
    from tests.mfa.helpers import enrol_totp  # noqa: PLC0415 - the MFA tests' own helper

    fast, _ = both
    signed_up = await fast.post("/v1/signup", json={"email": EMAIL, "password": PASSWORD})
    await enrol_totp(fast, signed_up.json()["tokens"]["access_token"], clock)
    answers = [await client.post("/v1/login", json={"email": EMAIL, "password": PASSWORD}) for client in both]
    assert [answer.status_code for answer in answers] == [401, 401]
    assert answers[0].json().keys() == answers[1].json().keys() >= {"error", "mfa_token", "methods"}
    assert answers[0].json()["methods"] == answers[1].json()["methods"]
    assert _headers(answers[0]) == _headers(answers[1])


async def test_a_client_gone_before_its_body_gets_no_answer(app: Litestar) -> None:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": "POST", "path": "/v1/login", "client": ("127.0.0.1", 1),
        "headers": [(b"content-type", b"application/json")],
        "query_string": b"", "root_path": "", "scheme": "http", "http_version": "1.1",
    }  # fmt: skip
    async with serving(app):
        await app(scope, receive, send)  # type: ignore[arg-type]
    assert sent == []


async def test_cors_requests_use_the_cors_middleware(
    make_settings: Callable[..., Settings], backend_env: dict[str, str], clock: FrozenClock
) -> None:
    settings = make_settings(**backend_env, IDP_CORS_ORIGINS="https://app.example.com")
    app = create_app(settings, clock=clock)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    body = json.dumps({"email": EMAIL, "password": "wrong password here"}).encode()
    async with (
        serving(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client,
    ):
        allowed = await client.post(
            "/v1/login", content=body, headers={**JSON_TYPE, "Origin": "https://app.example.com"}
        )
        plain = await client.post("/v1/login", content=body, headers=JSON_TYPE)
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "access-control-allow-origin" not in plain.headers
    assert (allowed.status_code, allowed.json()) == (plain.status_code, plain.json()) == (
        401, {"error": "invalid_credentials", "error_description": allowed.json()["error_description"]}
    )  # fmt: skip
