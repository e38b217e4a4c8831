"""The two hottest requests answered before Litestar routes anything.

``GET /.well-known/jwks.json`` (:class:`JWKSFastPath`)
--------------------------------------------------------

The JWKS is an IdP's hottest request (every verifier's cache refill) and the cheapest: a
pre-serialised body and its ETag. Litestar's routing, middleware stack and response machinery
cost several times what writing those bytes costs (docs/PERFORMANCE.md), so this small ASGI
wrapper serves it directly with the same headers as the Litestar route: ``ETag`` and
``If-None-Match`` → 304, ``Cache-Control``, ``X-Content-Type-Options``, HSTS when configured and
``X-Request-ID``; ``HEAD`` too. Whatever it does not fully handle goes to Litestar's own route
unchanged: other methods (``OPTIONS``, 405s) and any request with an ``Origin`` header when CORS
is configured (the CORS middleware answers those).

``POST /oauth2/token`` (:class:`TokenFastPath`)
------------------------------------------------

Every client refreshes its session here every few minutes; the work is one access-token
signature and two Redis round trips, and Litestar's routing, dependency resolution and
response building cost nearly as much again (docs/PERFORMANCE.md). The fast path reads the
body (bounded like Litestar's ``request_max_body_size``), parses it with the same
:func:`~service.http.auth.parse_params`, runs the same :func:`~service.http.oauth.token_grant`
and renders errors with the same codes, bodies and headers as :mod:`service.http.errors`; it
keeps the request id (audit lines carry it) and the per-route HTTP metrics. Requests with an
``Origin`` when CORS is configured go to the Litestar route, as do other methods.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from prometheus_client import Counter

from service.audit import REQUEST_ID, request_id_from
from service.errors import RequestTooLarge
from service.http.auth import parse_params
from service.http.errors import error_body, error_for
from service.http.oauth import token_grant
from service.http.observe import RouteSeries
from service.http.wellknown import JWKS_MEDIA_TYPE, JWKS_PATH, if_none_match_matches
from service.runtime import Runtime

__all__ = ["JWKSFastPath", "TokenFastPath"]

TOKEN_PATH = "/oauth2/token"

JWKS_RESPONSES = Counter("idp_jwks_responses", "JWKS responses served before routing, by status.", ["status"])
_SERVED = JWKS_RESPONSES.labels(status="200")
_NOT_MODIFIED = JWKS_RESPONSES.labels(status="304")

_METHODS = frozenset({"GET", "HEAD"})

Headers = list[tuple[bytes, bytes]]


class JWKSFastPath:
    """Wraps Litestar's ASGI handler (``app.asgi_handler``); see the module docstring."""

    def __init__(self, app: Any, runtime: Runtime, *, common_headers: Headers, defer_on_origin: bool) -> None:
        self.app = app
        self._runtime = runtime
        self._common = common_headers
        self._defer_on_origin = defer_on_origin
        self._etag = ""
        self._body = b""
        self._full: Headers = []
        self._empty: Headers = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != JWKS_PATH or scope["method"] not in _METHODS:
            await self.app(scope, receive, send)
            return
        if_none_match = incoming_id = b""
        for name, value in scope["headers"]:
            if name == b"if-none-match":
                if_none_match = value
            elif name == b"x-request-id":
                incoming_id = value
            elif name == b"origin" and self._defer_on_origin:
                await self.app(scope, receive, send)
                return
        keyring = self._runtime.keyring
        if keyring.jwks_etag is not self._etag:
            self._prepare(keyring.jwks_etag, keyring.jwks_body)
        request_id = (b"x-request-id", request_id_from(incoming_id).encode())
        if if_none_match and if_none_match_matches(if_none_match.decode("latin-1"), self._etag):
            _NOT_MODIFIED.inc()
            await send({"type": "http.response.start", "status": 304, "headers": [*self._empty, request_id]})
            await send({"type": "http.response.body", "body": b""})
            return
        _SERVED.inc()
        await send({"type": "http.response.start", "status": 200, "headers": [*self._full, request_id]})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else self._body})

    def _prepare(self, etag: str, body: bytes) -> None:
        """Build both header lists once per JWKS version (the key ring swaps body and ETag)."""
        shared = [(b"etag", etag.encode()), *self._common]
        self._full = [
            (b"content-type", JWKS_MEDIA_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            *shared,
        ]
        self._empty = [(b"content-length", b"0"), *shared]
        self._body = body
        self._etag = etag


class _Disconnected(Exception):
    """The client went away before its body arrived: nothing to answer."""


class TokenFastPath:
    """Wraps an ASGI handler; answers ``POST /oauth2/token`` (see the module docstring)."""

    def __init__(
        self,
        app: Any,
        runtime: Runtime,
        *,
        common_headers: Headers,
        defer_on_origin: bool,
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self._runtime = runtime
        self._headers: Headers = [
            (b"content-type", b"application/json"),
            (b"cache-control", b"no-store"),
            (b"pragma", b"no-cache"),
            *common_headers,
        ]
        self._defer_on_origin = defer_on_origin
        self._max_body = max_body_bytes
        self._series = RouteSeries()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != TOKEN_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        content_type = authorization = forwarded_for = incoming_id = b""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"authorization":
                authorization = value
            elif name == b"x-forwarded-for":
                forwarded_for = value
            elif name == b"x-request-id":
                incoming_id = value
            elif name == b"origin" and self._defer_on_origin:
                await self.app(scope, receive, send)
                return
        request_id = request_id_from(incoming_id)
        running = self._series.in_progress("POST", TOKEN_PATH)
        running.inc()
        started = time.perf_counter()
        context = REQUEST_ID.set(request_id)
        status: int | None = 500
        try:
            status, body, extra = await self._answer(
                receive, scope.get("client"), content_type, authorization, forwarded_for
            )
        except _Disconnected:
            status = None  # nobody to answer: neither a success nor a server error
            return
        finally:
            REQUEST_ID.reset(context)
            running.dec()
            if status is not None:
                self._series.finished("POST", TOKEN_PATH, status, time.perf_counter() - started)
        headers = [
            *self._headers,
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
            *extra,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(
        self,
        receive: Any,
        client: tuple[str, int] | None,
        content_type: bytes,
        authorization: bytes,
        forwarded_for: bytes,
    ) -> tuple[int, bytes, Headers]:
        runtime = self._runtime
        try:
            params = parse_params(content_type.decode("latin-1"), await self._body(receive))
            ip = runtime.guard.client_ip(
                client[0] if client else None, forwarded_for.decode("latin-1") or None
            )
            response = await token_grant(
                runtime, params, authorization=authorization.decode("latin-1"), ip=ip
            )
            return 200, msgspec.json.encode(response), []
        except _Disconnected:
            raise
        except Exception as exc:  # noqa: BLE001 - translated in the one place, service.http.errors
            error = error_for(exc, f"POST {TOKEN_PATH}")
            extra = [(name.lower().encode(), value.encode()) for name, value in error.headers().items()]
            return error.status_code, error_body(error), extra

    async def _body(self, receive: Any) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                raise RequestTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
