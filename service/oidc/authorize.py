"""The authorization endpoint's rules (RFC 6749 §4.1, OpenID Connect Core §3.1.2, RFC 9700).

Two phases: :func:`resolve_client` decides whether the client and its redirect URI can be
trusted (if not: an error page, never a redirect); :func:`parse_request` checks the rest, and
its errors go back to the client's redirect URI with ``state`` and ``iss`` (RFC 9207).

Sign-in is a small state machine, :func:`next_step`:
identify → authenticate → [second factor: a later issue] → consent → redirect.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal
from urllib.parse import urlencode

import msgspec

from service.clients import OIDC_SCOPES, Clients
from service.errors import (
    ConsentRequired,
    IdPError,
    InvalidRequest,
    InvalidScope,
    LoginRequired,
    UnauthorizedClient,
    UnknownClientOrRedirect,
    UnsupportedResponseType,
)
from service.store.sessions import Client, Family
from service.tokens.access import acr_satisfies

__all__ = [
    "AuthorizationRequest",
    "Step",
    "error_redirect",
    "next_step",
    "parse_request",
    "resolve_client",
    "success_redirect",
]

Step = Literal["authenticate", "second_factor", "consent", "redirect"]
PROMPTS = frozenset({"none", "login", "consent", "select_account"})
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # base64url of a SHA-256 digest, no padding
MAX_STATE = 2048
MAX_NONCE = 512


class AuthorizationRequest(msgspec.Struct, frozen=True, kw_only=True):
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    nonce: str | None
    code_challenge: str
    prompt: frozenset[str]
    max_age: int | None
    login_hint: str | None
    ui_locales: str | None
    acr_values: tuple[str, ...] = ()

    @property
    def scope(self) -> str:
        return " ".join(self.scopes)


async def resolve_client(params: Mapping[str, str], clients: Clients) -> tuple[Client, str]:
    """The registered client and the exact registered redirect URI, or
    :class:`UnknownClientOrRedirect` (shown as a page)."""
    client_id = params.get("client_id", "")
    client = await clients.get(client_id) if client_id else None
    if client is None:
        raise UnknownClientOrRedirect("Unknown client.")
    redirect_uri = params.get("redirect_uri", "")
    if redirect_uri not in client.redirect_uris:  # exact string match: no prefix, no wildcard
        raise UnknownClientOrRedirect("The redirect_uri is not registered for this client.")
    return client, redirect_uri


def _max_age(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 10:
        raise InvalidRequest("max_age must be a non-negative integer.")
    return int(raw)


def _scopes(raw: str | None, client: Client) -> tuple[str, ...]:
    requested = tuple(dict.fromkeys((raw or "").split()))
    allowed = {*OIDC_SCOPES, *client.scopes}
    if not requested or not set(requested) <= allowed:
        raise InvalidScope("The scope is empty or names a scope this client may not request.")
    if "refresh_token" not in client.grant_types:  # offline_access would grant nothing
        requested = tuple(scope for scope in requested if scope != "offline_access")
    return requested


def parse_request(client: Client, redirect_uri: str, params: Mapping[str, str]) -> AuthorizationRequest:
    """Everything else; raises an :class:`IdPError` to send back to ``redirect_uri``."""
    if "request" in params or "request_uri" in params:
        raise InvalidRequest("Request objects are not supported.")
    if params.get("response_type") != "code":
        raise UnsupportedResponseType
    if params.get("response_mode", "query") != "query":
        raise InvalidRequest("Only response_mode=query is supported.")
    if "authorization_code" not in client.grant_types:
        raise UnauthorizedClient("This client is not registered for the authorization code flow.")
    challenge = params.get("code_challenge", "")
    if params.get("code_challenge_method") != "S256" or not _CHALLENGE.match(challenge):
        raise InvalidRequest("PKCE is required: code_challenge with code_challenge_method=S256.")
    prompt = frozenset(params.get("prompt", "").split())
    if not prompt <= PROMPTS or ("none" in prompt and len(prompt) > 1):
        raise InvalidRequest("prompt must be none, or any of login, consent, select_account.")
    state, nonce = params.get("state"), params.get("nonce")
    if (state and len(state) > MAX_STATE) or (nonce and len(nonce) > MAX_NONCE):
        raise InvalidRequest("state or nonce is too long.")
    return AuthorizationRequest(
        client_id=client.id,
        redirect_uri=redirect_uri,
        scopes=_scopes(params.get("scope"), client),
        state=state,
        nonce=nonce,
        code_challenge=challenge,
        prompt=prompt,
        max_age=_max_age(params.get("max_age")),
        login_hint=(params.get("login_hint") or "")[:320] or None,
        ui_locales=(params.get("ui_locales") or "")[:64] or None,
        acr_values=tuple(params.get("acr_values", "").split())[:8],
    )


def next_step(
    request: AuthorizationRequest,
    client: Client,
    session: Family | None,
    granted: frozenset[str],
    *,
    now: float,
    fresh_login: bool,
    consented: bool = False,
) -> Step:
    """Where the sign-in goes from here; with ``prompt=none`` a needed interaction is an error.
    ``fresh_login``: the user authenticated in this very request (satisfies ``prompt=login``);
    ``consented``: the user just allowed this request (satisfies ``prompt=consent``)."""
    stale = request.max_age is not None and session is not None and now - session.created_at > request.max_age
    # Step-up: a session weaker than the acr_values asked for signs in again (once: a fresh
    # sign-in is what the account can do, and its acr says so).
    # A client with require_mfa takes no sign-in without a second factor, however fresh.
    weak = session is not None and (
        (not fresh_login and not acr_satisfies(session.amr, request.acr_values))
        or (client.require_mfa and "mfa" not in session.amr)
    )
    if session is None or stale or weak or ("login" in request.prompt and not fresh_login):
        if "none" in request.prompt:
            raise LoginRequired
        return "authenticate"
    needs_consent = not (client.first_party or consented) and (
        "consent" in request.prompt or not set(request.scopes) <= granted
    )
    if needs_consent:
        if "none" in request.prompt:
            raise ConsentRequired
        return "consent"
    return "redirect"


def _append(uri: str, params: dict[str, str]) -> str:
    return f"{uri}{'&' if '?' in uri else '?'}{urlencode(params)}"


def success_redirect(request: AuthorizationRequest, code: str, issuer: str) -> str:
    params = {"code": code}
    if request.state is not None:
        params["state"] = request.state
    params["iss"] = issuer
    return _append(request.redirect_uri, params)


def error_redirect(redirect_uri: str, error: IdPError, state: str | None, issuer: str) -> str:
    """RFC 6749 §4.1.2.1 with RFC 9207's ``iss``."""
    params = {"error": error.error, "error_description": error.description}
    if state is not None:
        params["state"] = state
    params["iss"] = issuer
    return _append(redirect_uri, params)
