"""Access-token issuing and the hostile-token checks of RFC 8725 and RFC 9068."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from joserfc import jws, jwt
from joserfc.jwk import OctKey, OKPKey

from service.clock import FrozenClock
from service.errors import InvalidToken
from service.keys.files import Alg, generate_key
from service.keys.keyring import KeyRing
from service.tokens.access import AccessTokens

T0 = 1_800_000_000.0
ISSUER = "https://id.example.com"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64_json(value: object) -> str:
    return b64(json.dumps(value).encode())


class Fixture:
    def __init__(self, tmp_path: Path, alg: Alg = "EdDSA") -> None:
        self.clock = FrozenClock(T0)
        generate_key(tmp_path, alg, T0)
        self.ring = KeyRing(tmp_path, self.clock)
        self.ring.refresh()
        self.tokens = AccessTokens(
            keyring=self.ring, issuer=ISSUER, audience="api", ttl=900, clock=self.clock
        )

    def issue(self) -> str:
        return self.tokens.issue(subject="user-1", email="a@example.com", roles=["admin"], sid="s1").token

    def claims(self) -> dict[str, object]:
        return {
            "iss": ISSUER,
            "sub": "user-1",
            "aud": "api",
            "exp": int(T0) + 900,
            "iat": int(T0),
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


@pytest.mark.parametrize("alg", ["EdDSA", "RS256", "ES256"])
def test_issued_token_has_rfc9068_shape(tmp_path: Path, alg: Alg) -> None:
    """Header {alg, kid, typ: at+jwt}; the listed claims and nothing else from the user."""
    fx = Fixture(tmp_path, alg)
    token = fx.issue()
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": alg, "kid": fx.ring.signing_key().stored.kid, "typ": "at+jwt"}
    claims = fx.tokens.verify(token)
    assert (claims.iss, claims.sub, claims.aud, claims.sid) == (ISSUER, "user-1", "api", "s1")
    assert (claims.exp - claims.iat, claims.email, claims.roles) == (900, "a@example.com", ["admin"])
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert set(payload) == {"iss", "sub", "aud", "exp", "iat", "jti", "sid", "email", "roles"}


def test_expiry_uses_the_injected_clock_with_bounded_leeway(tmp_path: Path) -> None:
    """Valid until exp + 30 s leeway, refused after, without sleeping."""
    fx = Fixture(tmp_path)
    token = fx.issue()
    fx.clock.advance(900 + 29)
    fx.tokens.verify(token)
    fx.clock.advance(1)
    with pytest.raises(InvalidToken):
        fx.tokens.verify(token)


def hostile_tokens(fx: Fixture, tmp_path: Path) -> dict[str, str]:
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
        "crit-unknown": fx.sign_raw(
            {"alg": "EdDSA", "kid": kid, "typ": "at+jwt", "crit": ["x-must"], "x-must": 1}, claims
        ),
        "typ-jwt": fx.sign({"alg": "EdDSA", "kid": kid, "typ": "JWT"}, claims),
        "typ-missing": fx.sign({"alg": "EdDSA", "kid": kid}, claims),
        "wrong-iss": fx.sign(
            {"alg": "EdDSA", "kid": kid, "typ": "at+jwt"}, {**claims, "iss": "https://evil"}
        ),
        "wrong-aud": fx.sign({"alg": "EdDSA", "kid": kid, "typ": "at+jwt"}, {**claims, "aud": "other"}),
        "expired": fx.sign({"alg": "EdDSA", "kid": kid, "typ": "at+jwt"}, {**claims, "exp": int(T0) - 31}),
        "nbf-future": fx.sign(
            {"alg": "EdDSA", "kid": kid, "typ": "at+jwt"}, {**claims, "nbf": int(T0) + 120}
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
    "alg-none", "hs256-with-public-key", "unknown-kid", "embedded-jwk", "jku-injection", "crit-unknown",
    "typ-jwt", "typ-missing", "wrong-iss", "wrong-aud", "expired", "nbf-future", "no-sub",
    "tampered-payload", "truncated", "oversized", "not-base64", "header-not-json", "header-array", "empty",
    "four-parts",
]  # fmt: skip


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_tokens_are_refused(tmp_path: Path, case: str) -> None:
    """Each forged or malformed token raises InvalidToken (and only that)."""
    fx = Fixture(tmp_path)
    tokens = hostile_tokens(fx, tmp_path)
    assert set(tokens) == set(HOSTILE)
    with pytest.raises(InvalidToken):
        fx.tokens.verify(tokens[case])
