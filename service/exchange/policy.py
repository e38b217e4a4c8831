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
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated
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


class _File(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    trusted_issuers: list[TrustedIssuer] = msgspec.field(default_factory=list)
    clients: list[DeclaredClient] = msgspec.field(default_factory=list)


class TrustConfig(msgspec.Struct, frozen=True):
    issuers: dict[str, TrustedIssuer]
    client_secret_hashes: dict[str, tuple[str, str]]
    """client id → (name, SHA-256 hex of its secret)."""


EMPTY = TrustConfig(issuers={}, client_secret_hashes={})


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
    clients: dict[str, tuple[str, str]] = {}
    for index, client in enumerate(parsed.clients):
        where = f"clients[{index}]"
        if (client.secret_sha256 is None) == (client.secret_env is None):
            raise ConfigError(f"IDP_CONFIG: {where} needs exactly one of secret_sha256 and secret_env")
        if client.secret_env is not None:
            secret = environment.get(client.secret_env)
            if not secret:
                raise ConfigError(
                    f"IDP_CONFIG: {where}.secret_env names {client.secret_env}, which is not set"
                )
            digest = hashlib.sha256(secret.encode()).hexdigest()
        else:
            digest = (client.secret_sha256 or "").lower()
            if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
                raise ConfigError(f"IDP_CONFIG: {where}.secret_sha256 must be 64 hex characters")
        clients[client.id] = (client.name or client.id, digest)
    return TrustConfig(issuers=issuers, client_secret_hashes=clients)
