"""Trust configuration for token exchange, from the TOML file named by ``IDP_CONFIG``.

.. code-block:: toml

    [[trusted_issuers]]
    issuer = "https://app.example.com"              # exact `iss`
    jwks_uri = "https://app.example.com/api/auth/jwks"
    audiences = ["https://id.example.com"]           # accepted `aud` values
    algorithms = ["EdDSA"]                           # pinned (default EdDSA)
    max_token_age = 300                              # seconds since `iat`
    clients = ["web"]                                # clients allowed to exchange its tokens
    link_verified_email = true                       # link an existing account by verified email
    [trusted_issuers.claims]                         # claim names (defaults shown)
    subject = "sub"
    email = "email"
    email_verified = "emailVerified"
    name = "name"

    [[clients]]                                      # optional: clients declared here too
    id = "web"
    name = "Next.js frontend"
    secret_sha256 = "…"                              # hex SHA-256 of the secret, or:
    secret_env = "WEB_CLIENT_SECRET"                 # the secret in an environment variable
    # public = true                                  # instead of a secret: an SPA or mobile app
    redirect_uris = ["https://app.example.com/api/auth/oauth2/callback/idp"]
    post_logout_redirect_uris = ["https://app.example.com/"]
    grant_types = ["authorization_code", "refresh_token"]   # default: as `idp clients add`
    scopes = ["api:read"]                            # beyond openid profile email offline_access
    first_party = true                               # skip the consent screen
    require_mfa = true                               # sign-ins for this client need a second factor
    id_token_signed_response_alg = "RS256"
    token_endpoint_auth_method = "client_secret_basic"      # or client_secret_post, or
    # private_key_jwt with jwks = '{"keys": [...]}' (public keys) and no secret
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import msgspec

from service.errors import ConfigError

__all__ = ["ClaimMapping", "DeclaredClient", "TrustConfig", "TrustedIssuer", "load_trust_config"]

ALLOWED_ALGORITHMS = frozenset({"EdDSA", "Ed25519", "RS256", "PS256", "ES256", "ES512"})


class ClaimMapping(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    subject: str = "sub"
    email: str = "email"
    email_verified: str = "emailVerified"
    name: str = "name"


class TrustedIssuer(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    issuer: str
    jwks_uri: str
    audiences: Annotated[list[str], msgspec.Meta(min_length=1)]
    clients: list[str]
    algorithms: Annotated[list[str], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: ["EdDSA"]
    )
    max_token_age: Annotated[int, msgspec.Meta(gt=0)] = 900
    link_verified_email: bool = False
    claims: ClaimMapping = msgspec.field(default_factory=ClaimMapping)


class DeclaredClient(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str
    name: str = ""
    secret_sha256: str | None = None
    secret_env: str | None = None
    public: bool = False
    redirect_uris: list[str] = msgspec.field(default_factory=list)
    post_logout_redirect_uris: list[str] = msgspec.field(default_factory=list)
    grant_types: list[str] | None = None
    scopes: list[str] = msgspec.field(default_factory=list)
    first_party: bool = False
    require_mfa: bool = False
    id_token_signed_response_alg: str = "RS256"
    token_endpoint_auth_method: (
        Literal["client_secret_basic", "client_secret_post", "private_key_jwt"] | None
    ) = None
    jwks: str | None = None
    """For ``private_key_jwt``: the client's public keys, a JWKS as a JSON string."""


class _File(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    trusted_issuers: list[TrustedIssuer] = msgspec.field(default_factory=list)
    clients: list[DeclaredClient] = msgspec.field(default_factory=list)


class TrustConfig(msgspec.Struct, frozen=True):
    issuers: dict[str, TrustedIssuer]
    clients: dict[str, DeclaredClient]
    """client id → its declaration, in file order, the secret only as a SHA-256 hex digest
    (``secret_env`` already read). Plain values: the registration rules (redirect URIs, grants,
    keys…) are the domain's, applied where the runtime builds ``Clients``
    (:func:`service.clients.declared_registrations`)."""


EMPTY = TrustConfig(issuers={}, clients={})


def _check_url(value: str, where: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ConfigError(f"IDP_CONFIG: {where} must be an absolute http(s) URL, got {value!r}")


def load_trust_config(path: Path | None, env: Mapping[str, str] | None = None) -> TrustConfig:
    """Parse and validate the file; every error starts with ``IDP_CONFIG`` and says where."""
    if path is None:
        return EMPTY
    environment = os.environ if env is None else env
    try:
        parsed = msgspec.toml.decode(path.read_bytes(), type=_File)
    except OSError as exc:
        raise ConfigError(f"IDP_CONFIG={path}: cannot read the file: {exc.strerror}") from exc
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ConfigError(f"IDP_CONFIG={path}: {exc}") from exc
    issuers: dict[str, TrustedIssuer] = {}
    for index, entry in enumerate(parsed.trusted_issuers):
        where = f"trusted_issuers[{index}]"
        _check_url(entry.jwks_uri, f"{where}.jwks_uri")
        if entry.issuer in issuers:
            raise ConfigError(f"IDP_CONFIG: {where}.issuer {entry.issuer!r} is listed twice")
        unknown = set(entry.algorithms) - ALLOWED_ALGORITHMS
        if unknown:
            raise ConfigError(f"IDP_CONFIG: {where}.algorithms has unsupported {sorted(unknown)}")
        issuers[entry.issuer] = entry
    clients: dict[str, DeclaredClient] = {}
    for index, declared in enumerate(parsed.clients):
        where = f"clients[{index}]"
        if declared.id in clients:
            raise ConfigError(f"IDP_CONFIG: {where}.id {declared.id!r} is listed twice")
        if declared.public and declared.token_endpoint_auth_method is not None:
            raise ConfigError(f"IDP_CONFIG: {where} is public: it has no token_endpoint_auth_method")
        secret_hash = _secret_hash(declared, where, environment)
        clients[declared.id] = msgspec.structs.replace(declared, secret_sha256=secret_hash, secret_env=None)
    return TrustConfig(issuers=issuers, clients=clients)


def _secret_hash(client: DeclaredClient, where: str, environment: Mapping[str, str]) -> str | None:
    if client.public or client.token_endpoint_auth_method == "private_key_jwt":
        if client.secret_sha256 is not None or client.secret_env is not None:
            raise ConfigError(f"IDP_CONFIG: {where} has no secret (public or private_key_jwt)")
        return None
    if (client.secret_sha256 is None) == (client.secret_env is None):
        raise ConfigError(f"IDP_CONFIG: {where} needs exactly one of secret_sha256 and secret_env")
    if client.secret_env is not None:
        secret = environment.get(client.secret_env)
        if not secret:
            raise ConfigError(f"IDP_CONFIG: {where}.secret_env names {client.secret_env}, which is not set")
        return hashlib.sha256(secret.encode()).hexdigest()
    digest = (client.secret_sha256 or "").lower()
    if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
        raise ConfigError(f"IDP_CONFIG: {where}.secret_sha256 must be 64 hex characters")
    return digest
