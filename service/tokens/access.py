"""RFC 9068 access tokens: issue with the keyring's current key, verify against it.

Verification is strict (RFC 8725): the ``kid`` is only a lookup key into our own published
keys, the ``alg`` must be the one bound to that key, ``typ`` must be ``at+jwt``, ``crit`` with
unknown members is refused by joserfc, ``jku``/``x5u``/``jwk``/``x5c`` are ignored, ``iss`` is
exact and ``aud`` must contain our audience.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import warnings

import msgspec
from joserfc import jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwt import JWTClaimsRegistry

from service import bounded_json
from service.clock import Clock
from service.errors import InvalidToken
from service.keys.keyring import KeyRing, b64url

__all__ = [
    "ACR_LEVELS",
    "FIRST_PARTY_CLIENT",
    "AccessClaims",
    "AccessTokens",
    "IssuedAccessToken",
    "acr_for",
    "acr_satisfies",
    "quiet_eddsa_deprecation",
]

MAX_TOKEN_LENGTH = 8192
LEEWAY_SECONDS = 30
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
FIRST_PARTY_CLIENT = "first-party"


def quiet_eddsa_deprecation() -> None:
    """joserfc warns on every use of ``EdDSA`` since RFC 9864 named ``Ed25519``.

    We keep ``EdDSA`` on purpose: jose, PyJWT and Better Auth verify that name today and most
    do not know ``Ed25519`` yet.
    """
    warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)


class AccessClaims(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    iss: str
    sub: str
    aud: str | list[str]
    exp: int
    iat: int
    jti: str
    client_id: str
    """RFC 9068 §2.2 requires it; sessions opened by our own login carry ``FIRST_PARTY_CLIENT``."""
    roles: list[str]
    sid: str | None = None
    scope: str | None = None
    email: str | None = None
    amr: list[str] | None = None
    """RFC 8176 authentication methods of the session's sign-in (``pwd``, ``otp``, ``hwk``…)."""
    acr: str | None = None


ACR_LEVELS = ("1fa", "mfa", "phr")
"""Weakest first; a stronger class satisfies a request for a weaker one."""


def acr_satisfies(amr: tuple[str, ...], wanted: tuple[str, ...]) -> bool:
    """Does a sign-in with ``amr`` meet the weakest known class among ``wanted`` (OpenID Connect
    ``acr_values``)? Unknown values ask for nothing (the parameter is voluntary)."""
    known = [ACR_LEVELS.index(value) for value in wanted if value in ACR_LEVELS]
    if not known:
        return True
    actual = acr_for(amr)
    return actual is not None and ACR_LEVELS.index(actual) >= min(known)


def acr_for(amr: tuple[str, ...] | list[str]) -> str | None:
    """The class of a sign-in: ``phr`` (phishing-resistant: a passkey took part), ``mfa`` (two
    factors), ``1fa`` (one); None when no method is known (a token exchange)."""
    if not amr:
        return None
    if "hwk" in amr or "swk" in amr:
        return "phr"
    return "mfa" if "mfa" in amr else "1fa"


_CLAIMS_ENCODER = msgspec.json.Encoder()


class IssuedAccessToken(msgspec.Struct, frozen=True):
    token: str
    expires_in: int
    claims: AccessClaims


def _b64_json(segment: str) -> object:
    padded = segment + "=" * (-len(segment) % 4)
    return bounded_json.decode(base64.urlsafe_b64decode(padded.encode("ascii")))


class AccessTokens:
    def __init__(self, *, keyring: KeyRing, issuer: str, audience: str, ttl: int, clock: Clock) -> None:
        self._keyring = keyring
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl
        self._clock = clock
        self._claims_registry = JWTClaimsRegistry(
            now=lambda: int(self._clock()),
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            iat={"essential": True},
            sub={"essential": True},
        )

    def issue(
        self,
        *,
        subject: str,
        email: str | None,
        roles: tuple[str, ...] | list[str],
        sid: str | None = None,
        client_id: str | None = None,
        scope: str | None = None,
        amr: tuple[str, ...] = (),
    ) -> IssuedAccessToken:
        loaded = self._keyring.signing_key()
        now = int(self._clock())
        claims = AccessClaims(
            iss=self._issuer,
            sub=subject,
            aud=self._audience,
            exp=now + self._ttl,
            iat=now,
            jti=secrets.token_urlsafe(16),
            sid=sid,
            client_id=client_id or FIRST_PARTY_CLIENT,
            scope=scope,
            email=email,
            roles=list(roles),
            amr=list(amr) or None,
            acr=acr_for(amr),
        )
        # JWS compact serialisation (RFC 7515 §7.1) straight on cryptography: the header segment is
        # encoded once per key, the claims by msgspec (joserfc's encoder cost twice the signature).
        signing_input = loaded.header_segment + b"." + b64url(_CLAIMS_ENCODER.encode(claims))
        token = signing_input + b"." + b64url(loaded.sign(signing_input))
        return IssuedAccessToken(token=token.decode("ascii"), expires_in=self._ttl, claims=claims)

    def verify(self, token: str) -> AccessClaims:
        """Return the claims of a valid access token or raise :class:`InvalidToken`."""
        if not token or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
            raise InvalidToken
        try:
            header = _b64_json(token.split(".", 1)[0])
        except (ValueError, binascii.Error, msgspec.DecodeError) as exc:
            raise InvalidToken from exc
        if not isinstance(header, dict) or not isinstance(typ := header.get("typ"), str):
            raise InvalidToken
        if typ not in ACCESS_TOKEN_TYPES:
            raise InvalidToken
        kid = header.get("kid")
        loaded = self._keyring.verification_key(kid) if isinstance(kid, str) else None
        if loaded is None or header.get("alg") != loaded.stored.alg:
            raise InvalidToken
        try:
            decoded = jwt.decode(token, loaded.key, algorithms=[loaded.stored.alg])
            self._claims_registry.validate(decoded.claims)
            return msgspec.convert(decoded.claims, AccessClaims)
        except (JoseError, ValueError, msgspec.ValidationError, RecursionError) as exc:
            raise InvalidToken from exc
