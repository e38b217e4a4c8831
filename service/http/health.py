"""Liveness and readiness probes."""

from __future__ import annotations

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency

from service.keys.keyring import KeyRing, NoSigningKey
from service.store.base import Database, StorageUnavailable

__all__ = ["HealthController"]


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
    async def ready(
        self, database: NamedDependency[Database], keyring: NamedDependency[KeyRing]
    ) -> Response[Readiness]:
        """Ready when the database answers and a key may sign."""
        checks = {"database": "ok", "signing_key": "ok"}
        try:
            await database.ping()
        except StorageUnavailable:
            checks["database"] = "unavailable"
        try:
            keyring.signing_key()
        except NoSigningKey:
            checks["signing_key"] = "missing"
        healthy = all(value == "ok" for value in checks.values())
        return Response(
            Readiness("ok" if healthy else "unavailable", checks),
            status_code=200 if healthy else 503,
        )
