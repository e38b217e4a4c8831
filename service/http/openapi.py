"""What the OpenAPI document says about responses that handlers do not return directly: every
error has the one ``{"error", "error_description"}`` body, and byte responses get their schema."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.openapi.datastructures import ResponseSpec

from service.http.errors import ErrorBody

__all__ = ["JWKSDocument", "Metadata", "errors", "json_body"]

_DESCRIPTIONS = {
    400: "Malformed request or invalid grant (RFC 6749 §5.2)",
    401: "Authentication failed (invalid_token, invalid_client, invalid_credentials)",
    404: "Not found",
    409: "Conflict",
    413: "Body over the size limit",
    415: "Unsupported media type",
    422: "Invalid email or password policy violation",
    429: "Rate limited (Retry-After, RateLimit headers)",
    503: "Temporarily unavailable (Retry-After)",
}


class JWKSDocument(msgspec.Struct, frozen=True):
    keys: list[dict[str, str]]


class Metadata(msgspec.Struct, frozen=True):
    issuer: str
    jwks_uri: str


def errors(*codes: int) -> dict[int, ResponseSpec]:
    """The error responses a handler can produce, each with the shared error body."""
    return {
        code: ResponseSpec(data_container=ErrorBody, description=_DESCRIPTIONS[code], generate_examples=False)
        for code in (*codes, 503)
    }


def json_body(status: int, container: Any, media_type: str = "application/json") -> dict[int, ResponseSpec]:
    return {status: ResponseSpec(data_container=container, media_type=media_type, generate_examples=False)}
