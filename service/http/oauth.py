"""``/oauth2/token`` (RFC 6749), ``/oauth2/revoke`` (RFC 7009), ``/oauth2/introspect`` (RFC 7662)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import msgspec
from litestar import Controller, Request, Response, post
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency
from litestar.status_codes import HTTP_200_OK

from service.errors import IdPError, InvalidClient, InvalidRequest, UnsupportedGrantType
from service.exchange.grant import GRANT_TYPE
from service.http.auth import authenticate_client, basic_client_id, read_params, request_ip
from service.http.openapi import errors, json_body
from service.oidc.client_credentials import GRANT_TYPE as CLIENT_CREDENTIALS
from service.oidc.client_credentials import client_credentials
from service.oidc.provider import GRANT_TYPE as AUTHORIZATION_CODE
from service.runtime import Runtime
from service.sessions import TokenResponse
from service.tokens.access import FIRST_PARTY_CLIENT, AccessClaims
from service.tokens.refresh import PREFIX as REFRESH_PREFIX

__all__ = ["GRANT_TYPES", "OAuthController", "token_grant"]

GRANT_TYPES = [AUTHORIZATION_CODE, "refresh_token", CLIENT_CREDENTIALS, GRANT_TYPE]


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise InvalidRequest(f"The {name} parameter is required.")
    return value


async def token_grant(
    runtime: Runtime, params: dict[str, str], *, authorization: str, ip: str
) -> TokenResponse:
    """The token endpoint behind both ways in (:class:`service.http.fastpath.TokenFastPath`
    and the Litestar route). Grants: ``refresh_token`` and RFC 8693 token exchange.

    The rate-limit decision is asked for first and awaited before the grant changes any state,
    while the grant's first read (the refresh family) is already on its way: both go to the
    store in one round trip. A refused request is a 429 whatever else is wrong with it, as if
    the limit had been checked alone first.
    """
    client_id = params.get("client_id") or basic_client_id(authorization)
    admission = asyncio.ensure_future(runtime.guard.before_token(ip, client_id))
    try:
        return await _grant(runtime, params, authorization, admission)
    except asyncio.CancelledError:
        admission.cancel()
        raise
    except Exception:
        await admission  # raises the 429 (or the outage) in place of the grant's error
        raise


async def _grant(
    runtime: Runtime, params: dict[str, str], authorization: str, admission: Awaitable[None]
) -> TokenResponse:
    grant_type = _required(params, "grant_type")
    client = await authenticate_client(authorization, params, runtime.clients)
    if grant_type == "refresh_token":
        return await runtime.sessions.refresh(
            _required(params, "refresh_token"), client=client, scope=params.get("scope"), admitted=admission
        )
    await admission
    if grant_type == GRANT_TYPE:
        if client is None:
            raise InvalidClient("Token exchange requires client authentication.")
        return await runtime.exchange.exchange(params, client)
    if grant_type == CLIENT_CREDENTIALS:
        return client_credentials(client, params.get("scope"), runtime.access_tokens)
    if grant_type == AUTHORIZATION_CODE:
        if client is None:  # a public client: identified, not authenticated (PKCE binds the code)
            client = await runtime.clients.identify_public(_required(params, "client_id"))
        return await runtime.provider.redeem(client, params)
    raise UnsupportedGrantType(f"The grant type {grant_type[:64]!r} is not supported.")


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
        (:class:`service.http.fastpath.TokenFastPath`); this route serves the others (CORS)."""
        authorization = request.headers.get("authorization", "")
        ip = request_ip(request, runtime.guard)
        return await token_grant(runtime, await read_params(request), authorization=authorization, ip=ip)

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
        token = _required(params, "token")
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
        token = _required(params, "token")
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
