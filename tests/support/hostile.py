"""Forged and malformed access tokens (RFC 8725 attacks), shared by unit and HTTP tests."""

from __future__ import annotations

import base64
import json

from joserfc import jws, jwt
from joserfc.jwk import OctKey, OKPKey

from service.clock import Clock
from service.keys.keyring import KeyRing
from service.tokens.access import AccessTokens

__all__ = ["HOSTILE", "Forger", "b64", "b64_json", "hostile_tokens"]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64_json(value: object) -> str:
    return b64(json.dumps(value).encode())


class Forger:
    """Signs what it is told with the keyring's own current key (or no key at all)."""

    def __init__(
        self,
        ring: KeyRing,
        tokens: AccessTokens,
        clock: Clock,
        *,
        issuer: str,
        audience: str,
        subject: str = "user-1",
    ) -> None:
        self.ring = ring
        self.tokens = tokens
        self.clock = clock
        self.issuer = issuer
        self.audience = audience
        self.subject = subject

    def issue(self) -> str:
        return self.tokens.issue(subject=self.subject, email="a@example.com", roles=["admin"], sid="s1").token

    def claims(self) -> dict[str, object]:
        now = int(self.clock())
        return {
            "iss": self.issuer,
            "sub": self.subject,
            "aud": self.audience,
            "exp": now + 900,
            "iat": now,
            "jti": "j",
        }

    def sign_raw(self, header: dict[str, object], claims: dict[str, object]) -> str:
        """Sign without joserfc's header checks, to forge headers joserfc would refuse to make."""
        signing_input = f"{b64_json(header)}.{b64_json(claims)}"
        private = self.ring.signing_key().key.get_op_key("sign")
        return f"{signing_input}.{b64(private.sign(signing_input.encode()))}"  # type: ignore[union-attr,call-arg]

    def sign(self, header: dict[str, object], claims: dict[str, object]) -> str:
        loaded = self.ring.signing_key()
        return jwt.encode(header, claims, loaded.key, algorithms=[loaded.stored.alg])


def hostile_tokens(fx: Forger) -> dict[str, str]:
    good = fx.issue()
    head, payload, signature = good.split(".")
    kid = fx.ring.signing_key().stored.kid
    public_jwk = json.loads(fx.ring.jwks_body)["keys"][0]
    claims = fx.claims()
    hs_key = OctKey.import_key(json.dumps(public_jwk).encode())
    other = OKPKey.generate_key("Ed25519")
    tampered_claims = dict(json.loads(base64.urlsafe_b64decode(payload + "==")), sub="admin")
    return {
        "alg-none": f"{b64_json({'alg': 'none', 'kid': kid, 'typ': 'at+jwt'})}.{payload}.",
        "hs256-with-public-key": jws.serialize_compact(
            {"alg": "HS256", "kid": kid, "typ": "at+jwt"},
            json.dumps(claims).encode(),
            hs_key,
            algorithms=["HS256"],
        ),
        "unknown-kid": jwt.encode(
            {"alg": "EdDSA", "kid": "nope", "typ": "at+jwt"}, claims, other, algorithms=["EdDSA"]
        ),
        "embedded-jwk": jwt.encode(
            {"alg": "EdDSA", "typ": "at+jwt", "jwk": other.as_dict(private=False)},
            claims,
            other,
            algorithms=["EdDSA"],
        ),
        "jku-injection": jwt.encode(
            {"alg": "EdDSA", "kid": "x", "typ": "at+jwt", "jku": "http://127.0.0.1:1/jwks"},
            claims,
            other,
            algorithms=["EdDSA"],
        ),
        "x5u-injection": jwt.encode(
            {"alg": "EdDSA", "kid": "x", "typ": "at+jwt", "x5u": "http://127.0.0.1:1/cert.pem"},
            claims,
            other,
            algorithms=["EdDSA"],
        ),
        "x5c-injection": fx.sign_raw(
            {"alg": "EdDSA", "kid": "x", "typ": "at+jwt", "x5c": ["MIIBfake"]}, claims
        ),
        "crit-unknown": fx.sign_raw(
            {"alg": "EdDSA", "kid": kid, "typ": "at+jwt", "crit": ["x-must"], "x-must": 1}, claims
        ),
        "typ-jwt": fx.sign({"alg": "EdDSA", "kid": kid, "typ": "JWT"}, claims),
        "typ-missing": fx.sign({"alg": "EdDSA", "kid": kid}, claims),
        "wrong-iss": fx.sign(
            {"alg": "EdDSA", "kid": kid, "typ": "at+jwt"}, {**claims, "iss": "https://evil"}
        ),
        "wrong-aud": fx.sign({"alg": "EdDSA", "kid": kid, "typ": "at+jwt"}, {**claims, "aud": "other"}),
        "expired": fx.sign(
            {"alg": "EdDSA", "kid": kid, "typ": "at+jwt"}, {**claims, "exp": int(fx.clock()) - 31}
        ),
        "nbf-future": fx.sign(
            {"alg": "EdDSA", "kid": kid, "typ": "at+jwt"}, {**claims, "nbf": int(fx.clock()) + 120}
        ),
        "no-sub": fx.sign(
            {"alg": "EdDSA", "kid": kid, "typ": "at+jwt"}, {k: v for k, v in claims.items() if k != "sub"}
        ),
        "tampered-payload": f"{head}.{b64_json(tampered_claims)}.{signature}",
        "truncated": good[: len(good) // 2],
        "oversized": f"{head}.{'A' * 10000}.{signature}",
        "not-base64": f"{head}.@@@@.{signature}",
        "header-not-json": f"{b64(b'not json')}.{payload}.{signature}",
        "header-array": f"{b64_json([1])}.{payload}.{signature}",
        "empty": "",
        "four-parts": f"{good}.x",
    }


HOSTILE = [
    "x5u-injection",
    "x5c-injection",
    "alg-none", "hs256-with-public-key", "unknown-kid", "embedded-jwk", "jku-injection", "crit-unknown",
    "typ-jwt", "typ-missing", "wrong-iss", "wrong-aud", "expired", "nbf-future", "no-sub",
    "tampered-payload", "truncated", "oversized", "not-base64", "header-not-json", "header-array", "empty",
    "four-parts",
]  # fmt: skip
