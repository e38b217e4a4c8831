"""One middleware for every routed request: its id and its Prometheus metrics.

- ``X-Request-ID``: a sane incoming id (a proxy's) is kept, otherwise one is made; audit lines
  carry it (:data:`service.audit.REQUEST_ID`) and the response returns it.
- ``idp_http_requests_total`` / ``idp_http_request_duration_seconds`` by method, route template
  and status; ``idp_http_requests_in_progress``; ``idp_http_requests_error_total`` for 5xx.

Litestar runs app middleware after routing, so ``scope["path_template"]`` names the route
(bounded label values). The series are plain numbers per (method, route, status), read by one
collector when Prometheus scrapes: the generic Prometheus middleware's per-request label
building, then ``prometheus_client``'s locked children, were a measurable share of a hot
request (docs/PERFORMANCE.md). ``/metrics`` itself is not measured.
"""

from __future__ import annotations

import bisect
import math
import time
from typing import Any

from prometheus_client import REGISTRY, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from service.audit import REQUEST_ID, request_id_from

__all__ = ["ObservabilityMiddleware", "RouteSeries"]

APP = "idp"
_LABELS = ["method", "path", "status_code", "app_name"]
BOUNDS: tuple[float, ...] = tuple(Histogram.DEFAULT_BUCKETS)  # the last is +Inf
_LE = tuple("+Inf" if math.isinf(bound) else repr(bound) for bound in BOUNDS)
UNMEASURED = frozenset({"/metrics"})


class _Done:
    """One (method, route, status): answers, their total seconds, answers per latency bucket."""

    __slots__ = ("buckets", "count", "seconds")

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self.buckets = [0] * len(BOUNDS)


_DONE: dict[tuple[str, str, int], _Done] = {}
_RUNNING: dict[tuple[str, str], list[int]] = {}


class _HttpCollector:
    """Reads the plain numbers the series keep when Prometheus scrapes. A ``prometheus_client``
    child takes a lock and a few Python calls per update, six updates per request (two for the
    in-progress gauge, the counter, two for the histogram, the error counter on 5xx); the
    series are only touched from the worker's event loop, so plain numbers need no lock."""

    def describe(self) -> list[Any]:
        return self._families()

    def collect(self) -> list[Any]:
        requests, errors, latency, running = families = self._families()
        for (method, path, status), done in list(_DONE.items()):
            labels = [method, path, str(status), APP]
            requests.add_metric(labels, done.count)
            if status >= 500:
                errors.add_metric(labels, done.count)
            cumulative, buckets = 0, []
            for le, count in zip(_LE, done.buckets, strict=True):
                cumulative += count
                buckets.append((le, cumulative))
            latency.add_metric(labels, buckets, done.seconds)
        for (method, path), value in list(_RUNNING.items()):
            running.add_metric([method, path, APP], value[0])
        return families

    @staticmethod
    def _families() -> list[Any]:
        return [
            CounterMetricFamily("idp_http_requests", "Requests by method, route and status.", labels=_LABELS),
            CounterMetricFamily(
                "idp_http_requests_error", "Requests answered with a 5xx status.", labels=_LABELS
            ),
            HistogramMetricFamily(
                "idp_http_request_duration_seconds", "Time to answer a request, in seconds.", labels=_LABELS
            ),
            GaugeMetricFamily(
                "idp_http_requests_in_progress",
                "Requests being answered now.",
                labels=["method", "path", "app_name"],
            ),
        ]


REGISTRY.register(_HttpCollector())


class RouteSeries:
    """Updates the per-route series: ``running = started(method, path)`` when a request begins,
    ``finished(running, method, path, status, seconds)`` when it is answered, ``abandoned(running)``
    when nobody is left to answer (the client went away)."""

    @staticmethod
    def started(method: str, path: str) -> list[int]:
        running = _RUNNING.get((method, path))
        if running is None:
            running = _RUNNING[method, path] = [0]
        running[0] += 1
        return running

    @staticmethod
    def abandoned(running: list[int]) -> None:
        running[0] -= 1

    @staticmethod
    def finished(running: list[int], method: str, path: str, status: int, seconds: float) -> None:
        running[0] -= 1
        done = _DONE.get((method, path, status))
        if done is None:
            done = _DONE[method, path, status] = _Done()
        done.count += 1
        done.seconds += seconds
        done.buckets[bisect.bisect_left(BOUNDS, seconds)] += 1


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
        running = self._series.started(method, path) if path not in UNMEASURED else None
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
            if running is not None:
                self._series.finished(running, method, path, status, time.perf_counter() - started)
