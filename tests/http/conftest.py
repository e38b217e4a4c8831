"""Fixtures of the HTTP tests that compare the pre-router's answers with Litestar's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from litestar import Litestar

from service.app import create_app, serving
from service.clock import FrozenClock
from service.config import Settings
from tests.http.prerouted import ALLOWED_ORIGIN, litestar_route


@pytest.fixture
async def both(app: Litestar) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    base = "http://127.0.0.1:8000"
    async with (
        serving(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base) as fast,  # type: ignore[arg-type]
        httpx.AsyncClient(transport=httpx.ASGITransport(app=litestar_route(app)), base_url=base) as routed,
    ):
        yield fast, routed


@pytest.fixture
async def cors_client(
    make_settings: Callable[..., Settings], backend_env: dict[str, str], clock: FrozenClock
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app that allows CORS from ``ALLOWED_ORIGIN``."""
    app = create_app(make_settings(**backend_env, IDP_CORS_ORIGINS=ALLOWED_ORIGIN), clock=clock)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    base = "http://127.0.0.1:8000"
    async with serving(app), httpx.AsyncClient(transport=transport, base_url=base) as client:
        yield client
