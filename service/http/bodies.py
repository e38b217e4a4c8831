"""The request class: Litestar's ``request.json()`` (behind every ``JSONBody`` parameter)
decodes with our nesting limit, so a deeply nested body is a 400, not a RecursionError."""

from __future__ import annotations

from typing import Any

from litestar import Request

from service.bounded_json import check_depth

__all__ = ["BoundedRequest"]


class BoundedRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        """Litestar's decoding, after :func:`service.bounded_json.check_depth` (its
        ``msgspec.DecodeError`` is answered 400 ``invalid_request`` by the error handlers)."""
        check_depth(await self.body())
        return await super().json()
