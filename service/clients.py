"""OAuth clients: registrations (redirect URIs, grants, scopes, auth method) and authentication.

Secrets are 256-bit random strings shown once at registration; only their SHA-256 is stored
(a slow hash adds nothing for a secret with that much entropy) and compared in constant time.
Public clients (``token_endpoint_auth_method = "none"``: SPAs, mobile apps) have no secret and
must use PKCE; one that presents a secret anyway is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlsplit

import msgspec

from service import bounded_json
from service.audit import audit
from service.clock import Clock
from service.errors import ClientExists, ConfigError, InvalidClient, InvalidRequest, NotFound
from service.oidc.client_assertion import ClientAssertions, check_jwks
from service.store.sessions import AuthMethod, Client, ClientStore
from service.tokens.access import FIRST_PARTY_CLIENT
from service.trust import DeclaredClient

__all__ = [
    "AUTH_METHODS",
    "GRANT_TYPES",
    "ID_TOKEN_ALGS",
    "OIDC_SCOPES",
    "Clients",
    "check_registration",
    "declared_registrations",
    "default_grant_types",
    "hash_client_secret",
]

SECRET_PREFIX = "idpcs_"
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
AUTH_METHODS: tuple[AuthMethod, ...] = (
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "none",
)
ID_TOKEN_ALGS = ("RS256", "EdDSA", "ES256")
OIDC_SCOPES = ("openid", "profile", "email", "offline_access")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,64}$")  # RFC 6749 §3.3 scope-token
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
# Compared against when the client id is unknown, so both paths cost the same.
_DUMMY_HASH = hashlib.sha256(b"no such client").hexdigest()


def hash_client_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_redirect_uri(uri: str, field: str) -> None:
    """Absolute, no fragment, no wildcard; https, http on loopback only (RFC 8252 §7.3), or a
    private-use scheme with a dot in it (``com.example.app:/cb``, RFC 8252 §7.1)."""
    parts = urlsplit(uri)
    if len(uri) > 512 or "*" in uri or parts.fragment or "#" in uri or not parts.scheme:
        raise InvalidRequest(f"{field}: {uri!r} must be an absolute URI without fragment or wildcard.")
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return
    if parts.scheme not in {"http", "https", "javascript", "data", "file"} and "." in parts.scheme:
        return
    raise InvalidRequest(f"{field}: {uri!r} must be https, http on a loopback host, or a private-use scheme.")


def check_registration(client: Client) -> Client:
    """Validate a registration (CLI, ``IDP_CONFIG``, admin API); raise :class:`InvalidRequest`."""
    if not _CLIENT_ID.match(client.id):
        raise InvalidRequest("Client ids are 1-64 characters of A-Z a-z 0-9 . _ ~ -")
    if client.id == FIRST_PARTY_CLIENT:
        raise InvalidRequest(f"{FIRST_PARTY_CLIENT!r} is reserved for the IdP's own sign-ins.")
    try:
        uuid.UUID(client.id)
    except ValueError:
        pass
    else:  # a client's own tokens carry sub = client id: it must never look like an account id
        raise InvalidRequest("A client id must not have the form of a UUID.")
    _check_flows(client)
    _check_credentials(client)
    if client.jwks is not None:  # public keys only, stored in one canonical form
        return msgspec.structs.replace(client, jwks=check_jwks(client.jwks))
    return client


def _check_flows(client: Client) -> None:
    for uri in client.redirect_uris:
        _check_redirect_uri(uri, "redirect_uris")
    for uri in client.post_logout_redirect_uris:
        _check_redirect_uri(uri, "post_logout_redirect_uris")
    if unknown := set(client.grant_types) - set(GRANT_TYPES):
        raise InvalidRequest(f"grant_types: unsupported {sorted(unknown)}; use {', '.join(GRANT_TYPES)}.")
    if "authorization_code" in client.grant_types and not client.redirect_uris:
        raise InvalidRequest("The authorization_code grant needs at least one redirect URI.")
    if "refresh_token" in client.grant_types and "authorization_code" not in client.grant_types:
        raise InvalidRequest("refresh_token is granted only together with authorization_code.")
    if client.public and "client_credentials" in client.grant_types:
        raise InvalidRequest("A public client cannot use client_credentials (it has no credentials).")
    if bad := [scope for scope in client.scopes if not _SCOPE_TOKEN.match(scope)]:
        raise InvalidRequest(f"scopes: {bad[0]!r} is not a valid scope token.")


def _check_credentials(client: Client) -> None:
    if client.id_token_signed_response_alg not in ID_TOKEN_ALGS:
        raise InvalidRequest(f"id_token_signed_response_alg must be one of {', '.join(ID_TOKEN_ALGS)}.")
    if client.token_endpoint_auth_method not in AUTH_METHODS:
        raise InvalidRequest(f"token_endpoint_auth_method must be one of {', '.join(AUTH_METHODS)}.")
    needs_secret = client.token_endpoint_auth_method in {"client_secret_basic", "client_secret_post"}
    if needs_secret != (client.secret_hash is not None):
        raise InvalidRequest("Only client_secret_basic and client_secret_post clients have a secret.")
    if (client.token_endpoint_auth_method == "private_key_jwt") != (client.jwks is not None):
        raise InvalidRequest("private_key_jwt clients, and only they, register their public keys (jwks).")


def default_grant_types(*, public: bool, redirect_uris: Sequence[str]) -> tuple[str, ...]:
    """The code flow (with refresh tokens when confidential) for a client with redirect URIs,
    else ``client_credentials`` (a machine client)."""
    if not redirect_uris:
        return ("client_credentials",)
    return ("authorization_code",) if public else ("authorization_code", "refresh_token")


def declared_registrations(declared: Mapping[str, DeclaredClient]) -> dict[str, Client]:
    """The ``[[clients]]`` of ``IDP_CONFIG`` (plain records, secrets already hashed) validated
    into registrations by the same rules as ``idp clients add``; a bad one is a
    :class:`ConfigError` naming ``IDP_CONFIG`` and the entry, so start-up stops."""
    registrations: dict[str, Client] = {}
    for index, client in enumerate(declared.values()):
        grant_types = client.grant_types
        if grant_types is None:
            grant_types = list(default_grant_types(public=client.public, redirect_uris=client.redirect_uris))
        try:
            registrations[client.id] = check_registration(
                Client(
                    id=client.id,
                    name=client.name or client.id,
                    secret_hash=client.secret_sha256,
                    created_at=0.0,
                    redirect_uris=tuple(client.redirect_uris),
                    post_logout_redirect_uris=tuple(client.post_logout_redirect_uris),
                    grant_types=tuple(grant_types),
                    scopes=tuple(client.scopes),
                    first_party=client.first_party,
                    id_token_signed_response_alg=client.id_token_signed_response_alg,
                    token_endpoint_auth_method="none"
                    if client.public
                    else client.token_endpoint_auth_method or "client_secret_basic",
                    jwks=client.jwks,
                    require_mfa=client.require_mfa,
                )
            )
        except InvalidRequest as exc:
            raise ConfigError(f"IDP_CONFIG: clients[{index}]: {exc.description}") from exc
    return registrations


def _unverified_issuer(assertion: str) -> str:
    """The ``iss`` of a JWT before verification: only to find whose keys verify it."""
    try:
        payload = assertion.split(".")[1]
        claims = bounded_json.decode(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return ""
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    return issuer if isinstance(issuer, str) else ""


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value.strip() for value in values if value.strip()))


class Clients:
    def __init__(
        self,
        store: ClientStore,
        clock: Clock,
        declared: Mapping[str, Client] | None = None,
        assertions: ClientAssertions | None = None,
    ) -> None:
        """``declared``: clients from ``IDP_CONFIG``; they take precedence over the database
        and cannot be changed through it. ``assertions``: verifies ``private_key_jwt``."""
        self._store = store
        self._clock = clock
        self._declared = dict(declared or {})
        self._assertions = assertions

    async def register(
        self,
        name: str,
        client_id: str | None = None,
        *,
        redirect_uris: Sequence[str] = (),
        post_logout_redirect_uris: Sequence[str] = (),
        public: bool = False,
        grant_types: Sequence[str] | None = None,
        scopes: Sequence[str] = (),
        first_party: bool = False,
        id_token_signed_response_alg: str = "RS256",  # noqa: S107 (an algorithm name)
        jwks: str | None = None,
        require_mfa: bool = False,
        actor: str = "cli",
    ) -> tuple[Client, str | None]:
        """Create a client; return it and its secret (the only time the secret is visible;
        None for a public client or one that authenticates with ``private_key_jwt``, the keys
        of ``jwks``). Without ``grant_types``: the code flow (with refresh tokens
        for confidential clients) when redirect URIs are given, else ``client_credentials``."""
        client_id = client_id or secrets.token_urlsafe(12)
        if client_id in self._declared:
            raise ClientExists("This client id is declared in IDP_CONFIG.")
        if grant_types is None:
            grant_types = default_grant_types(public=public, redirect_uris=redirect_uris)
        secret = None if public or jwks is not None else SECRET_PREFIX + secrets.token_urlsafe(32)
        method: AuthMethod = (
            "none" if public else "client_secret_basic" if jwks is None else "private_key_jwt"
        )
        client = check_registration(
            Client(
                id=client_id,
                name=name.strip() or client_id,
                secret_hash=None if secret is None else hash_client_secret(secret),
                created_at=self._clock(),
                redirect_uris=_unique(redirect_uris),
                post_logout_redirect_uris=_unique(post_logout_redirect_uris),
                grant_types=_unique(grant_types),
                scopes=_unique(scopes),
                first_party=first_party,
                id_token_signed_response_alg=id_token_signed_response_alg,
                token_endpoint_auth_method=method,
                jwks=jwks,
                require_mfa=require_mfa,
            )
        )
        await self._store.create_client(client)
        audit("client_registered", actor=actor, target_client=client.id, scopes=" ".join(client.scopes))
        return client, secret

    async def get(self, client_id: str) -> Client | None:
        """A registration by id (declared clients first); None when unknown."""
        if not _CLIENT_ID.match(client_id):
            return None
        return self._declared.get(client_id) or await self._store.get_client(client_id)

    async def authenticate(self, client_id: str, secret: str) -> Client:
        """client_secret_basic / client_secret_post. A public client sending a secret, or a
        client registered for another method, is ``invalid_client``."""
        client = await self.get(client_id)
        expected = client.secret_hash if client and client.secret_hash else _DUMMY_HASH
        if not hmac.compare_digest(expected, hash_client_secret(secret)) or client is None:
            raise InvalidClient
        return client

    async def authenticate_assertion(self, client_id: str | None, assertion: str) -> Client:
        """``private_key_jwt`` (RFC 7523): the assertion names the client (``iss``/``sub``);
        a ``client_id`` sent beside it must be the same."""
        if self._assertions is None:
            raise InvalidClient
        client = await self.get(client_id) if client_id else await self.get(_unverified_issuer(assertion))
        verified = await self._assertions.verify(client, assertion)
        if client_id not in (None, verified.id):
            raise InvalidClient
        return verified

    async def identify_public(self, client_id: str) -> Client:
        """A public client presenting only its id (it has nothing to authenticate with)."""
        client = await self.get(client_id)
        if client is None or not client.public:
            raise InvalidClient
        return client

    async def list(self) -> list[Client]:
        stored = [client for client in await self._store.list_clients() if client.id not in self._declared]
        return sorted([*self._declared.values(), *stored], key=lambda client: client.id)

    async def remove(self, client_id: str, *, actor: str = "cli") -> None:
        if client_id in self._declared:
            raise InvalidRequest("This client is declared in IDP_CONFIG; remove it there.")
        if not await self._store.delete_client(client_id):
            raise NotFound("No client with this id.")
        audit("client_removed", actor=actor, target_client=client_id)

    async def rotate_secret(self, client_id: str, *, actor: str = "cli") -> str:
        """A new secret for a confidential client (shown once); the old one stops working at once."""
        if client_id in self._declared:
            raise InvalidRequest("This client is declared in IDP_CONFIG; change its secret there.")
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        if not await self._store.set_client_secret(client_id, hash_client_secret(secret)):
            raise NotFound("No confidential client with this id.")
        audit("client_secret_rotated", actor=actor, target_client=client_id)
        return secret
