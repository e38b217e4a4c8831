"""The token endpoint (RFC 6749 §3.2) without HTTP: rate limit, client authentication, and
one grant per ``grant_type``. Both ways in (the pre-router and the Litestar route) call
:meth:`TokenEndpoint.token` with the parsed parameters.

A grant is registered by its ``grant_type`` in :data:`GRANTS`. Its ``look_up``
reads what it needs without changing anything; it runs together with the rate-limit check and
the client authentication, so on Redis they share one round trip. Its ``grant`` runs only once
the request is admitted. A refused request is a 429 whatever else is wrong with it, as if the
limit had been checked alone first.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote_plus

import msgspec

from service import bounded_json
from service.abuse import AbuseGuard
from service.clients import Clients
from service.errors import InvalidClient, InvalidRequest, UnsupportedGrantType
from service.exchange.grant import GRANT_TYPE as TOKEN_EXCHANGE
from service.exchange.grant import TokenExchange
from service.oidc.client_assertion import ASSERTION_TYPE
from service.oidc.client_credentials import GRANT_TYPE as CLIENT_CREDENTIALS
from service.oidc.client_credentials import client_credentials
from service.oidc.provider import GRANT_TYPE as AUTHORIZATION_CODE
from service.oidc.provider import Provider
from service.sessions import Presented, Sessions, TokenResponse
from service.store.sessions import Client
from service.tokens.access import AccessTokens

__all__ = [
    "GRANTS",
    "GRANT_TYPES",
    "Grant",
    "GrantServices",
    "TokenEndpoint",
    "authenticate_client",
    "basic_client_id",
    "parse_form",
    "parse_params",
    "required",
]

MAX_PARAMS = 32


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


def required(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise InvalidRequest(f"The {name} parameter is required.")
    return value


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
    """The authenticated client (client_secret_basic from the ``Authorization`` header,
    client_secret_post, or an RFC 7523 ``client_assertion``), or None if the request carries
    no client credentials. Wrong credentials are ``invalid_client``."""
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


def _has_credentials(authorization: str, params: dict[str, str]) -> bool:
    return bool(authorization) or "client_secret" in params or "client_assertion" in params


async def _settled(step: Awaitable[Any]) -> Any:
    """``step``'s result or its exception (``asyncio.gather(return_exceptions=True)`` for one)."""
    try:
        return await step
    except Exception as exc:  # noqa: BLE001 - raised by the caller, in rank order
        return exc


def _abandon(*steps: Awaitable[Any] | None) -> None:
    for step in steps:
        if isinstance(step, asyncio.Future):
            step.cancel()
        elif asyncio.iscoroutine(step):
            step.close()


class Grant(Protocol):
    """One ``grant_type`` of the token endpoint."""

    async def look_up(self, params: dict[str, str]) -> Any:
        """Reads only; sent together with the rate-limit check and the client authentication,
        its errors come after theirs."""
        ...

    async def grant(self, found: Any, params: dict[str, str], client: Client | None) -> TokenResponse:
        """The grant itself, once the request is admitted and the client authenticated."""
        ...


class GrantServices(msgspec.Struct, frozen=True, kw_only=True):
    """What the grants are built from (the runtime fills it in)."""

    sessions: Sessions
    access_tokens: AccessTokens
    exchange: TokenExchange
    clients: Clients
    provider: Provider


class RefreshGrant:
    """``refresh_token`` (RFC 6749 §6): the family is read with the limit check, then rotated.
    A session a client opened with an ``openid`` authorization code also gets a new ID token
    (OpenID Connect Core §12.2)."""

    def __init__(self, services: GrantServices) -> None:
        self._sessions = services.sessions
        self._provider = services.provider

    async def look_up(self, params: dict[str, str]) -> Presented:
        return await self._sessions.present(required(params, "refresh_token"))

    async def grant(self, found: Presented, params: dict[str, str], client: Client | None) -> TokenResponse:
        openid = self._provider.refreshes_id_token(found.family, client)
        refreshed = await self._sessions.refresh(found, client=client, scope=params.get("scope"))
        if openid and client is not None and found.family is not None:
            return await self._provider.refreshed_id_token(client, found.family, refreshed)
        return refreshed


