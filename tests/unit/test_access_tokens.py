"""Access-token issuing and the hostile-token checks of RFC 8725 and RFC 9068."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from service.clock import FrozenClock
from service.errors import InvalidToken
from service.keys.files import Alg, generate_key
from service.keys.keyring import KeyRing
from service.tokens.access import AccessTokens
from tests.support.hostile import HOSTILE, Forger, hostile_tokens

T0 = 1_800_000_000.0
ISSUER = "https://id.example.com"


class Fixture(Forger):
    def __init__(self, tmp_path: Path, alg: Alg = "EdDSA") -> None:
        clock = FrozenClock(T0)
        generate_key(tmp_path, alg, T0)
        ring = KeyRing(tmp_path, clock)
        ring.refresh()
        tokens = AccessTokens(keyring=ring, issuer=ISSUER, audience="api", ttl=900, clock=clock)
        super().__init__(ring, tokens, clock, issuer=ISSUER, audience="api")
        self.clock: FrozenClock = clock


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
    assert set(payload) == {"iss", "sub", "aud", "exp", "iat", "jti", "sid", "client_id", "email", "roles"}
    assert payload["client_id"] == "first-party"


def test_expiry_uses_the_injected_clock_with_bounded_leeway(tmp_path: Path) -> None:
    """Valid until exp + 30 s leeway, refused after, without sleeping."""
    fx = Fixture(tmp_path)
    token = fx.issue()
    fx.clock.advance(900 + 29)
    fx.tokens.verify(token)
    fx.clock.advance(1)
    with pytest.raises(InvalidToken):
        fx.tokens.verify(token)


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_tokens_are_refused(tmp_path: Path, case: str) -> None:
    """Each forged or malformed token raises InvalidToken (and only that)."""
    fx = Fixture(tmp_path)
    tokens = hostile_tokens(fx)
    assert set(tokens) == set(HOSTILE)
    with pytest.raises(InvalidToken):
        fx.tokens.verify(tokens[case])
