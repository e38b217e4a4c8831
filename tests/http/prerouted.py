"""Helpers of the tests that compare the pre-router's answers with Litestar's routes."""

from __future__ import annotations

from typing import Any

import httpx
from litestar import Litestar

from service.http.prerouter import PreRouter

# Headers whose values differ per response.
VARYING = {"x-request-id", "content-length", "date"}
ALLOWED_ORIGIN = "https://app.example.com"


def litestar_route(app: Litestar) -> Any:
    """The app without its fast paths: what Litestar itself answers."""
    assert isinstance(app.asgi_handler, PreRouter)
    routed = app.asgi_handler.app

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        scope["app"] = scope["litestar_app"] = app
        scope.setdefault("state", {})
        await routed(scope, receive, send)

    return asgi


def comparable(response: httpx.Response) -> dict[str, str]:
    """The headers that must be the same whichever way the request was answered."""
    return {name: value for name, value in response.headers.items() if name not in VARYING}


def counter(metrics: str, sample: str) -> float:
    """A sample's value in a Prometheus text page (0 when absent)."""
    for line in metrics.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def post_then_disconnect(app: Litestar, path: str, headers: list[tuple[bytes, bytes]]) -> list[Any]:
    """A POST whose client goes away before its body arrives; what the app sent back."""
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": "POST", "path": path, "headers": headers, "client": ("127.0.0.1", 1),
        "query_string": b"", "root_path": "", "scheme": "http", "http_version": "1.1",
    }  # fmt: skip
    await app(scope, receive, send)  # type: ignore[arg-type]
    return sent