class ClientCredentialsGrant:
    """``client_credentials`` (RFC 6749 §4.4): the client's own access token."""

    def __init__(self, services: GrantServices) -> None:
        self._access_tokens = services.access_tokens

    async def look_up(self, params: dict[str, str]) -> None:
        return None

    async def grant(self, found: None, params: dict[str, str], client: Client | None) -> TokenResponse:
        return client_credentials(client, params.get("scope"), self._access_tokens)


class AuthorizationCodeGrant:
    """``authorization_code`` (RFC 6749 §4.1.3, with PKCE): a public client is identified by
    ``client_id`` (PKCE binds the code to it), a confidential one authenticated."""

    def __init__(self, services: GrantServices) -> None:
        self._clients = services.clients
        self._provider = services.provider

    async def look_up(self, params: dict[str, str]) -> None:
        return None

    async def grant(self, found: None, params: dict[str, str], client: Client | None) -> TokenResponse:
        if client is None:
            client = await self._clients.identify_public(required(params, "client_id"))
        return await self._provider.redeem(client, params)


class TokenExchangeGrant:
    """RFC 8693 token exchange; needs client authentication."""

    def __init__(self, services: GrantServices) -> None:
        self._exchange = services.exchange

    async def look_up(self, params: dict[str, str]) -> None:
        return None

    async def grant(self, found: None, params: dict[str, str], client: Client | None) -> TokenResponse:
        if client is None:
            raise InvalidClient("Token exchange requires client authentication.")
        return await self._exchange.exchange(params, client)


# grant_type → its grant. A new grant is one class above and one line here (and, if it needs
# another service, a field of GrantServices); discovery advertises GRANT_TYPES.
GRANTS: dict[str, Callable[[GrantServices], Grant]] = {
    AUTHORIZATION_CODE: AuthorizationCodeGrant,
    "refresh_token": RefreshGrant,
    CLIENT_CREDENTIALS: ClientCredentialsGrant,
    TOKEN_EXCHANGE: TokenExchangeGrant,
}
GRANT_TYPES = list(GRANTS)


class TokenEndpoint:
    """``POST /oauth2/token`` after the body is parsed: the same for both ways in."""

    def __init__(self, *, guard: AbuseGuard, clients: Clients, services: GrantServices) -> None:
        self._guard = guard
        self._clients = clients
        self._grants = {grant_type: build(services) for grant_type, build in GRANTS.items()}

    async def token(self, params: dict[str, str], *, authorization: str, ip: str) -> TokenResponse:
        client_id = params.get("client_id") or basic_client_id(authorization)
        admission = self._guard.before_token(ip, client_id)
        grant_type = params.get("grant_type")
        if not grant_type:
            await admission  # a 429 wins over the missing parameter
            raise InvalidRequest("The grant_type parameter is required.")
        grant = self._grants.get(grant_type)
        # All sent at once, awaited in the order their errors rank (the limit, the client, the
        # grant's read): the grant's read, and the client authentication when there are
        # credentials to check, run as tasks beside the limit check, so their Redis and
        # PostgreSQL calls share the writes; a request without credentials costs no task for
        # its "no client" (a task and a gather cost more than the rest of that step).
        lookup = asyncio.ensure_future(grant.look_up(params)) if grant is not None else None
        authenticating = authenticate_client(authorization, params, self._clients)
        client_step: Awaitable[Client | None] = authenticating
        if _has_credentials(authorization, params):
            client_step = asyncio.ensure_future(authenticating)
        try:
            results = [await _settled(admission), await _settled(client_step)]
            if lookup is not None:
                results.append(await _settled(lookup))
        except BaseException:  # cancelled: nothing may outlive the request
            _abandon(client_step, lookup)
            raise
        for result in results:
            if isinstance(result, BaseException):
                raise result
        if grant is None:
            raise UnsupportedGrantType(f"The grant type {grant_type[:64]!r} is not supported.")
        client: Client | None = results[1]  # not an exception: raised above
        return await grant.grant(results[2], params, client)
