"""Verify the IdP's access tokens offline: a FastAPI dependency to copy into your API.

    auth = IdPAuth.from_env()
    app.add_exception_handler(AuthError, auth_error_response)

    @app.get("/things")
    async def things(user: Annotated[User, Depends(auth)]) -> ...

Checks, in order (RFC 9068, RFC 8725): the token is a compact JWS (three strict base64url
segments); ``typ`` is ``at+jwt``; ``alg`` is one of the pinned algorithms; ``kid`` names a key of
the IdP's JWKS bound to that ``alg``; the header has no unknown or malformed parameter; the
signature; ``iss`` exactly; our audience in ``aud``; ``exp``, ``nbf`` and ``iat`` with a 30 s
leeway. The user comes only from the verified claims. Nothing is sent to the IdP per request: a
revoked session or a disabled account is noticed only when the token expires (15 min by default).

Speed: the token is split and decoded once, the signature is checked with a ``cryptography``
public key converted once per JWKS fetch, and the claims with plain comparisons, so a
verification costs little more than the Ed25519 signature check itself. joserfc only reads the
JWKS (``import_key`` validates each JWK).
"""

import asyncio
import binascii
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Self

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ec import ECDSA, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256
from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from joserfc.errors import JoseError
from joserfc.jwk import import_key

__all__ = [
    "AuthError",
    "IdPAuth",
    "JWKSCache",
    "KeysUnavailable",
    "Settings",
    "User",
    "VerificationKey",
    "auth_error_response",
]

log = logging.getLogger("idp_auth")

SUPPORTED_ALGORITHMS = ("EdDSA", "ES256", "RS256")  # asymmetric only: never HS256 or "none"
ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")  # RFC 9068 §4
LEEWAY_SECONDS = 30
MAX_TOKEN_LENGTH = 8192
MAX_HEADER_LENGTH = 512  # base64url characters of the header segment
MAX_SIGNATURE_LENGTH = 1024  # base64url characters of the signature segment
DEFAULT_MAX_AGE = 300.0  # when the JWKS response carries no Cache-Control max-age
LONGEST_MAX_AGE = 86400.0
FETCH_TIMEOUT = 5.0


@dataclass(frozen=True)
class Settings:
    issuer: str
    audience: str
    jwks_url: str
    algorithms: tuple[str, ...] = ("EdDSA",)
    jwks_cooldown: float = 30.0  # at most one JWKS fetch per cooldown for unknown kids

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Self:
        """``IDP_ISSUER``, ``IDP_AUDIENCE``, ``IDP_JWKS_URL``, ``IDP_ALGORITHMS``, ``IDP_JWKS_COOLDOWN``."""

        def get(name: str, default: str) -> str:
            return env.get(name, "").strip() or default

        issuer = get("IDP_ISSUER", "http://127.0.0.1:8000").rstrip("/")  # as the IdP itself does
        algorithms = tuple(alg.strip() for alg in get("IDP_ALGORITHMS", "EdDSA").split(",") if alg.strip())
        if not algorithms or not set(algorithms) <= set(SUPPORTED_ALGORITHMS):
            raise ValueError(f"IDP_ALGORITHMS must list some of {', '.join(SUPPORTED_ALGORITHMS)}")
        cooldown = get("IDP_JWKS_COOLDOWN", "30")
        if not re.fullmatch(r"\d+(\.\d+)?", cooldown):
            raise ValueError("IDP_JWKS_COOLDOWN must be a number of seconds >= 0")
        return cls(
            issuer=issuer,
            audience=get("IDP_AUDIENCE", issuer),
            jwks_url=get("IDP_JWKS_URL", f"{issuer}/.well-known/jwks.json"),
            algorithms=algorithms,
            jwks_cooldown=float(cooldown),
        )


@dataclass(frozen=True)
class User:
    id: str
    email: str | None
    roles: tuple[str, ...]
    claims: Mapping[str, Any] = field(repr=False)  # all verified claims (sid, jti, scope…)


class AuthError(Exception):
    """The token is not acceptable: 401 ``invalid_token`` (RFC 6750 §3.1)."""

    status_code = 401
    error = "invalid_token"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer error="invalid_token"', "Cache-Control": "no-store"}


class KeysUnavailable(AuthError):
    """We have no key to check any token with (the JWKS cannot be fetched): 503, not 401."""

    status_code = 503
    error = "temporarily_unavailable"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "30", "Cache-Control": "no-store"}


