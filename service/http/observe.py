"""One middleware for every routed request: its id and its Prometheus metrics.

- ``X-Request-ID``: a sane incoming id (a proxy's) is kept, otherwise one is made; audit lines
  carry it (:data:`service.audit.REQUEST_ID`) and the response returns it.
- ``idp_http_requests_total`` / ``idp_http_request_duration_seconds`` by method, route template
  and status; ``idp_http_requests_in_progress``; ``idp_http_requests_error_total`` for 5xx.

Litestar runs app middleware after routing, so ``scope["path_template"]`` names the route
(bounded label values). Label children are resolved once per (method, route, status) and
cached: on hot routes the generic Prometheus middleware's per-request label building was a
measurable share of the request (docs/PERFORMANCE.md). ``/metrics`` itself is not measured.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from service.audit import REQUEST_ID, request_id_from

__all__ = ["ObservabilityMiddleware", "RouteSeries"]

APP = "idp"
_LABELS = ["method", "path", "status_code", "app_name"]
REQUESTS = Counter("idp_http_requests", "Requests by method, route and status.", _LABELS)
ERRORS = Counter("idp_http_requests_error", "Requests answered with a 5xx status.", _LABELS)
LATENCY = Histogram("idp_http_request_duration_seconds", "Time to answer a request, in seconds.", _LABELS)
IN_PROGRESS = Gauge(
    "idp_http_requests_in_progress",
    "Requests being answered now.",
    ["method", "path", "app_name"],
    multiprocess_mode="livesum",
)
UNMEASURED = frozenset({"/metrics"})


class RouteSeries:
    """The metric children of each (method, route, status), looked up once and cached."""

    def __init__(self) -> None:
        self._done: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._running: dict[tuple[str, str], Any] = {}

    def in_progress(self, method: str, path: str) -> Any:
        key = (method, path)
        child = self._running.get(key)
        if child is None:
            child = self._running[key] = IN_PROGRESS.labels(method, path, APP)
        return child

    def finished(self, method: str, path: str, status: int, seconds: float) -> None:
        key = (method, path, status)
        pair = self._done.get(key)
        if pair is None:
            pair = self._done[key] = (
                REQUESTS.labels(method, path, status, APP),
                LATENCY.labels(method, path, status, APP),
            )
        pair[0].inc()
        pair[1].observe(seconds)
        if status >= 500:
            ERRORS.labels(method, path, status, APP).inc()


class ObservabilityMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app
        self._series = RouteSeries()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((value for name, value in scope["headers"] if name == b"x-request-id"), b"")
        request_id = request_id_from(incoming)
        id_header = (b"x-request-id", request_id.encode())
        status = 500

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        method, path = scope["method"], scope.get("path_template") or scope["path"]
        running = self._series.in_progress(method, path) if path not in UNMEASURED else None
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        if running is not None:
            running.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
            if running is not None:
                running.dec()
                self._series.finished(method, path, status, time.perf_counter() - started)
