"""Request authentication helpers shared by controllers: Bearer tokens and OAuth clients."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency

from service.abuse import AbuseGuard
from service.errors import InvalidToken
from service.grants import parse_params
from service.runtime import Runtime
from service.tokens.access import AccessClaims

__all__ = ["bearer_claims", "bearer_token", "read_params", "request_ip"]

MAX_PARAMS = 32


def request_ip(request: Request[Any, Any, Any], guard: AbuseGuard) -> str:
    """The caller's IP (``X-Forwarded-For`` is believed only from ``IDP_TRUSTED_PROXIES``)."""
    peer = request.client.host if request.client else None
    return guard.client_ip(peer, request.headers.get("x-forwarded-for"))


def bearer_token(request: Request[Any, Any, Any]) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("A Bearer access token is required.")
    return token.strip()


async def bearer_claims(request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]) -> AccessClaims:
    """The ``claims`` dependency: a valid access token whose session is still live."""
    return await runtime.sessions.authenticate(runtime.access_tokens.verify(bearer_token(request)))


async def read_params(request: Request[Any, Any, Any]) -> dict[str, str]:
    """:func:`parse_params` of a Litestar request."""
    return parse_params(request.headers.get("content-type", ""), await request.body())
