"""Fixtures of the HTTP tests that compare the pre-router's answers with Litestar's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from litestar import Litestar

from service.app import serving
from service.http.prerouter import PreRouter


def litestar_route(app: Litestar) -> Any:
    """The app without its fast paths: what Litestar itself answers."""
    assert isinstance(app.asgi_handler, PreRouter)
    routed = app.asgi_handler.app

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        scope["app"] = scope["litestar_app"] = app
        scope.setdefault("state", {})
        await routed(scope, receive, send)

    return asgi


@pytest.fixture
async def both(app: Litestar) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    base = "http://127.0.0.1:8000"
    async with (
        serving(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base) as fast,  # type: ignore[arg-type]
        httpx.AsyncClient(transport=httpx.ASGITransport(app=litestar_route(app)), base_url=base) as routed,
    ):
        yield fast, routed
