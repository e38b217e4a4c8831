"""Deeply nested input is a 4xx on every endpoint, never a 500 (issue 17).

Each parser of untrusted JSON bounds nesting (``service.bounded_json``); a RecursionError that
escapes anyway is answered like the parser's own refusal by the one error handler.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

import httpx
import pytest
from litestar import Litestar, get

from service.runtime import Runtime

DEEP = 5_000
PASSWORD = "correct horse battery"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def nested_bodies(depth: int = DEEP) -> dict[str, bytes]:
    """Nested JSON documents: bare, inside an expected field, mixed, and an unknown field."""
    arrays = b"[" * depth + b"]" * depth
    objects = b'{"a":' * depth + b"1" + b"}" * depth
    mixed = b'[{"a":' * (depth // 2) + b"1" + b"}]" * (depth // 2)
    return {
        "arrays": arrays,
        "objects": objects,
        "mixed": mixed,
        "in-field": b'{"email":' + arrays + b',"password":"x"}',
        "unknown-field": b'{"email":"a@example.com","password":"x","z":' + objects + b"}",
        "in-string-then-deep": b'{"email":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[","x":' + arrays + b"}",
    }


def nested_tokens(depth: int = 1_100) -> dict[str, str]:
    """Compact JWS strings whose header or payload is nested ``depth`` deep."""
    deep_header = b"[" * depth + b"]" * depth
    deep_object = b'{"a":' * depth + b"1" + b"}" * depth
    good_header = b64(b'{"alg":"EdDSA","typ":"at+jwt","kid":"k"}')
    return {
        "header-arrays": f"{b64(deep_header)}.e30.AAAA",
        "header-in-member": b64(b'{"typ":"at+jwt","crit":' + deep_header + b"}") + ".e30.AAAA",
        "payload-objects": f"{good_header}.{b64(deep_object[:6000])}.AAAA",
        "payload-arrays": f"{good_header}.{b64(deep_header)}.AAAA",
    }


def endpoints(app: Litestar) -> Iterator[tuple[str, str]]:
    """(method, path) of every route of the app, path parameters filled in."""
    for route in app.routes:
        path = re.sub(r"\{[^}]+\}", "x", route.path)
        for method in sorted(getattr(route, "methods", set()) - {"OPTIONS", "HEAD"}):
            yield method, path


async def test_the_reported_reproductions(client: httpx.AsyncClient) -> None:
    """A Bearer token whose header nests 1 100 deep on /v1/me is 401 invalid_token; a 5 000-deep
    body on /v1/login is 400 invalid_request (both were 500)."""
    token = nested_tokens()["header-arrays"]
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert (me.status_code, me.json()["error"]) == (401, "invalid_token")
    login = await client.post(
        "/v1/login", content=nested_bodies()["arrays"], headers={"content-type": "application/json"}
    )
    assert (login.status_code, login.json()["error"]) == (400, "invalid_request")
    assert login.headers["cache-control"] == "no-store"


async def test_nested_input_on_every_endpoint_is_never_a_5xx(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """Every route with nested JSON bodies, nested Bearer tokens, nested form tokens, and
    nested subject and refresh tokens on the token endpoint with an authenticated client:
    always a 4xx (or a success for the routes that take no input)."""
    runtime: Runtime = app.state.runtime
    _, secret = await runtime.clients.register("API", "api")
    basic = "Basic " + base64.b64encode(f"api:{secret}".encode()).decode()
    routes = list(endpoints(app))
    assert {("POST", "/v1/login"), ("GET", "/v1/me"), ("POST", "/oauth2/token")} <= set(routes)
    answers: dict[str, int] = {}
    for method, path in routes:
        for name, body in nested_bodies().items():
            response = await client.request(
                method, path, content=body, headers={"content-type": "application/json"}
            )
            answers[f"{method} {path} json {name}"] = response.status_code
        for name, token in nested_tokens().items():
            for headers in ({"Authorization": f"Bearer {token}"}, {"Authorization": basic}):
                form = {"token": token, "refresh_token": token, "grant_type": "refresh_token"}
                response = await client.request(method, path, data=form, headers=headers)
                answers[f"{method} {path} token {name} {headers['Authorization'][:6]}"] = response.status_code
    for name, token in nested_tokens().items():
        form = {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": token,
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        }
        response = await client.post("/oauth2/token", data=form, headers={"Authorization": basic})
        answers[f"exchange {name}"] = response.status_code
        assert (response.status_code, response.json()["error"]) == (400, "invalid_request")
    server_errors = {request: status for request, status in answers.items() if status >= 500}
    assert server_errors == {}
    assert len(answers) > 100


async def test_an_escaped_recursion_error_is_the_parsers_4xx(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """Should a RecursionError escape some future parser, the global handler answers 400
    invalid_request with the error body and no-store, not 500."""

    @get("/test/recursion", sync_to_thread=False)
    def recurse() -> None:
        raise RecursionError("maximum recursion depth exceeded")

    app.register(recurse)
    response = await client.get("/test/recursion")
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("path", ["/v1/signup", "/v1/login"])
async def test_moderate_nesting_in_a_field_is_a_shape_error(client: httpx.AsyncClient, path: str) -> None:
    """Nesting under the limit is parsed and refused for its shape, like any wrong type."""
    body = b'{"email":' + b"[" * 20 + b"]" * 20 + b',"password":"x"}'
    response = await client.post(path, content=body, headers={"content-type": "application/json"})
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")
