"""A trusted issuer's JWKS, fetched with httpx and cached.

- Cached for the response's ``Cache-Control: max-age`` (bounded to [60 s, 1 day]; 5 minutes when
  absent, as with Better Auth).
- An unknown ``kid`` triggers a refetch at most once per ``refetch_interval`` (the start-up or
  expiry fetches do not count), so forged kids cannot make us hammer the issuer.
- Concurrent fetches collapse into one; every fetch has a timeout.
- Fail closed: no usable key means the token is refused, never accepted.
"""

from __future__ import annotations

import asyncio
import re

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey, import_key
from prometheus_client import Counter

from service import bounded_json
from service.clock import Clock

__all__ = ["JWKSUnavailable", "RemoteJWKS"]

PublicKey = OKPKey | RSAKey | ECKey
DEFAULT_TTL = 300.0
MIN_TTL = 60.0
MAX_TTL = 86_400.0
MAX_JWKS_BYTES = 256 * 1024
MAX_JWKS_DEPTH = 4
"""A JWKS is an object of an array of key objects (``x5c`` is an array inside those)."""
MAX_KEYS = 64
_MAX_AGE = re.compile(r"max-age\s*=\s*(\d+)", re.IGNORECASE)

JWKS_EVENTS = Counter("idp_remote_jwks", "Remote JWKS cache lookups and fetches.", ["issuer", "event"])


class JWKSUnavailable(Exception):
    """The issuer's JWKS could not be fetched and no cached copy may be used."""


async def _read_at_most(response: httpx.Response, limit: int) -> bytes:
    """The body, refused once it grows past ``limit`` (never read whole first)."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise ValueError(f"JWKS larger than {limit} bytes")
    return bytes(body)


def _ttl(cache_control: str | None) -> float:
    if not cache_control:
        return DEFAULT_TTL
    if "no-store" in cache_control or "no-cache" in cache_control:
        return MIN_TTL
    match = _MAX_AGE.search(cache_control)
    return min(max(float(match.group(1)), MIN_TTL), MAX_TTL) if match else DEFAULT_TTL


class RemoteJWKS:
    def __init__(
        self,
        *,
        issuer: str,
        url: str,
        http: httpx.AsyncClient,
        clock: Clock,
        refetch_interval: float = 30.0,
    ) -> None:
        self._issuer = issuer
        self._url = url
        self._http = http
        self._clock = clock
        self._refetch_interval = refetch_interval
        self._keys: dict[str, PublicKey] = {}
        self._expires_at = 0.0
        self._last_unknown_kid_fetch = float("-inf")
        self._inflight: asyncio.Task[None] | None = None

    async def key(self, kid: str) -> PublicKey | None:
        """The issuer's key for ``kid``; None if the issuer does not publish it."""
        now = self._clock()
        if now >= self._expires_at:
            await self._fetch()
        elif kid not in self._keys and now - self._last_unknown_kid_fetch >= self._refetch_interval:
            self._last_unknown_kid_fetch = now
            JWKS_EVENTS.labels(self._issuer, "unknown_kid_refetch").inc()
            await self._fetch()
        else:
            JWKS_EVENTS.labels(self._issuer, "hit").inc()
        return self._keys.get(kid)

    async def _fetch(self) -> None:
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.ensure_future(self._download())
        await asyncio.shield(self._inflight)

    async def _download(self) -> None:
        JWKS_EVENTS.labels(self._issuer, "fetch").inc()
        try:
            async with self._http.stream(
                "GET", self._url, headers={"Accept": "application/json"}
            ) as response:
                response.raise_for_status()
                body = await _read_at_most(response, MAX_JWKS_BYTES)
            document = bounded_json.decode(body, max_depth=MAX_JWKS_DEPTH)
        except (httpx.HTTPError, ValueError) as exc:
            JWKS_EVENTS.labels(self._issuer, "fetch_failed").inc()
            if self._clock() >= self._expires_at:
                self._keys = {}
            raise JWKSUnavailable(f"cannot fetch the JWKS of {self._issuer}: {type(exc).__name__}") from exc
        keys: dict[str, PublicKey] = {}
        entries = document.get("keys", []) if isinstance(document, dict) else []
        for entry in entries[:MAX_KEYS] if isinstance(entries, list) else []:
            if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
                continue
            public = {
                name: value for name, value in entry.items() if name not in {"d", "p", "q", "dp", "dq", "qi"}
            }
            try:
                key = import_key(public)
            except (JoseError, ValueError, TypeError):
                continue
            if isinstance(key, PublicKey):
                keys[entry["kid"]] = key
        self._keys = keys
        self._expires_at = self._clock() + _ttl(response.headers.get("cache-control"))
