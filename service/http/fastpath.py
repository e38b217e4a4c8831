"""``GET /.well-known/jwks.json`` answered before Litestar routes anything.

The JWKS is an IdP's hottest request (every verifier's cache refill) and the cheapest: a
pre-serialised body and its ETag. Litestar's routing, middleware stack and response machinery
cost several times what writing those bytes costs (docs/PERFORMANCE.md), so this small ASGI
wrapper serves it directly with the same headers as the Litestar route: ``ETag`` and
``If-None-Match`` → 304, ``Cache-Control``, ``X-Content-Type-Options``, HSTS when configured and
``X-Request-ID``; ``HEAD`` too. Whatever it does not fully handle goes to Litestar's own route
unchanged: other methods (``OPTIONS``, 405s) and any request with an ``Origin`` header when CORS
is configured (the CORS middleware answers those).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter

from service.audit import request_id_from
from service.http.wellknown import JWKS_MEDIA_TYPE, JWKS_PATH, if_none_match_matches
from service.runtime import Runtime

__all__ = ["JWKSFastPath"]

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
