"""``POST /oauth2/token`` is answered before Litestar routing (service.http.prerouter).

Every other token-endpoint test goes through the fast path already (the test client wraps the
whole app); these check that it answers exactly as the Litestar route does, keeps request ids
and metrics, and leaves CORS requests and other methods to Litestar.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from litestar import Litestar

from tests.http.prerouted import ALLOWED_ORIGIN, comparable, counter, post_then_disconnect

PASSWORD = "correct horse battery"
# Headers that only the fast path adds to error answers (Litestar's exception responses skip
# the controller's and the app's response headers).
FAST_ONLY_ON_ERRORS = {"pragma", "x-content-type-options"}


FORM_TYPE = {"content-type": "application/x-www-form-urlencoded"}
REFRESH = {"grant_type": "refresh_token"}
BAD_REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("no grant_type", {"data": {"refresh_token": "x"}}),
    ("unsupported grant", {"data": {"grant_type": "password", "username": "a", "password": "b"}}),
    ("unknown refresh token", {"data": {**REFRESH, "refresh_token": "idprt_" + "A" * 65}}),
    ("malformed refresh token", {"data": {**REFRESH, "refresh_token": "nope"}}),
    ("repeated parameter", {"content": b"grant_type=refresh_token&grant_type=refresh_token"}),
    ("malformed form", {"content": b"%zz=%%", "headers": FORM_TYPE}),
    ("plain text", {"content": b"grant_type=refresh_token", "headers": {"content-type": "text/plain"}}),
    ("json of numbers", {"json": {"grant_type": 1}}),
    ("not utf-8", {"content": b"grant_type=\xff\xfe", "headers": FORM_TYPE}),
    ("bad basic credentials", {"data": REFRESH, "headers": {"authorization": "Basic !!"}}),
    ("unknown client", {"data": REFRESH, "auth": ("nobody", "secret")}),
    ("two client auth methods", {"data": {**REFRESH, "client_secret": "s"}, "auth": ("a", "b")}),
    ("too large", {"data": {**REFRESH, "refresh_token": "x" * 70_000}}),
]


@pytest.mark.parametrize(("case", "request_args"), BAD_REQUESTS, ids=[case for case, _ in BAD_REQUESTS])
async def test_errors_match_the_litestar_route(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient], case: str, request_args: dict[str, Any]
) -> None:
    fast, routed = both
    answers = [await client.post("/oauth2/token", **request_args) for client in (fast, routed)]
    fast_answer, routed_answer = answers
    assert 400 <= fast_answer.status_code < 500, (case, fast_answer.text)
    assert (fast_answer.status_code, fast_answer.json()) == (routed_answer.status_code, routed_answer.json())
    extra = set(comparable(fast_answer)) - set(comparable(routed_answer))
    assert extra <= FAST_ONLY_ON_ERRORS, extra
    assert {k: v for k, v in comparable(fast_answer).items() if k not in extra} == comparable(routed_answer)
    assert fast_answer.headers["cache-control"] == "no-store"
    assert int(fast_answer.headers["content-length"]) == len(fast_answer.content)


async def test_a_refresh_matches_the_litestar_route(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient], caplog: pytest.LogCaptureFixture
) -> None:
    fast, routed = both
    caplog.set_level(logging.INFO, logger="idp.audit")
    signup = await fast.post("/v1/signup", json={"email": "ada@example.com", "password": PASSWORD})
    token = signup.json()["tokens"]["refresh_token"]
    before = (await fast.get("/metrics")).text
    by_fast = await fast.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": token},
        headers={"X-Request-ID": "token-req-0001"},
    )
    assert by_fast.status_code == 200, by_fast.text
    by_route = await routed.post(
        "/oauth2/token",
        json={"grant_type": "refresh_token", "refresh_token": by_fast.json()["refresh_token"]},
    )
    assert by_route.status_code == 200, by_route.text
    assert comparable(by_fast) == comparable(by_route)
    assert by_fast.json().keys() == by_route.json().keys()
    assert by_fast.headers["x-request-id"] == "token-req-0001"
    assert by_fast.headers["pragma"] == "no-cache"
    assert any(
        '"event":"refresh"' in record.getMessage() and '"request_id":"token-req-0001"' in record.getMessage()
        for record in caplog.records
    )
    after = (await fast.get("/metrics")).text
    sample = 'idp_http_requests_total{app_name="idp",method="POST",path="/oauth2/token",status_code="200"}'
    # One series for the route, whichever way in answered: the fast path's and the route's.
    assert counter(after, sample) - counter(before, sample) == 2


async def test_other_methods_reach_the_litestar_route(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    fast, _ = both
    answer = await fast.get("/oauth2/token")
    assert (answer.status_code, answer.json()["error"]) == (405, "method_not_allowed")


async def test_cors_requests_use_the_cors_middleware(cors_client: httpx.AsyncClient) -> None:
    form = {"grant_type": "refresh_token", "refresh_token": "nope"}
    allowed = await cors_client.post("/oauth2/token", data=form, headers={"Origin": ALLOWED_ORIGIN})
    plain = await cors_client.post("/oauth2/token", data=form)
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "access-control-allow-origin" not in plain.headers
    assert allowed.json() == plain.json()


async def test_a_client_gone_before_its_body_gets_no_answer_and_no_5xx(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient], app: Litestar
) -> None:
    fast, _ = both
    before = (await fast.get("/metrics")).text
    sent = await post_then_disconnect(app, "/oauth2/token", [])
    assert sent == []
    after = (await fast.get("/metrics")).text
    errors = (
        'idp_http_requests_error_total{app_name="idp",method="POST",path="/oauth2/token",status_code="500"}'
    )
    assert counter(after, errors) == counter(before, errors)
