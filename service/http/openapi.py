"""What the OpenAPI document says about responses that handlers do not return directly: every
error has the one ``{"error", "error_description"}`` body, and byte responses get their schema.
And the docs page at ``/schema``: Redoc from one pinned CDN file, with no inline script (its
CSP, in :mod:`service.http.security_headers`, names that exact file)."""

from __future__ import annotations

import html
from typing import Any

import msgspec
from litestar import Request
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin

from service.http.errors import ErrorBody
from service.http.security_headers import REDOC_JS, REDOC_SRI

__all__ = ["DocsPage", "JWKSDocument", "Metadata", "errors", "json_body", "not_modified", "render_plugins"]

_DESCRIPTIONS = {
    400: "Malformed request or invalid grant (RFC 6749 §5.2)",
    401: "Authentication failed (invalid_token, invalid_client, invalid_credentials, mfa_required, …)",
    403: "Forbidden (insufficient_scope, fresh_factor_required, mfa_enrollment_required)",
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


def errors(*codes: int, unavailable: bool = True) -> dict[int, ResponseSpec]:
    """The error responses a handler can produce, each with the shared error body; 503 too
    (``unavailable``) unless the handler needs neither storage nor the argon2 pool.
    tests/http/test_openapi_responses.py checks each operation's list against its answers."""
    return {
        code: ResponseSpec(data_container=ErrorBody, description=_DESCRIPTIONS[code], generate_examples=False)
        for code in (*codes, *((503,) if unavailable else ()))
    }


def json_body(
    status: int, container: Any, media_type: str = "application/json", description: str = "Success"
) -> dict[int, ResponseSpec]:
    return {
        status: ResponseSpec(
            data_container=container, media_type=media_type, description=description, generate_examples=False
        )
    }


def not_modified() -> dict[int, ResponseSpec]:
    """304 to a matching ``If-None-Match``: no body, the same ``ETag`` and ``Cache-Control``."""
    return {304: ResponseSpec(data_container=None, description="Not modified (If-None-Match matched)")}


class DocsPage(OpenAPIRenderPlugin):
    """Redoc reading ``openapi.json`` from us: the ``<redoc spec-url>`` element needs no inline
    script, no web fonts and no favicon from elsewhere (Litestar's own page has all three)."""

    def __init__(self) -> None:
        super().__init__(path=["/", "/redoc"])

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        spec_url = (
            html.escape(f"{request.app.openapi_config.path}/openapi.json")
            if request.app.openapi_config
            else ""
        )
        title = html.escape(str(openapi_schema.get("info", {}).get("title", "API")))
        return (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{title}</title></head><body>"
            f'<redoc spec-url="{spec_url}"></redoc>'
            f'<script src="{REDOC_JS}" integrity="{REDOC_SRI}" crossorigin="anonymous"></script>'
            "</body></html>"
        ).encode()


def render_plugins() -> list[OpenAPIRenderPlugin]:
    """``/schema`` (and ``/schema/redoc``): the docs page; ``/schema/openapi.json``: the document."""
    return [DocsPage(), JsonRenderPlugin()]
