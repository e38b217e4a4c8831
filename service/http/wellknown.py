"""JWKS and the two discovery documents (OpenID Connect Discovery, RFC 8414)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, get

from service.config import Settings
from service.http.openapi import JWKSDocument, Metadata, json_body
from service.keys.keyring import KeyRing

__all__ = [
    "JWKS_MEDIA_TYPE",
    "JWKS_PATH",
    "WellKnownController",
    "discovery_document",
    "if_none_match_matches",
]

JWKS_MEDIA_TYPE = "application/jwk-set+json"
JWKS_PATH = "/.well-known/jwks.json"


def discovery_document(settings: Settings, grant_types: list[str]) -> bytes:
    """Metadata shared by ``openid-configuration`` and ``oauth-authorization-server``.

    There is no authorization endpoint (no browser redirect flows), so no response types.
    """
    issuer = settings.issuer
    document: dict[str, object] = {
        "issuer": issuer,
        "jwks_uri": f"{issuer}{JWKS_PATH}",
        "userinfo_endpoint": f"{issuer}/v1/me",
        "response_types_supported": [],
        "grant_types_supported": grant_types,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [settings.signing_alg],
        "access_token_signing_alg_values_supported": [settings.signing_alg],
        "claims_supported": [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "jti",
            "sid",
            "client_id",
            "scope",
            "email",
            "roles",
        ],
    }
    auth_methods = ["client_secret_basic", "client_secret_post"]
    document.update(
        {
            "token_endpoint": f"{issuer}/oauth2/token",
            "token_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint": f"{issuer}/oauth2/revoke",
            "revocation_endpoint_auth_methods_supported": ["none", *auth_methods],
            "introspection_endpoint": f"{issuer}/oauth2/introspect",
            "introspection_endpoint_auth_methods_supported": auth_methods,
        }
    )
    return msgspec.json.encode(document)


class WellKnownController(Controller):
    path = "/.well-known"
    tags = ["discovery"]  # noqa: RUF012
    include_in_schema = True

    @get("/jwks.json", media_type=JWKS_MEDIA_TYPE, responses=json_body(200, JWKSDocument, JWKS_MEDIA_TYPE))
    async def jwks(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        """Public signing keys (RFC 7517); revalidate with ``If-None-Match``.

        ``GET`` and ``HEAD`` are answered before routing by
        :class:`service.http.fastpath.JWKSFastPath`; this route serves CORS requests and the
        OpenAPI description, with the same headers.
        """
        keyring: KeyRing = request.app.state.runtime.keyring
        headers = {"ETag": keyring.jwks_etag, "Cache-Control": request.app.state.jwks_cache_control}
        if if_none_match_matches(request.headers.get("if-none-match"), keyring.jwks_etag):
            return Response(b"", status_code=304, headers=headers, media_type=JWKS_MEDIA_TYPE)
        return Response(keyring.jwks_body, headers=headers, media_type=JWKS_MEDIA_TYPE)

    @get("/openid-configuration", media_type="application/json", responses=json_body(200, Metadata))
    async def openid_configuration(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        """OpenID Connect Discovery 1.0 metadata."""
        return _metadata(request)

    @get("/oauth-authorization-server", media_type="application/json", responses=json_body(200, Metadata))
    async def oauth_authorization_server(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        """RFC 8414 authorization server metadata."""
        return _metadata(request)


def if_none_match_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2: ``*`` or a list of entity tags (weak comparison)."""
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


def _metadata(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The document built by ``create_app`` (:func:`discovery_document`), cached like the JWKS."""
    state = request.app.state
    return Response(
        state.discovery, headers={"Cache-Control": state.jwks_cache_control}, media_type="application/json"
    )
