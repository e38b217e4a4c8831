"""The pre-router: a few hot endpoints answered before Litestar routes anything.

Litestar's routing, middleware stack, dependency resolution and response building cost several
times what the JWKS or a refresh costs (docs/PERFORMANCE.md), so a table
``{(method, path): endpoint}`` is looked at first. One header scan collects what any endpoint
needs (:class:`FastRequest`); one wrapper gives every answer the request id (kept when sane,
audit lines carry it), the per-route HTTP metrics of :mod:`service.http.observe` and the
app's common headers (``X-Content-Type-Options``, HSTS when configured). An answer that needs
nothing but the headers (the JWKS) is a :class:`PlainRoute`: called synchronously, outside the
request-id context and the per-route series — a coroutine, a context and a histogram
observation cost more than the rest of such an answer.

Whatever the table does not hold goes to Litestar unchanged, and so does any request with an
``Origin`` header when CORS is configured (the CORS middleware answers those), and any request
an endpoint hands over with :class:`Defer` (its body replayed). The Litestar
routes of the fast endpoints stay, for OpenAPI and those cases.

To add a fast endpoint: write ``async def endpoint(request: FastRequest) -> FastResponse`` (or a
class with that ``__call__``, see :mod:`service.http.fast`), give it the runtime getter, and
add a :class:`FastRoute` under its method(s) and path to the table in
:func:`service.app.create_app`; keep its Litestar route (OpenAPI, CORS). Errors go through
:func:`service.http.errors.error_for`, as on the routes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

from service.audit import REQUEST_ID, request_id_from
from service.http.observe import RouteSeries

__all__ = [
    "Defer",
    "Disconnected",
    "FastEndpoint",
    "FastRequest",
    "FastResponse",
    "FastRoute",
    "Headers",
    "PlainAnswer",
    "PlainRoute",
    "PreRouter",
]

Headers = list[tuple[bytes, bytes]]


class Disconnected(Exception):
    """The client went away before its body arrived: nothing to answer."""


class Defer(Exception):
    """A fast endpoint hands the request to Litestar (input its fast path does not take, such
    as a malformed body: Litestar's answer to it is the one the API documents). ``body``: what
    the endpoint read of the request body, replayed to Litestar (None: nothing was read)."""

    def __init__(self, body: bytes | None = None) -> None:
        super().__init__()
        self.body = body


def _replaying(body: bytes, receive: Any) -> Any:
    """``receive`` for Litestar after a fast endpoint read the whole ``body``: the body once,
    then whatever the server has next (a disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Any:
        return pending.pop() if pending else await receive()

    return replay


class FastRequest:
    """What the fast endpoints read of a request, from one scan of its headers."""

    __slots__ = (
        "authorization",
        "client",
        "content_type",
        "forwarded_for",
        "if_none_match",
        "incoming_id",
        "method",
        "origin",
        "receive",
        "user_agent",
    )

    def __init__(
        self, method: str, client: tuple[str, int] | None, receive: Any, headers: list[tuple[bytes, bytes]]
    ) -> None:
        self.method = method
        self.client = client
        self.receive = receive
        content_type = authorization = forwarded_for = if_none_match = incoming_id = b""
        user_agent = None
        origin = False
        for name, value in headers:  # the one scan
            if name == b"content-type":
                content_type = value
            elif name == b"authorization":
                authorization = value
            elif name == b"if-none-match":
                if_none_match = value
            elif name == b"x-forwarded-for":
                forwarded_for = value
            elif name == b"x-request-id":
                incoming_id = value
            elif name == b"user-agent":
                user_agent = value
            elif name == b"origin":
                origin = True
        self.content_type = content_type
        self.authorization = authorization
        self.forwarded_for = forwarded_for
        self.if_none_match = if_none_match
        self.incoming_id = incoming_id
        """The client's (or proxy's) ``X-Request-ID``, unchecked."""
        self.origin = origin
        """Whether the request carries an ``Origin`` header."""
        self.user_agent: bytes | None = user_agent

    async def body(self, limit: int) -> bytes:
        """The whole body; :class:`RequestTooLarge` beyond ``limit`` bytes."""
        from service.errors import RequestTooLarge  # noqa: PLC0415 - keeps the hot import list short

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RequestTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


FastResponse = tuple[int, Headers, bytes]
"""Status, headers (beyond the common ones), body."""

FastEndpoint = Callable[[FastRequest], Awaitable[FastResponse]]


class FastRoute(NamedTuple):
    endpoint: FastEndpoint
    measured: bool = True
    """Counted in the per-route HTTP metrics."""


PlainAnswer = Callable[[FastRequest], FastResponse]


class PlainRoute(NamedTuple):
    """An answer computed from the request's headers alone, synchronously: no body, nothing
    awaited, nothing logged (so no request-id context), not in the per-route metrics (it keeps
    its own counter). The JWKS: its whole answer costs less than a coroutine and a context."""

    answer: PlainAnswer


class PreRouter:
    """Wraps Litestar's ASGI handler (``app.asgi_handler``); see the module docstring."""

    def __init__(
        self,
        app: Any,
        routes: Mapping[tuple[str, str], FastRoute | PlainRoute],
        *,
        common_headers: Headers,
        defer_on_origin: bool,
    ) -> None:
        self.app = app
        self.routes = dict(routes)
        self._common = common_headers
        self._defer_on_origin = defer_on_origin
        self._series = RouteSeries()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        route = (
            self.routes.get((scope.get("method", ""), scope.get("path", "")))
            if scope["type"] == "http"
            else None
        )
        if route is None:
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        request = FastRequest(method, scope.get("client"), receive, scope["headers"])
        if request.origin and self._defer_on_origin:
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(request.incoming_id)
        if isinstance(route, PlainRoute):
            status, headers, body = route.answer(request)
        else:
            running = self._series.started(method, path) if route.measured else None
            started = time.perf_counter()
            context = REQUEST_ID.set(request_id)
            outcome: int | None = 500
            deferred: Defer | None = None
            try:
                status, headers, body = await route.endpoint(request)
                outcome = status
            except Disconnected:
                outcome = None  # nobody to answer: neither a success nor a server error
                return
            except Defer as handed_over:
                outcome, deferred = None, handed_over  # Litestar's series counts it
            finally:
                REQUEST_ID.reset(context)
                if running is not None:
                    if outcome is None:
                        self._series.abandoned(running)
                    else:
                        self._series.finished(running, method, path, outcome, time.perf_counter() - started)
            if deferred is not None:
                read = deferred.body
                await self.app(scope, receive if read is None else _replaying(read, receive), send)
                return
        headers = [*headers, *self._common, (b"x-request-id", request_id.encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