async def auth_error_response(request: Request, exc: Exception) -> JSONResponse:
    """The exception handler to register for :class:`AuthError`."""
    assert isinstance(exc, AuthError)
    body = {"error": exc.error, "error_description": str(exc)}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers())


def _max_age(cache_control: str | None) -> float:
    match = re.search(r"(?:^|[,\s])max-age=(\d+)", cache_control or "")
    seconds = float(match.group(1)) if match else DEFAULT_MAX_AGE
    return min(max(seconds, 1.0), LONGEST_MAX_AGE)


# --- the keys ----------------------------------------------------------------------------------

KEY_TYPES = {"EdDSA": "OKP", "ES256": "EC", "RS256": "RSA"}  # the JWK kty each algorithm needs


def _ecdsa_p256_sha256(key: EllipticCurvePublicKey) -> Callable[[bytes, bytes], None]:
    def check(signature: bytes, signing_input: bytes) -> None:
        if len(signature) != 64:  # JWS ES256 signatures are r || s, 32 bytes each (RFC 7518 §3.4)
            raise InvalidSignature
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        key.verify(encode_dss_signature(r, s), signing_input, ECDSA(SHA256()))

    return check


def _rsa_pkcs1_sha256(key: RSAPublicKey) -> Callable[[bytes, bytes], None]:
    def check(signature: bytes, signing_input: bytes) -> None:
        key.verify(signature, signing_input, PKCS1v15(), SHA256())

    return check


def _never(signature: bytes, signing_input: bytes) -> None:
    """The check of a key that verifies none of our algorithms (never called: see refusal)."""
    raise InvalidSignature


@dataclass(frozen=True, eq=False)
class VerificationKey:
    """A key of the IdP's JWKS, converted once (when the JWKS is fetched) into a ``cryptography``
    public key. ``algorithm`` is the one supported algorithm its type can verify (EdDSA for an
    Ed25519 or Ed448 key, ES256 for P-256, RS256 for RSA; None for any other key), ``alg`` the
    JWK's own ``alg`` member if it has one, ``can_verify`` false if its ``key_ops`` leave out
    "verify"; ``check(signature, signing_input)`` raises ``InvalidSignature`` unless the
    signature is right."""

    kid: str
    alg: str | None
    kty: str
    algorithm: str | None
    can_verify: bool
    check: Callable[[bytes, bytes], None] = field(repr=False)

    @classmethod
    def from_jwk(cls, jwk: dict[str, Any]) -> Self:
        """Raises ``JoseError``, ``ValueError`` or ``TypeError`` if joserfc finds the JWK invalid."""
        imported = import_key(jwk)
        public = imported.public_key
        algorithm: str | None = None
        check: Callable[[bytes, bytes], None] = _never
        if isinstance(public, Ed25519PublicKey | Ed448PublicKey):
            algorithm, check = "EdDSA", public.verify
        elif isinstance(public, EllipticCurvePublicKey) and public.curve.name == "secp256r1":
            algorithm, check = "ES256", _ecdsa_p256_sha256(public)
        elif isinstance(public, RSAPublicKey):
            algorithm, check = "RS256", _rsa_pkcs1_sha256(public)
        key_ops = jwk.get("key_ops")
        return cls(
            kid=jwk["kid"],
            alg=imported.alg,
            kty=jwk["kty"],
            algorithm=algorithm,
            can_verify=key_ops is None or "verify" in key_ops,  # RFC 7517 §4.3
            check=check,
        )

    def refusal(self, alg: str) -> str:
        """Why this key cannot verify an ``alg`` signature (in joserfc's words, as before)."""
        kty = KEY_TYPES[alg]
        if self.kty != kty:
            return f"Algorithm '{alg}' requires '{kty}' key"
        if alg == "ES256" and self.algorithm != alg:
            return "Key for 'ES256' not supported, only 'P-256' allowed"
        if self.algorithm == alg:
            return "Unsupported key_op 'verify'"
        return "Algorithm 'EdDSA' requires 'Ed25519' or 'Ed448' OKP key"  # an X25519 or X448 key


