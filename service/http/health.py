"""Liveness and readiness probes."""

from __future__ import annotations

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

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

    @get("/ready")
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
)
async def metrics() -> Response[bytes]:
    """Prometheus metrics of this process."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
