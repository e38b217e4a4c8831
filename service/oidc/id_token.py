"""ID tokens (OpenID Connect Core §2, §3.1.3.6): signed with the client's
``id_token_signed_response_alg`` (RS256 by default), ``typ: JWT``, ``aud`` = the client.

``at_hash`` is the left half of the access token's hash with the signature's hash function
(SHA-256 for RS256 and ES256, SHA-512 for Ed25519). An ``id_token_hint`` (RP-initiated logout)
is verified with our own keys only, expired or not.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets

import msgspec
from joserfc import jwt
from joserfc.errors import JoseError

from service import bounded_json
from service.clock import Clock
from service.errors import TemporarilyUnavailable
from service.keys.keyring import KeyRing, LoadedKey, NoSigningKey, b64url
from service.store.base import User
from service.store.sessions import Client
from service.tokens.access import MAX_TOKEN_LENGTH, acr_for

__all__ = ["IdTokens", "at_hash", "user_claims"]


class MissingIdTokenKey(TemporarilyUnavailable):
    """No key of the client's ID-token algorithm signs yet: an operator's step is missing (or a
    staged key is still waiting out the rotation delay). 503, never a half-issued response."""

    default_description = "No key of this client's ID-token algorithm can sign now."


def at_hash(access_token: str, alg: str) -> str:
    digest = (hashlib.sha512 if alg == "EdDSA" else hashlib.sha256)(access_token.encode("ascii")).digest()
    return b64url(digest[: len(digest) // 2]).decode("ascii")


def user_claims(user: User, scopes: frozenset[str] | set[str]) -> dict[str, object]:
    """The standard claims a scope releases (OpenID Connect Core §5.4); ``email_verified`` is
    true once the mailed verification link was followed (or an email change confirmed)."""
    claims: dict[str, object] = {}
    if "email" in scopes:
        claims.update(email=user.email, email_verified=user.email_verified)
    if "profile" in scopes and user.name:
        claims["name"] = user.name
    return claims


class IdTokens:
    def __init__(self, *, keyring: KeyRing, issuer: str, ttl: int, clock: Clock) -> None:
        self._keyring = keyring
        self._issuer = issuer
        self._ttl = ttl
        self._clock = clock

    def signing_key_for(self, client: Client) -> LoadedKey:
        """The key that signs ``client``'s ID tokens now, or :class:`MissingIdTokenKey`."""
        alg = client.id_token_signed_response_alg
        try:
            return self._keyring.signing_key(alg)
        except NoSigningKey as exc:
            raise MissingIdTokenKey(f"No {alg} key signs now; run `idp keys rotate --alg {alg}`.") from exc

    def issue(
        self,
        *,
        client: Client,
        user: User,
        scopes: frozenset[str],
        auth_time: float,
        sid: str,
        nonce: str | None,
        access_token: str,
        amr: tuple[str, ...] = (),
    ) -> str:
        key = self.signing_key_for(client)
        now = int(self._clock())
        claims: dict[str, object] = {
            "iss": self._issuer,
            "sub": str(user.id),
            "aud": client.id,
            "azp": client.id,
            "exp": now + self._ttl,
            "iat": now,
            "auth_time": int(auth_time),
            "sid": sid,
            "jti": secrets.token_urlsafe(16),
            "at_hash": at_hash(access_token, key.stored.alg),
            **user_claims(user, scopes),
        }
        if nonce is not None:
            claims["nonce"] = nonce
        if amr:
            claims["amr"], claims["acr"] = list(amr), acr_for(amr)
        signing_input = key.jwt_header_segment + b"." + b64url(msgspec.json.encode(claims))
        return (signing_input + b"." + b64url(key.sign(signing_input))).decode("ascii")

    def verify_hint(self, token: str) -> dict[str, object] | None:
        """The claims of an ID token we issued (signature and ``iss``; expiry not checked, as
        RP-Initiated Logout §2 allows), else None."""
        if not token or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
            return None
        segment = token.split(".", 1)[0]
        try:
            header = bounded_json.decode(
                base64.urlsafe_b64decode((segment + "=" * (-len(segment) % 4)).encode())
            )
        except (ValueError, binascii.Error, msgspec.DecodeError):
            return None
        if (
            not isinstance(header, dict)
            or header.get("typ") != "JWT"
            or not isinstance(header.get("kid"), str)
        ):
            return None
        key = self._keyring.verification_key(header["kid"])
        if key is None or header.get("alg") != key.stored.alg:
            return None
        try:
            claims = jwt.decode(token, key.key, algorithms=[key.stored.alg]).claims
        except (JoseError, ValueError, RecursionError):
            return None
        return claims if claims.get("iss") == self._issuer else None
