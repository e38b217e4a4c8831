"""The pre-router's table: a registered endpoint is answered with the request id, the common
headers and the per-route metrics; everything else reaches the wrapped app unchanged."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client import REGISTRY

from service.audit import REQUEST_ID
from service.http.prerouter import FastRequest, FastResponse, FastRoute, PlainRoute, PreRouter

COMMON = [(b"x-content-type-options", b"nosniff")]


async def hello(request: FastRequest) -> FastResponse:
    body = b"hello " + request.authorization
    return 200, [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())], body


async def wrapped(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 418, "headers": [(b"x-from", b"wrapped")]})
    await send({"type": "http.response.body", "body": scope["path"].encode()})


def plain(request: FastRequest) -> FastResponse:
    """Answered from the headers alone; says whether it ran inside a request-id context."""
    body = b"plain " + request.if_none_match + b" " + str(REQUEST_ID.get()).encode()
    return 200, [(b"content-length", str(len(body)).encode())], body


def client(*, defer_on_origin: bool = False) -> httpx.AsyncClient:
    router = PreRouter(
        wrapped,
        {
            ("GET", "/hello"): FastRoute(hello),
            ("HEAD", "/hello"): FastRoute(hello, measured=False),
            ("GET", "/plain"): PlainRoute(plain),
        },
        common_headers=COMMON,
        defer_on_origin=defer_on_origin,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=router), base_url="http://t")


def served(path: str, status: str) -> float:
    labels = {"method": "GET", "path": path, "status_code": status, "app_name": "idp"}
    return REGISTRY.get_sample_value("idp_http_requests_total", labels) or 0.0


async def test_a_registered_endpoint_gets_the_request_id_headers_and_metrics() -> None:
    """One table entry is all a fast endpoint needs: the wrapper adds the rest."""
    before = served("/hello", "200")
    async with client() as http:
        response = await http.get("/hello", headers={"Authorization": "ada", "X-Request-ID": "req-1234"})
    assert (response.status_code, response.text) == (200, "hello ada")
    assert (response.headers["x-content-type-options"], response.headers["x-request-id"]) == (
        "nosniff",
        "req-1234",
    )
    assert served("/hello", "200") == before + 1


async def test_head_has_the_headers_without_the_body() -> None:
    """HEAD answers the GET's headers (content-length included) with an empty body."""
    async with client() as http:
        response = await http.head("/hello")
    assert (response.status_code, response.content, response.headers["content-length"]) == (200, b"", "6")


async def test_anything_else_reaches_the_wrapped_app() -> None:
    """Other paths and methods are not the table's: the wrapped app answers them unchanged."""
    async with client() as http:
        other_path = await http.get("/elsewhere")
        other_method = await http.post("/hello")
    assert [(r.status_code, r.text, r.headers["x-from"]) for r in (other_path, other_method)] == [
        (418, "/elsewhere", "wrapped"),
        (418, "/hello", "wrapped"),
    ]


async def test_an_origin_defers_to_the_wrapped_app_when_cors_is_on() -> None:
    """With CORS configured, a request carrying Origin is left to the app (its CORS middleware)."""
    async with client(defer_on_origin=True) as http:
        response = await http.get("/hello", headers={"Origin": "https://app.example.com"})
    assert (response.status_code, response.headers["x-from"]) == (418, "wrapped")


async def test_a_plain_route_gets_the_common_headers_and_no_context() -> None:
    """A plain answer (the JWKS's kind) reads the scanned headers, gets the request id and the
    common headers, runs outside any request-id context and stays out of the per-route series."""
    before = served("/plain", "200")
    async with client() as http:
        kept = await http.get("/plain", headers={"If-None-Match": '"v1"', "X-Request-ID": "req-5678"})
        fresh = await http.get("/plain")
    assert (kept.status_code, kept.text, kept.headers["x-request-id"]) == (200, 'plain "v1" None', "req-5678")
    assert kept.headers["x-content-type-options"] == "nosniff"
    assert len(fresh.headers["x-request-id"]) == 16
    assert fresh.headers["x-request-id"] != "req-5678"
    assert served("/plain", "200") == before


async def test_an_insane_request_id_is_replaced() -> None:
    """A request id with characters a log line should not carry is replaced by a fresh one."""
    async with client() as http:
        response = await http.get("/hello", headers={"X-Request-ID": "bad id; drop"})
    assert response.headers["x-request-id"] != "bad id; drop"
    assert len(response.headers["x-request-id"]) == 16
