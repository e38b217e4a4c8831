"""``/oauth2/token`` (RFC 6749), ``/oauth2/revoke`` (RFC 7009), ``/oauth2/introspect`` (RFC 7662)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, post
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency
from litestar.status_codes import HTTP_200_OK

from service.errors import IdPError, InvalidClient
from service.grants import authenticate_client, required
from service.http.auth import read_params, request_ip
from service.http.openapi import errors, json_body
from service.runtime import Runtime
from service.sessions import TokenResponse
from service.tokens.access import FIRST_PARTY_CLIENT, AccessClaims
from service.tokens.refresh import PREFIX as REFRESH_PREFIX

__all__ = ["TOKEN_PATH", "OAuthController"]

TOKEN_PATH = "/oauth2/token"


class Introspection(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    active: bool
    token_type: str | None = None
    scope: str | None = None
    client_id: str | None = None
    username: str | None = None
    sub: str | None = None
    aud: str | list[str] | None = None
    iss: str | None = None
    exp: int | None = None
    iat: int | None = None
    jti: str | None = None
    sid: str | None = None


INACTIVE = Introspection(active=False)


class OAuthController(Controller):
    path = "/oauth2"
    cache_control = CacheControlHeader(no_store=True)
    response_headers = {"Pragma": "no-cache"}  # noqa: RUF012
    tags = ["oauth2"]  # noqa: RUF012

    @post("/token", status_code=HTTP_200_OK, responses=errors(400, 401, 413, 429))
    async def token(
        self,
        request: Request[Any, Any, Any],
        runtime: NamedDependency[Runtime],
    ) -> TokenResponse:
        """Token endpoint. Grants: ``refresh_token``, ``client_credentials``, RFC 8693 token exchange.

        Most requests are answered before routing by the same code
        (:mod:`service.http.prerouter`); this route serves the others (CORS).
        Both call :meth:`service.grants.TokenEndpoint.token`."""
        authorization = request.headers.get("authorization", "")
        ip = request_ip(request, runtime.guard)
        return await runtime.tokens.token(await read_params(request), authorization=authorization, ip=ip)

    @post("/revoke", status_code=HTTP_200_OK, responses={**errors(400, 401, 413), **json_body(200, None)})
    async def revoke(
        self,
        request: Request[Any, Any, Any],
        runtime: NamedDependency[Runtime],
    ) -> Response[bytes]:
        """Revoke a refresh token (its whole session) or the session of an access token.

        Always 200 for a well-formed request, whether or not the token was valid (RFC 7009 §2.2).
        """
        params = await read_params(request)
        token = required(params, "token")
        client = await authenticate_client(request.headers.get("authorization", ""), params, runtime.clients)
        sessions = runtime.sessions
        if token.startswith(REFRESH_PREFIX):
            await sessions.revoke_refresh_token(token, client)
        else:
            try:
                claims = runtime.access_tokens.verify(token)
            except IdPError:
                claims = None
            if (
                claims is not None
                and claims.sid
                and claims.client_id == (client.id if client else FIRST_PARTY_CLIENT)
            ):
                family = await sessions.family(claims.sid)
                if family is not None:
                    await sessions.end(family.user_id, claims.sid, "revoke")
        return Response(b"", status_code=HTTP_200_OK)

    @post("/introspect", status_code=HTTP_200_OK, responses=errors(400, 401, 413))
    async def introspect(
        self,
        request: Request[Any, Any, Any],
        runtime: NamedDependency[Runtime],
    ) -> Introspection:
        """RFC 7662 for authenticated clients; revoked sessions and disabled users are inactive."""
        params = await read_params(request)
        client = await authenticate_client(request.headers.get("authorization", ""), params, runtime.clients)
        sessions = runtime.sessions
        if client is None:
            raise InvalidClient("Introspection requires client authentication.")
        token = required(params, "token")
        if token.startswith(REFRESH_PREFIX):
            family = await sessions.introspect_refresh_token(token, client)
            if family is None:
                return INACTIVE
            return Introspection(
                active=True,
                token_type="refresh_token",
                scope=family.scope,
                client_id=family.client_id,
                sub=str(family.user_id),
                exp=int(family.expires_at),
                iat=int(family.created_at),
                sid=family.id,
            )
        try:
            claims = runtime.access_tokens.verify(token)
            if claims.sid is None:
                return await _introspect_client_token(runtime, claims)
            claims = await sessions.authenticate(claims)
            user = await runtime.accounts.profile(claims)
        except IdPError:
            return INACTIVE
        return Introspection(
            active=True,
            token_type="access_token",
            scope=claims.scope,
            client_id=claims.client_id,
            username=user.email,
            sub=claims.sub,
            aud=claims.aud,
            iss=claims.iss,
            exp=claims.exp,
            iat=claims.iat,
            jti=claims.jti,
            sid=claims.sid,
        )


async def _introspect_client_token(runtime: Runtime, claims: AccessClaims) -> Introspection:
    """A client's own token (client_credentials): active while its client is registered."""
    if claims.sub != claims.client_id or await runtime.clients.get(claims.client_id) is None:
        return INACTIVE
    return Introspection(
        active=True,
        token_type="access_token",
        scope=claims.scope,
        client_id=claims.client_id,
        sub=claims.sub,
        aud=claims.aud,
        iss=claims.iss,
        exp=claims.exp,
        iat=claims.iat,
        jti=claims.jti,
    )
