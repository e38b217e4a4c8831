"""``private_key_jwt`` client authentication (RFC 7523 §2.2, OpenID Connect Core §9).

The client signs a short JWT with a key it registered (a public JWKS): ``iss`` = ``sub`` = its
id, ``aud`` our issuer or token endpoint, ``exp`` at most 5 minutes ahead, a ``jti`` that is
remembered until ``exp`` so an assertion is accepted once (the replay cache of token exchange).
Only RS256 and ES256; the key is looked up in the client's own JWKS, never fetched.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

import msgspec
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from service import bounded_json
from service.clock import Clock
from service.errors import InvalidClient, InvalidRequest
from service.store.exchange import ReplayCache
from service.store.sessions import Client

__all__ = ["ASSERTION_TYPE", "ClientAssertions", "check_jwks"]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = ("RS256", "ES256")
MAX_LIFETIME = 300
LEEWAY = 30
MAX_ASSERTION = 8192
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def check_jwks(document: str) -> str:
    """A registration's JWKS: public RSA, EC or OKP keys only; returns it normalised."""
    try:
        keys = json.loads(document)["keys"]
        if not isinstance(keys, list) or not keys or len(keys) > 10:
            raise InvalidRequest("jwks must hold 1 to 10 keys.")
        if any(not isinstance(key, dict) or PRIVATE_MEMBERS & set(key) for key in keys):
            raise InvalidRequest("jwks must hold public keys only.")
        KeySet.import_key_set({"keys": keys})
    except (ValueError, KeyError, TypeError, JoseError) as exc:
        raise InvalidRequest("jwks is not a JSON Web Key Set.") from exc
    return json.dumps({"keys": keys}, separators=(",", ":"), sort_keys=True)


class ClientAssertions:
    def __init__(self, *, replay: ReplayCache, audiences: tuple[str, ...], clock: Clock) -> None:
        self._replay = replay
        self._audiences = frozenset(audiences)
        self._clock = clock

    async def verify(self, client: Client | None, assertion: str) -> Client:
        """The client, if ``assertion`` is a fresh, unused assertion signed by one of its keys."""
        if client is None or client.token_endpoint_auth_method != "private_key_jwt" or client.jwks is None:
            raise InvalidClient
        claims = self._verified_claims(client, assertion)
        now = self._clock()
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or not now - LEEWAY < exp <= now + MAX_LIFETIME + LEEWAY:
            raise InvalidClient("The client assertion is expired or lives too long.")
        audience = claims.get("aud")
        audiences = (
            {audience}
            if isinstance(audience, str)
            else set(audience)
            if isinstance(audience, list)
            else set()
        )
        if (
            claims.get("iss") != client.id
            or claims.get("sub") != client.id
            or not audiences & self._audiences
        ):
            raise InvalidClient("The client assertion's iss, sub or aud is wrong.")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise InvalidClient("The client assertion needs a jti.")
        fingerprint = "pkj:" + hashlib.sha256(f"{client.id}\0{jti}".encode()).hexdigest()
        if not await self._replay.remember(fingerprint, expires_at=exp + LEEWAY, now=now):
            raise InvalidClient("This client assertion was already used.")
        return client

    @staticmethod
    def _verified_claims(client: Client, assertion: str) -> dict[str, object]:
        if len(assertion) > MAX_ASSERTION or assertion.count(".") != 2:
            raise InvalidClient
        segment = assertion.split(".", 1)[0]
        try:
            header = bounded_json.decode(
                base64.urlsafe_b64decode((segment + "=" * (-len(segment) % 4)).encode())
            )
            keys = KeySet.import_key_set(msgspec.json.decode(client.jwks or ""))
        except (ValueError, binascii.Error, msgspec.DecodeError, JoseError) as exc:
            raise InvalidClient from exc
        if not isinstance(header, dict) or header.get("alg") not in ALGORITHMS:
            raise InvalidClient("The client assertion's algorithm is not accepted.")
        try:
            return jwt.decode(assertion, keys, algorithms=[header["alg"]]).claims
        except (JoseError, ValueError, RecursionError) as exc:
            raise InvalidClient("The client assertion's signature does not verify.") from exc
