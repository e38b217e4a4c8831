"""Request authentication helpers shared by controllers: Bearer tokens and OAuth clients."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import msgspec
from litestar import Request
from litestar.di import NamedDependency

from service import bounded_json
from service.abuse import AbuseGuard
from service.clients import Clients
from service.errors import InvalidClient, InvalidRequest, InvalidToken
from service.oidc.client_assertion import ASSERTION_TYPE
from service.runtime import Runtime
from service.store.sessions import Client
from service.tokens.access import AccessClaims

__all__ = [
    "authenticate_client",
    "basic_client_id",
    "bearer_claims",
    "bearer_token",
    "parse_params",
    "read_params",
    "request_ip",
]

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


def parse_form(body: bytes) -> dict[str, str]:
    """``application/x-www-form-urlencoded`` → parameters; repeated or malformed is invalid_request."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body), max_num_fields=MAX_PARAMS
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest("The form body is malformed.") from exc
    params = dict(pairs)
    if len(params) != len(pairs):
        raise InvalidRequest("A parameter was repeated.")
    return params


def parse_params(content_type: str, body: bytes) -> dict[str, str]:
    """OAuth endpoint parameters: form-encoded (RFC 6749) or a flat JSON object of strings.

    Repeated parameters are refused (RFC 6749 §3.1, §3.2).
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded":
        return parse_form(body)
    if media_type == "application/json":
        try:
            decoded = bounded_json.decode(body, type=dict[str, str])
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
            raise InvalidRequest("The JSON body must be an object of string values.") from exc
        if len(decoded) > MAX_PARAMS:
            raise InvalidRequest("Too many parameters.")
        return decoded
    raise InvalidRequest("Send parameters as application/x-www-form-urlencoded (or application/json).")


async def read_params(request: Request[Any, Any, Any]) -> dict[str, str]:
    """:func:`parse_params` of a Litestar request."""
    return parse_params(request.headers.get("content-type", ""), await request.body())


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidClient("Malformed Basic credentials.") from exc
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise InvalidClient("Malformed Basic credentials.")
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote_plus(client_id), unquote_plus(secret)


def basic_client_id(authorization: str) -> str | None:
    """The client id of a Basic ``Authorization`` header, unverified (for rate-limit keys only)."""
    try:
        credentials = _basic_credentials(authorization)
    except InvalidClient:
        return None
    return credentials[0] if credentials else None


async def authenticate_client(authorization: str, params: dict[str, str], clients: Clients) -> Client | None:
    """The authenticated client (client_secret_basic from the ``Authorization`` header, or
    client_secret_post), or None if the request carries no client credentials. Wrong
    credentials are ``invalid_client``."""
    basic = _basic_credentials(authorization)
    posted_secret = params.get("client_secret")
    assertion = params.get("client_assertion")
    if sum(value is not None for value in (basic, posted_secret, assertion)) > 1:
        raise InvalidRequest("Use exactly one client authentication method.")
    if assertion is not None:
        if params.get("client_assertion_type") != ASSERTION_TYPE:
            raise InvalidClient("client_assertion_type must be the RFC 7523 JWT bearer type.")
        return await clients.authenticate_assertion(params.get("client_id"), assertion)
    if basic is not None:
        if params.get("client_id") not in (None, basic[0]):
            raise InvalidRequest("client_id does not match the authenticated client.")
        return await clients.authenticate(*basic)
    if posted_secret is not None:
        client_id = params.get("client_id")
        if not client_id:
            raise InvalidRequest("client_id is required with client_secret.")
        return await clients.authenticate(client_id, posted_secret)
    return None
