"""Property tests (Hypothesis) for the parsers that see raw input first: whatever arrives, they
answer with a value or their own 4xx error, never another exception."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import urlencode

import hypothesis
import msgspec
import pytest
from hypothesis import strategies as st

from service.clock import FrozenClock
from service.emails import normalize_email
from service.errors import InvalidEmail, InvalidGrant, InvalidRequest, InvalidToken
from service.grants import parse_form
from service.keys.files import generate_key
from service.keys.keyring import KeyRing
from service.tokens.access import AccessTokens
from service.tokens.refresh import hash_secret, new_family_id, new_token, parse_token

SETTINGS = hypothesis.settings(max_examples=300, deadline=None, database=None)


@SETTINGS
@hypothesis.given(st.text(max_size=300))
def test_normalize_email_total(raw: str) -> None:
    """Any text: a (typed, key) pair whose key is stable under renormalisation, or InvalidEmail."""
    try:
        typed, key = normalize_email(raw)
    except InvalidEmail:
        return
    assert typed == raw.strip()
    assert normalize_email(key)[1] == key


@SETTINGS
@hypothesis.given(st.emails())
def test_valid_emails_are_accepted(email: str) -> None:
    """Addresses Hypothesis considers valid are accepted (or refused only by our length caps)."""
    try:
        _, key = normalize_email(email)
    except InvalidEmail:
        assert len(email) > 254 or len(email.rpartition("@")[0]) > 64 or email.rpartition(".")[2].isdigit()
        return
    assert "@" in key


@SETTINGS
@hypothesis.given(st.text(max_size=100))
def test_parse_refresh_token_total(raw: str) -> None:
    """Random strings never parse as refresh tokens by accident, and never crash."""
    with pytest.raises(InvalidGrant):
        parse_token(raw)


def test_refresh_token_round_trip() -> None:
    """A minted token parses back to its family and secret hash."""
    family = new_family_id()
    token, token_hash = new_token(family)
    parsed_family, secret = parse_token(token)
    assert (parsed_family, hash_secret(secret)) == (family, token_hash)


@pytest.fixture(scope="module")
def access_tokens(tmp_path_factory: pytest.TempPathFactory) -> AccessTokens:
    folder: Path = tmp_path_factory.mktemp("keys")
    clock = FrozenClock(1_800_000_000.0)
    generate_key(folder, "EdDSA", clock())
    ring = KeyRing(folder, clock)
    ring.refresh()
    return AccessTokens(keyring=ring, issuer="https://id.example.com", audience="api", ttl=900, clock=clock)


def _segment(value: object) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(value)).rstrip(b"=").decode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@SETTINGS
@hypothesis.given(
    st.text(max_size=400) | st.builds(lambda h, p, s: f"{h}.{p}.{s}", st.text(), st.text(), st.text())
)
def test_verify_random_strings(access_tokens: AccessTokens, token: str) -> None:
    """Garbage in the Authorization header is InvalidToken, nothing else."""
    with pytest.raises(InvalidToken):
        access_tokens.verify(token)


@SETTINGS
@hypothesis.given(json_values, json_values, st.binary(max_size=80))
@hypothesis.example(header={"typ": ["at+jwt"]}, payload={}, sig=b"")  # found by Hypothesis: a 500
@hypothesis.example(header={"typ": {"a": 1}, "kid": ["k"]}, payload=[], sig=b"x")
def test_verify_structured_forgeries(
    access_tokens: AccessTokens, header: object, payload: object, sig: bytes
) -> None:
    """Well-formed JWS shapes with arbitrary JSON header and payload: still InvalidToken."""
    token = f"{_segment(header)}.{_segment(payload)}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"
    with pytest.raises(InvalidToken):
        access_tokens.verify(token)


@SETTINGS
@hypothesis.given(st.binary(max_size=300))
def test_form_bodies(body: bytes) -> None:
    """OAuth form parsing of arbitrary bytes: a dict of strings, or invalid_request."""
    try:
        params = parse_form(body)
    except InvalidRequest:
        return
    assert all(isinstance(key, str) and isinstance(value, str) for key, value in params.items())


@SETTINGS
@hypothesis.given(st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=20), max_size=8))
def test_form_round_trip(params: dict[str, str]) -> None:
    """Whatever a client encodes is read back unchanged."""
    assert parse_form(urlencode(params).encode()) == params
