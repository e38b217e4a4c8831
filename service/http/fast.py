"""The endpoints the pre-router (:mod:`service.http.prerouter`) answers before Litestar routing.

``GET``/``HEAD /.well-known/jwks.json`` (:class:`JWKSEndpoint`): an IdP's hottest request and
its cheapest, a pre-serialised body and its ETag, with the Litestar route's headers (``ETag``
and ``If-None-Match`` → 304, ``Cache-Control``), counted in ``idp_jwks_responses_total``.

``POST /oauth2/token`` (:class:`TokenEndpointFast`): the body (bounded like Litestar's
``request_max_body_size``) is parsed with the same :func:`~service.grants.parse_params` and
answered by the same :meth:`~service.grants.TokenEndpoint.token` as the route; errors get the
same codes, bodies and headers (:func:`~service.http.errors.error_for`).

``POST /v1/login`` (:class:`LoginEndpointFast`): a JSON body of the route's ``LoginRequest``
shape goes to the same :meth:`~service.accounts.Accounts.login`; anything else (another media
type, malformed or unexpected JSON) is handed to the Litestar route with its body
(:class:`~service.http.prerouter.Defer`), whose validation messages the API documents.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily

from service import bounded_json
from service.grants import parse_params
from service.http.accounts import LoginRequest
from service.http.errors import error_body, error_for
from service.http.prerouter import Defer, Disconnected, FastRequest, FastResponse, Headers
from service.http.wellknown import JWKS_MEDIA_TYPE, if_none_match_matches
from service.runtime import Runtime

__all__ = ["JWKSEndpoint", "LoginEndpointFast", "TokenEndpointFast"]


class _JWKSCounts:
    """``idp_jwks_responses_total{status}``: two plain integers read when Prometheus scrapes.
    A ``prometheus_client.Counter`` takes a lock and four Python calls per ``inc()``, a tenth
    of the rest of a JWKS answer."""

    def __init__(self) -> None:
        self.served = 0
        self.not_modified = 0

    def describe(self) -> list[CounterMetricFamily]:
        return [self._family()]

    def collect(self) -> list[CounterMetricFamily]:
        family = self._family()
        family.add_metric(["200"], self.served)
        family.add_metric(["304"], self.not_modified)
        return [family]

    @staticmethod
    def _family() -> CounterMetricFamily:
        return CounterMetricFamily(
            "idp_jwks_responses", "JWKS responses served before routing, by status.", labels=["status"]
        )


JWKS_RESPONSES = _JWKSCounts()
REGISTRY.register(JWKS_RESPONSES)


class JWKSEndpoint:
    def __init__(self, runtime: Callable[[], Runtime], *, cache_control: str) -> None:
        self._runtime = runtime
        self._cache_control = cache_control.encode()
        self._etag = ""
        self._body = b""
        self._full: Headers = []
        self._empty: Headers = []

    def __call__(self, request: FastRequest) -> FastResponse:
        keyring = self._runtime().keyring
        if keyring.jwks_etag is not self._etag:
            self._prepare(keyring.jwks_etag, keyring.jwks_body)
        if request.if_none_match and if_none_match_matches(
            request.if_none_match.decode("latin-1"), self._etag
        ):
            JWKS_RESPONSES.not_modified += 1
            return 304, self._empty, b""
        JWKS_RESPONSES.served += 1
        return 200, self._full, self._body

    def _prepare(self, etag: str, body: bytes) -> None:
        """Build both header lists once per JWKS version (the key ring swaps body and ETag)."""
        shared = [(b"etag", etag.encode()), (b"cache-control", self._cache_control)]
        self._full = [
            (b"content-type", JWKS_MEDIA_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            *shared,
        ]
        self._empty = [(b"content-length", b"0"), *shared]
        self._body = body
        self._etag = etag


def _is_json(content_type: bytes) -> bool:
    """The route's ``require_json`` guard: the media type, parameters ignored, is JSON."""
    return content_type.split(b";", 1)[0].strip().lower() == b"application/json"


def _client_ip(runtime: Runtime, request: FastRequest) -> str:
    """As the routes' ``request_ip``: ``X-Forwarded-For`` believed from trusted proxies only."""
    peer = request.client[0] if request.client else None
    return runtime.guard.client_ip(peer, request.forwarded_for.decode("latin-1") or None)


class _JSONEndpoint:
    """A fast POST endpoint that answers JSON: ``_answer`` gives the 200 body; an error becomes
    the routes' answer (:func:`~service.http.errors.error_for`), with ``_HEADERS`` either way."""

    _HEADERS: Headers = []  # noqa: RUF012 - read only

    def __init__(self, runtime: Callable[[], Runtime], *, max_body_bytes: int, path: str) -> None:
        self._runtime = runtime
        self._max_body = max_body_bytes
        self._where = f"POST {path}"

    async def __call__(self, request: FastRequest) -> FastResponse:
        extra: Headers = []
        try:
            status, body = 200, await self._answer(request, self._runtime())
        except (Disconnected, Defer):
            raise
        except Exception as exc:  # noqa: BLE001 - translated in the one place, service.http.errors
            error = error_for(exc, self._where)
            extra = [(name.lower().encode(), value.encode()) for name, value in error.headers().items()]
            status, body = error.status_code, error_body(error)
        return status, [*self._HEADERS, (b"content-length", str(len(body)).encode()), *extra], body

    async def _answer(self, request: FastRequest, runtime: Runtime) -> bytes:
        raise NotImplementedError


class TokenEndpointFast(_JSONEndpoint):
    _HEADERS: Headers = [  # noqa: RUF012 - read only
        (b"content-type", b"application/json"),
        (b"cache-control", b"no-store"),
        (b"pragma", b"no-cache"),
    ]

    async def _answer(self, request: FastRequest, runtime: Runtime) -> bytes:
        params = parse_params(request.content_type.decode("latin-1"), await request.body(self._max_body))
        authorization, ip = request.authorization.decode("latin-1"), _client_ip(runtime, request)
        response = await runtime.tokens.token(params, authorization=authorization, ip=ip)
        return msgspec.json.encode(response)


class LoginEndpointFast(_JSONEndpoint):
    _HEADERS: Headers = [  # noqa: RUF012 - read only
        (b"content-type", b"application/json"),
        (b"cache-control", b"no-store"),
    ]

    async def _answer(self, request: FastRequest, runtime: Runtime) -> bytes:
        if not _is_json(request.content_type):
            raise Defer  # the route's 415, its body unread
        raw = await request.body(self._max_body)
        try:
            data = bounded_json.decode(raw, type=LoginRequest)
        except (msgspec.MsgspecError, UnicodeDecodeError):
            raise Defer(raw) from None
        agent = None if request.user_agent is None else request.user_agent.decode("latin-1")
        ip = _client_ip(runtime, request)
        _, tokens = await runtime.accounts.login(data.email, data.password, agent, ip)
        return msgspec.json.encode(tokens)
