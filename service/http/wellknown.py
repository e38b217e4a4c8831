"""JWKS and the two discovery documents (OpenID Connect Discovery, RFC 8414)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get

from service.clients import ID_TOKEN_ALGS
from service.http.openapi import JWKSDocument, Metadata, json_body, not_modified
from service.keys.keyring import KeyRing
from service.oidc.discovery import oauth_metadata, openid_configuration
from service.runtime import Runtime

__all__ = [
    "JWKS_MEDIA_TYPE",
    "JWKS_PATH",
    "WellKnownController",
    "discovery_document",
    "if_none_match_matches",
]

JWKS_MEDIA_TYPE = "application/jwk-set+json"
JWKS_PATH = "/.well-known/jwks.json"


def discovery_document(
    runtime: Runtime, grant_types: Sequence[str], cache: dict[tuple[str, bool], bytes], *, openid: bool
) -> bytes:
    """``openid-configuration`` (``openid``) or ``oauth-authorization-server``, re-encoded only
    when the keys change (the ID-token algorithms are those with a key signing now)."""
    key = (runtime.keyring.jwks_etag, openid)
    if key not in cache:
        settings = runtime.settings
        common = {
            "issuer": settings.issuer,
            "grant_types": grant_types,
            "access_token_alg": settings.keys.signing_alg,
        }
        if openid:
            algs = [alg for alg in runtime.keyring.signing_algs() if alg in ID_TOKEN_ALGS]
            document = openid_configuration(**common, id_token_algs=algs)  # type: ignore[arg-type]
        else:
            document = oauth_metadata(**common)  # type: ignore[arg-type]
        if len(cache) > 4:
            cache.clear()
        cache[key] = msgspec.json.encode(document)
    return cache[key]


class WellKnownController(Controller):
    path = "/.well-known"
    tags = ["discovery"]  # noqa: RUF012
    include_in_schema = True

    @get(
        "/jwks.json",
        media_type=JWKS_MEDIA_TYPE,
        responses={**json_body(200, JWKSDocument, JWKS_MEDIA_TYPE), **not_modified()},
    )
    async def jwks(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        """Public signing keys (RFC 7517); revalidate with ``If-None-Match``.

        ``GET`` and ``HEAD`` are answered before routing by
        :mod:`service.http.prerouter`; this route serves CORS requests and the
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
        return _metadata(request, openid=True)

    @get("/oauth-authorization-server", media_type="application/json", responses=json_body(200, Metadata))
    async def oauth_authorization_server(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        """RFC 8414 authorization server metadata."""
        return _metadata(request, openid=False)


def if_none_match_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2: ``*`` or a list of entity tags (weak comparison)."""
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


def _metadata(request: Request[Any, Any, Any], *, openid: bool) -> Response[bytes]:
    """:func:`discovery_document`, cached like the JWKS."""
    state = request.app.state
    body = discovery_document(state.runtime, state.grant_types, state.discovery_cache, openid=openid)
    return Response(body, headers={"Cache-Control": state.jwks_cache_control}, media_type="application/json")
