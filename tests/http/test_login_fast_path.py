"""``POST /v1/login`` is answered before Litestar routing (service.http.fast.LoginEndpointFast).

Every other login test goes through the fast path already (the test client wraps the whole
app); these check that it answers exactly as the Litestar route does, that input it does not
take (other media types, malformed or unexpected JSON) reaches the route with its body, and
that request ids, metrics, the user agent and CORS behave as on the route.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
from litestar import Litestar

from service.app import serving
from service.clock import FrozenClock
from service.http.accounts import LOGIN_PATH
from service.http.prerouter import Defer, FastRequest, FastResponse, FastRoute, PreRouter
from tests.http.prerouted import ALLOWED_ORIGIN, comparable, counter, post_then_disconnect

PASSWORD = "correct horse battery"
EMAIL = "ada@example.com"
JSON_TYPE = {"content-type": "application/json"}
Pair = tuple[httpx.AsyncClient, httpx.AsyncClient]


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
    assert comparable(fast_answer) == comparable(routed_answer)
    assert fast_answer.headers["cache-control"] == "no-store"
    assert int(fast_answer.headers["content-length"]) == len(fast_answer.content)
    status = fast_answer.status_code
    assert counter(after, _metric(status)) - counter(before, _metric(status)) == 1  # once, either way in
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
    assert comparable(by_fast) == comparable(by_route)
    assert by_fast.json().keys() == by_route.json().keys() == {
        "access_token", "token_type", "expires_in", "refresh_token"
    }  # fmt: skip
    assert by_fast.headers["x-request-id"] == "login-req-0001"
    assert any(
        '"event":"login"' in record.getMessage() and '"request_id":"login-req-0001"' in record.getMessage()
        for record in caplog.records
    )
    after = (await fast.get("/metrics")).text
    assert counter(after, _metric(200)) - counter(before, _metric(200)) == 2
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
    assert comparable(answers[0]) == comparable(answers[1])


async def test_a_client_gone_before_its_body_gets_no_answer(app: Litestar) -> None:
    async with serving(app):
        sent = await post_then_disconnect(app, LOGIN_PATH, [(b"content-type", b"application/json")])
    assert sent == []


async def test_cors_requests_use_the_cors_middleware(cors_client: httpx.AsyncClient) -> None:
    body = json.dumps({"email": EMAIL, "password": "wrong password here"}).encode()
    with_origin = {**JSON_TYPE, "Origin": ALLOWED_ORIGIN}
    allowed = await cors_client.post("/v1/login", content=body, headers=with_origin)
    plain = await cors_client.post("/v1/login", content=body, headers=JSON_TYPE)
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "access-control-allow-origin" not in plain.headers
    assert (allowed.status_code, allowed.json()) == (plain.status_code, plain.json()) == (
        401, {"error": "invalid_credentials", "error_description": allowed.json()["error_description"]}
    )  # fmt: skip