def _public_keys(document: object) -> dict[str, VerificationKey]:
    """The usable signing keys of a JWKS document, by kid (never a private or symmetric key)."""
    members = document.get("keys") if isinstance(document, dict) else None
    keys: dict[str, VerificationKey] = {}
    for jwk in members if isinstance(members, list) else []:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            continue
        if jwk.get("kty") not in {"OKP", "EC", "RSA"} or "d" in jwk or jwk.get("use", "sig") != "sig":
            continue
        try:
            keys[jwk["kid"]] = VerificationKey.from_jwk(jwk)
        except (JoseError, ValueError, TypeError):
            log.warning("ignoring the unusable JWK %r", jwk["kid"])
    if not keys:
        raise ValueError("the JWKS holds no usable signing key")
    return keys


class JWKSCache:
    """The IdP's public keys by ``kid``, fetched on first use and kept for the response's
    ``Cache-Control: max-age`` (revalidated with its ETag). A ``kid`` we do not know triggers a
    refetch, but at most once per ``cooldown`` seconds after the last fetch, so a flood of made-up
    kids cannot hammer the IdP. If a fetch fails, the keys we have are kept."""

    def __init__(self, url: str, *, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.cooldown = cooldown
        self._clock = clock
        self._keys: dict[str, VerificationKey] = {}
        self._etag: str | None = None
        self._expires_at = -math.inf
        self._fetched_at = -math.inf  # the last attempt, successful or not
        self._lock = asyncio.Lock()

    async def get(self, kid: str) -> VerificationKey | None:
        if self._must_fetch(kid):
            async with self._lock:
                if self._must_fetch(kid):  # unless a concurrent request just fetched
                    await self._fetch()
        if not self._keys:
            raise KeysUnavailable("The identity provider's signing keys are unavailable.")
        return self._keys.get(kid)

    def _must_fetch(self, kid: str) -> bool:
        now = self._clock()
        if now >= self._expires_at:
            return True
        return kid not in self._keys and now - self._fetched_at >= self.cooldown

    async def _fetch(self) -> None:
        self._fetched_at = now = self._clock()
        headers = {"Accept": "application/jwk-set+json, application/json"}
        if self._etag and self._keys:
            headers["If-None-Match"] = self._etag
        try:
            async with httpx.AsyncClient(timeout=FETCH_TIMEOUT) as client:
                response = await client.get(self.url, headers=headers)
            if response.status_code != 304 or not self._keys:
                response.raise_for_status()
                self._keys = _public_keys(response.json())
                self._etag = response.headers.get("etag")
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("JWKS fetch from %s failed (%s); keeping %d keys", self.url, exc, len(self._keys))
            self._expires_at = now + self.cooldown  # try again later, not on every request
            return
        self._expires_at = now + _max_age(response.headers.get("cache-control"))


# --- the token ---------------------------------------------------------------------------------

# base64url to base64 for binascii; "+", "/" and "=" are not base64url, so they become "!", which
# binascii's strict mode refuses like any other byte outside the alphabet.
_FROM_BASE64URL = bytes.maketrans(b"-_+/=", b"+/!!!")
# By length % 4, the characters a segment may end with: the unused low bits must be zero, so
# that each byte string has exactly one encoding (length % 4 == 1 is never valid).
_LAST_CHARACTERS = {2: b"AQgw", 3: b"AEIMQUYcgkosw048"}
_PADDING = {0: b"", 2: b"==", 3: b"="}
_json_decode = json.JSONDecoder().decode  # JSON text is UTF-8 (RFC 8259 §8.1): no BOM, no UTF-16


def _b64decode(segment: bytes) -> bytes:
    """Strict base64url without padding (RFC 7515 §2): no ``=``, ``+``, ``/``, whitespace or
    non-canonical last character; ``ValueError`` otherwise."""
    rest = len(segment) % 4
    if rest == 1 or (rest and segment[-1:] not in _LAST_CHARACTERS[rest]):
        raise ValueError("not base64url")
    return binascii.a2b_base64(segment.translate(_FROM_BASE64URL) + _PADDING[rest], strict_mode=True)


def _header_str(value: object) -> str | None:
    return None if isinstance(value, str) else "must be a str"


def _header_url(value: object) -> str | None:
    if not isinstance(value, str):
        return "must be a str"
    return None if value.startswith(("http://", "https://")) else "must be a URL"


def _header_jwk(value: object) -> str | None:
    return None if isinstance(value, dict) else "must be a JWK"


def _header_str_list(value: object) -> str | None:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return None
    return "must be a list[str]"


def _header_bool(value: object) -> str | None:
    return None if isinstance(value, bool) else "must be an bool"


# The JWS header parameters we know (RFC 7515 §4.1, RFC 7797), each with the check of its value
# (the problem, worded as joserfc words it, or None). A token with any other parameter is refused:
# we cannot honour what we do not understand. jku, jwk, x5u and x5c are never used.
HEADER_PARAMETERS: dict[str, Callable[[object], str | None]] = {
    "alg": _header_str,
    "jku": _header_url,
    "jwk": _header_jwk,
    "kid": _header_str,
    "x5u": _header_url,
    "x5c": _header_str_list,
    "x5t": _header_str,
    "x5t#S256": _header_str,
    "typ": _header_str,
    "cty": _header_str,
    "crit": _header_str_list,
    "b64": _header_bool,
}
_ROUTING_PARAMETERS = frozenset({"alg", "kid", "typ"})  # checked before the key is looked up


def _header_problem(header: dict[str, Any]) -> str | None:
    """What is wrong with a header beyond ``alg``, ``kid`` and ``typ``: a ``crit`` extension we do
    not understand (RFC 7515 §4.1.11), a malformed value, an unknown parameter."""
    crit = header.get("crit")
    if isinstance(crit, list) and all(isinstance(name, str) for name in crit):
        if missing := [name for name in crit if name not in header]:
            return f"Missing critical '{','.join(missing)}' value in header"
        if unsupported := [name for name in crit if name not in HEADER_PARAMETERS]:
            return f"Unsupported {unsupported} in header"
    for name, check in HEADER_PARAMETERS.items():
        if name in header and (problem := check(header[name])):
            return f"'{name}' in header {problem}"
    if unknown := set(header) - HEADER_PARAMETERS.keys():
        return f"Unsupported {unknown} in header"
    return None


def _is_numeric_date(value: object) -> bool:
    """A JSON number, not a boolean, NaN or an infinity (RFC 7519 §2)."""
    if type(value) is int:  # not isinstance: True and False are ints too
        return True
    return isinstance(value, float) and math.isfinite(value)


_REQUIRED_CLAIMS = ("aud", "exp", "iat", "iss", "sub")


def _invalid(description: str) -> AuthError:
    return AuthError(f"The access token is invalid ({description}).")


def _split(token: str) -> tuple[dict[str, Any], bytes, bytes, bytes]:
    """(header, payload, signing input, signature segment) of a compact JWS (RFC 7515 §7.1), each
    segment decoded once; nothing is verified yet. :class:`AuthError` if it is not one."""
    data = token.encode("ascii", "replace")  # any other character is refused below, as "?"
    segments = data.split(b".")
    if len(segments) != 3 or len(segments[0]) > MAX_HEADER_LENGTH or len(segments[2]) > MAX_SIGNATURE_LENGTH:
        raise AuthError("The access token is malformed.")
    header_segment, payload_segment, signature_segment = segments
    try:
        header = _json_decode(_b64decode(header_segment).decode())
        payload = _b64decode(payload_segment)
    except ValueError as exc:  # also bad JSON or UTF-8
        raise AuthError("The access token is malformed.") from exc
    # A JWS header is a JSON object with an alg; b64=false (RFC 7797) is no JWT (RFC 7519 §7.2).
    if not isinstance(header, dict) or "alg" not in header or header.get("b64", True) is not True:
        raise AuthError("The access token is malformed.")
    return header, payload, data[: len(header_segment) + 1 + len(payload_segment)], signature_segment


def _check_times(claims: dict[str, Any]) -> None:
    """exp, nbf (if any) and iat are NumericDates, and now is within them give or take the leeway."""
    exp, iat = claims["exp"], claims["iat"]
    now = int(time.time())
    if not _is_numeric_date(exp):
        raise _invalid("Claim 'exp' must be a NumericDate value")
    if exp <= now - LEEWAY_SECONDS:
        raise AuthError("The access token has expired.")
    if "nbf" in claims:
        nbf = claims["nbf"]
        if not _is_numeric_date(nbf):
            raise _invalid("Claim 'nbf' must be a NumericDate value")
        if nbf > now + LEEWAY_SECONDS:
            raise _invalid("The token is not yet valid")
    if not _is_numeric_date(iat):
        raise _invalid("Claim 'iat' must be a NumericDate value")
    if iat > now + LEEWAY_SECONDS:
        raise _invalid("The token was issued in the future")


_bearer = HTTPBearer(auto_error=False, description="An access token issued by the IdP")


class IdPAuth:
    """The dependency: ``user: Annotated[User, Depends(auth)]`` (one instance per app)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.jwks = JWKSCache(settings.jwks_url, cooldown=settings.jwks_cooldown)

    @classmethod
    def from_env(cls) -> Self:
        return cls(Settings.from_env())

    async def __call__(
        self, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> User:
        if credentials is None:
            raise AuthError("A Bearer access token is required.")
        return await self.verify(credentials.credentials)

    async def verify(self, token: str) -> User:
        """The user of a valid access token, or :class:`AuthError`."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise AuthError("The access token is too long.")
        # 1. Split and decode once; nothing in the token is trusted yet.
        header, payload, signing_input, signature_segment = _split(token)

        # 2. Route: typ, alg pinned by us (never "none" or HS256), kid bound to that alg.
        typ, alg, kid = header.get("typ"), header.get("alg"), header.get("kid")
        if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
            raise AuthError("This is not an access token (typ must be at+jwt).")
        if alg not in self.settings.algorithms:
            raise AuthError("The token's signing algorithm is not accepted.")
        key = await self.jwks.get(kid) if isinstance(kid, str) else None
        if key is None or key.alg not in (None, alg):
            raise AuthError("The token's signing key is unknown.")
        if not header.keys() <= _ROUTING_PARAMETERS and (problem := _header_problem(header)):
            raise _invalid(problem)
        if key.algorithm != alg or not key.can_verify:  # an ES256 token under an Ed25519 kid…
            raise _invalid(key.refusal(alg))

        # 3. The signature over the two first segments, exactly as received.
        try:
            key.check(_b64decode(signature_segment), signing_input)
        except (ValueError, InvalidSignature):
            raise _invalid("bad_signature") from None

        # 4. The claims (RFC 7519 §4.1, RFC 9068 §4), only now that they are the IdP's.
        try:
            claims = _json_decode(payload.decode())
        except (ValueError, RecursionError):
            raise _invalid("invalid_payload") from None
        if not isinstance(claims, dict):
            raise _invalid("invalid_payload")
        self._check_claims(claims)
        _check_times(claims)
        email, roles = claims.get("email"), claims.get("roles", [])
        if not (email is None or isinstance(email, str)) or not isinstance(roles, list):
            raise AuthError("The access token's claims are malformed.")
        if not all(isinstance(role, str) for role in roles):
            raise AuthError("The access token's claims are malformed.")
        return User(id=claims["sub"], email=email, roles=tuple(roles), claims=claims)

    def _check_claims(self, claims: dict[str, Any]) -> None:
        """The required claims are there; iss, sub, aud and jti as RFC 7519 §4.1 defines them, and
        iss and aud ours (the errors are worded as by joserfc, which this kit used before)."""
        iss, sub, aud = claims.get("iss"), claims.get("sub"), claims.get("aud")
        exp, iat = claims.get("exp"), claims.get("iat")  # checked by _check_times
        if iss is None or sub is None or aud is None or exp is None or iat is None:
            missing = [name for name in _REQUIRED_CLAIMS if claims.get(name) is None]
            raise _invalid(f"Missing claim: '{','.join(missing)}'")
        if not isinstance(iss, str):
            raise _invalid("Claim 'iss' must be a StringOrURI value")
        if not iss or iss != self.settings.issuer:
            raise _invalid("Invalid claim: 'iss'")
        if not isinstance(sub, str):
            raise _invalid("Claim 'sub' must be a StringOrURI value")
        if not sub:
            raise _invalid("Invalid claim: 'sub'")
        if isinstance(aud, str):
            if not aud or aud != self.settings.audience:
                raise _invalid("Invalid claim: 'aud'")
        elif isinstance(aud, list) and all(isinstance(item, str) for item in aud):
            if self.settings.audience not in aud:
                raise _invalid("Invalid claim: 'aud'")
        else:
            raise _invalid("Claim 'aud' must be an array of StringOrURI value or a single StringOrURI value")
        if "jti" in claims and not isinstance(claims["jti"], str):
            raise _invalid("Claim 'jti' must be a string")
