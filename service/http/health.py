"""Liveness and readiness probes, and ``/metrics``.

``/metrics`` is not public: with ``IDP_METRICS_TOKEN`` set it needs ``Authorization: Bearer
<token>``; unset, it answers only requests made directly from loopback (no ``X-Forwarded-For``
or ``Forwarded`` header, so a reverse proxy on the same host does not expose it).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.errors import Forbidden, InvalidToken
from service.http.openapi import errors, json_body
from service.keys.keyring import NoSigningKey
from service.runtime import Runtime
from service.store.base import Database, StorageUnavailable
from service.store.sessions import FamilyStore

__all__ = ["HealthController", "metrics"]


class Readiness(msgspec.Struct, frozen=True):
    status: str
    checks: dict[str, str]


class HealthController(Controller):
    path = "/health"
    cache_control = CacheControlHeader(no_store=True)
    tags = ["health"]  # noqa: RUF012

    @get("/live")
    async def live(self) -> dict[str, str]:
        """The process is up and its event loop answers."""
        return {"status": "ok"}

    @get("/ready", responses=json_body(503, Readiness, description="Not ready: the checks say which part"))
    async def ready(self, runtime: NamedDependency[Runtime]) -> Response[Readiness]:
        """Ready when the database and the session store answer and a key may sign."""
        checks = {"database": "ok", "sessions": "ok", "signing_key": "ok"}
        stores: tuple[tuple[str, Database | FamilyStore], ...] = (
            ("database", runtime.database),
            ("sessions", runtime.families),
        )
        for name, store in stores:
            try:
                await store.ping()
            except StorageUnavailable:
                checks[name] = "unavailable"
        try:
            runtime.keyring.signing_key()
        except NoSigningKey:
            checks["signing_key"] = "missing"
        healthy = all(value == "ok" for value in checks.values())
        return Response(
            Readiness("ok" if healthy else "unavailable", checks),
            status_code=200 if healthy else 503,
        )


@get(
    "/metrics",
    media_type=CONTENT_TYPE_LATEST,
    tags=["health"],
    cache_control=CacheControlHeader(no_store=True),
    responses=errors(401, 403, unavailable=False),
)
async def metrics(request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]) -> Response[bytes]:
    """Prometheus metrics of this process (a Bearer ``IDP_METRICS_TOKEN``, or loopback only)."""
    admit_metrics_scrape(
        runtime.settings.metrics_token_sha256,
        request.client.host if request.client else None,
        request.headers.get("authorization", ""),
        forwarded="x-forwarded-for" in request.headers or "forwarded" in request.headers,
    )
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def admit_metrics_scrape(
    token_sha256: str | None, peer: str | None, authorization: str, *, forwarded: bool
) -> None:
    """Raise unless this request may read the metrics (see the module docstring)."""
    if token_sha256 is not None:
        scheme, _, presented = authorization.partition(" ")
        digest = hashlib.sha256(presented.strip().encode()).hexdigest()
        if scheme.lower() != "bearer" or not hmac.compare_digest(digest, token_sha256):
            raise InvalidToken("The metrics token is missing or wrong.")
        return
    if forwarded or not _is_loopback(peer):
        raise Forbidden(
            "Metrics are served to loopback only; set IDP_METRICS_TOKEN to scrape from elsewhere."
        )


def _is_loopback(peer: str | None) -> bool:
    try:
        return peer is not None and ipaddress.ip_address(peer).is_loopback
    except ValueError:
        return False
