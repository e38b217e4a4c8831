"""Verify the IdP's access tokens offline: a FastAPI dependency to copy into your API.

    auth = IdPAuth.from_env()
    app.add_exception_handler(AuthError, auth_error_response)

    @app.get("/things")
    async def things(user: Annotated[User, Depends(auth)]) -> ...

Checks, in order (RFC 9068, RFC 8725): ``typ`` is ``at+jwt``; ``alg`` is one of the pinned
algorithms; ``kid`` names a key of the IdP's JWKS bound to that ``alg``; the signature; ``iss``
exactly; our audience in ``aud``; ``exp``, ``nbf`` and ``iat`` with a 30 s leeway. The user
comes only from the verified claims. Nothing is sent to the IdP per request: a revoked
session or a disabled account is noticed only when the token expires (15 min by default).
"""

import asyncio
import logging
import math
import os
import re
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Self

import httpx
from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from joserfc import jws, jwt
from joserfc.errors import ExpiredTokenError, JoseError, SecurityWarning
from joserfc.jwk import Key, import_key
from joserfc.jwt import JWTClaimsRegistry

__all__ = ["AuthError", "IdPAuth", "JWKSCache", "KeysUnavailable", "Settings", "User", "auth_error_response"]

# joserfc warns on every EdDSA use since RFC 9864 named it Ed25519. The IdP signs with "EdDSA"
# on purpose (the name most libraries know today), so silence exactly that notice.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)

log = logging.getLogger("idp_auth")

SUPPORTED_ALGORITHMS = ("EdDSA", "ES256", "RS256")  # asymmetric only: never HS256 or "none"
ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")  # RFC 9068 §4
LEEWAY_SECONDS = 30
MAX_TOKEN_LENGTH = 8192
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


def _public_keys(document: object) -> dict[str, Key]:
    """The usable signing keys of a JWKS document, by kid (never a private or symmetric key)."""
    members = document.get("keys") if isinstance(document, dict) else None
    keys: dict[str, Key] = {}
    for jwk in members if isinstance(members, list) else []:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            continue
        if jwk.get("kty") not in {"OKP", "EC", "RSA"} or "d" in jwk or jwk.get("use", "sig") != "sig":
            continue
        try:
            keys[jwk["kid"]] = import_key(jwk)
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
        self._keys: dict[str, Key] = {}
        self._etag: str | None = None
        self._expires_at = -math.inf
        self._fetched_at = -math.inf  # the last attempt, successful or not
        self._lock = asyncio.Lock()

    async def get(self, kid: str) -> Key | None:
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


_bearer = HTTPBearer(auto_error=False, description="An access token issued by the IdP")


class IdPAuth:
    """The dependency: ``user: Annotated[User, Depends(auth)]`` (one instance per app)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.jwks = JWKSCache(settings.jwks_url, cooldown=settings.jwks_cooldown)
        self._claims = JWTClaimsRegistry(
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": settings.issuer},
            aud={"essential": True, "value": settings.audience},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
        )

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
        try:
            header = jws.extract_compact(token.encode()).headers()  # not verified yet: only routing
        except (JoseError, ValueError) as exc:
            raise AuthError("The access token is malformed.") from exc
        typ, alg, kid = header.get("typ"), header.get("alg"), header.get("kid")
        if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
            raise AuthError("This is not an access token (typ must be at+jwt).")
        if alg not in self.settings.algorithms:
            raise AuthError("The token's signing algorithm is not accepted.")
        key = await self.jwks.get(kid) if isinstance(kid, str) else None
        if key is None or key.alg not in (None, alg):
            raise AuthError("The token's signing key is unknown.")
        try:
            claims = jwt.decode(token, key, algorithms=[alg]).claims
            self._claims.validate(claims)
        except ExpiredTokenError as exc:
            raise AuthError("The access token has expired.") from exc
        except JoseError as exc:  # bad signature, wrong iss or aud, missing claim, nbf in the future…
            raise AuthError(f"The access token is invalid ({exc.description or exc.error}).") from exc
        except ValueError as exc:
            raise AuthError("The access token is malformed.") from exc
        email, roles = claims.get("email"), claims.get("roles", [])
        if not (email is None or isinstance(email, str)) or not isinstance(roles, list):
            raise AuthError("The access token's claims are malformed.")
        if not all(isinstance(role, str) for role in roles):
            raise AuthError("The access token's claims are malformed.")
        return User(id=str(claims["sub"]), email=email, roles=tuple(roles), claims=claims)
