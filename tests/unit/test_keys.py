"""Key files, the rotation timeline and the published JWKS."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import jwt
import msgspec
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc.jwk import import_key

from service.clock import FrozenClock
from service.keys.files import (
    PRUNE_MARGIN_SECONDS,
    Alg,
    KeyInService,
    add_signing_key,
    ensure_alg_key,
    ensure_signing_key,
    generate_key,
    load_keys,
    prune_keys,
    rotate_keys,
)
from service.keys.keyring import PRIVATE_MEMBERS, KeyRing, NoSigningKey, b64url

T0 = 1_800_000_000.0
ALGS: list[Alg] = ["EdDSA", "RS256", "ES256"]


@pytest.fixture(scope="module")
def eddsa_ring(tmp_path_factory: pytest.TempPathFactory) -> KeyRing:
    directory = tmp_path_factory.mktemp("keys")
    generate_key(directory, "EdDSA", T0)
    ring = KeyRing(directory, FrozenClock(T0))
    ring.refresh()
    return ring


@pytest.mark.parametrize("alg", ALGS)
def test_generated_key_file_is_private_and_named_by_thumbprint(tmp_path: Path, alg: Alg) -> None:
    """Files are 0600 in a 0700 folder; kid is the RFC 7638 thumbprint of the key."""
    keys_dir = tmp_path / "keys"
    stored = generate_key(keys_dir, alg, T0)
    path = keys_dir / f"{stored.kid}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    assert import_key(json.loads(path.read_text())["jwk"]).thumbprint() == stored.kid
    assert load_keys(keys_dir) == [stored]


@pytest.mark.parametrize("alg", ALGS)
def test_jwks_has_public_members_only(tmp_path: Path, alg: Alg) -> None:
    """The JWKS carries kid/alg/use and no private member, for every key type."""
    stored = generate_key(tmp_path, alg, T0)
    ring = KeyRing(tmp_path, FrozenClock(T0))
    ring.refresh()
    (published,) = msgspec.json.decode(ring.jwks_body)["keys"]
    assert (published["kid"], published["alg"], published["use"]) == (stored.kid, alg, "sig")
    assert not PRIVATE_MEMBERS & set(published)
    assert published["kty"] in {"OKP", "RSA", "EC"}


def test_rotation_timeline(tmp_path: Path) -> None:
    """Rotate: new key published at once, signs only after the delay; old key keeps verifying."""
    clock = FrozenClock(T0)
    old = generate_key(tmp_path, "EdDSA", T0)
    ring = KeyRing(tmp_path, clock)
    ring.refresh()
    clock.advance(100)
    new = rotate_keys(tmp_path, "EdDSA", clock(), delay=300)
    assert ring.refresh()
    published = {key["kid"] for key in msgspec.json.decode(ring.jwks_body)["keys"]}
    assert published == {old.kid, new.kid}
    assert ring.signing_key().stored.kid == old.kid
    clock.advance(299)
    assert ring.signing_key().stored.kid == old.kid
    clock.advance(1)
    assert ring.signing_key().stored.kid == new.kid
    assert ring.verification_key(old.kid) is not None
    states = {key.kid: key.state(clock()) for key in ring.keys}
    assert states == {old.kid: "retired", new.kid: "signing"}


def signing_counts(directory: Path, start: float, seconds: int) -> set[int]:
    """How many keys of one algorithm the folder says sign at once, at most, at every second
    of a window (as files stand now)."""
    keys = load_keys(directory)
    return {
        max(sum(key.is_signing(start + step) for key in keys if key.alg == alg) for alg in ALGS)
        for step in range(seconds)
    }


def test_add_signing_key_never_makes_two_keys_of_one_algorithm_sign(tmp_path: Path) -> None:
    """The invariant behind ``keys list``: after any sequence of generate (refused while a key
    of its algorithm signs or is staged), rotate and forced generate, at most one key of each
    algorithm signs at every instant from then on, and a refused call writes nothing. Another
    algorithm is a line of its own (the RS256 ID-token key beside EdDSA)."""
    first = add_signing_key(tmp_path, "EdDSA", T0)
    assert signing_counts(tmp_path, T0, 1000) == {1}
    with pytest.raises(KeyInService) as refused:
        add_signing_key(tmp_path, "EdDSA", T0 + 10)
    assert [key.kid for key in refused.value.keys] == [first.kid]
    assert len(load_keys(tmp_path)) == 1
    staged = rotate_keys(tmp_path, "EdDSA", T0 + 20, delay=300)
    with pytest.raises(KeyInService) as refused:
        add_signing_key(tmp_path, "EdDSA", T0 + 30)
    assert {key.kid for key in refused.value.keys} == {first.kid, staged.kid}
    rsa = add_signing_key(tmp_path, "RS256", T0 + 30)
    assert signing_counts(tmp_path, T0 + 30, 1000) == {1}
    forced = add_signing_key(tmp_path, "EdDSA", T0 + 40, force=True)
    assert signing_counts(tmp_path, T0 + 40, 1000) == {1}
    states = {key.kid: key.state(T0 + 400) for key in load_keys(tmp_path)}
    assert states == {first.kid: "retired", staged.kid: "retired", forced.kid: "signing", rsa.kid: "signing"}
    ring = KeyRing(tmp_path, FrozenClock(T0 + 400), default_alg="EdDSA")
    ring.refresh()
    assert (ring.signing_key().stored.kid, ring.signing_key("RS256").stored.kid) == (forced.kid, rsa.kid)


def test_add_signing_key_after_every_key_retired(tmp_path: Path) -> None:
    """Retired keys do not block: nothing signs, so the new key has nothing to wait for."""
    old = add_signing_key(tmp_path, "EdDSA", T0)
    replacement = add_signing_key(tmp_path, "EdDSA", T0 + 5, force=True)
    (tmp_path / f"{replacement.kid}.json").unlink()
    assert [key.state(T0 + 10) for key in load_keys(tmp_path)] == ["retired"]
    added = add_signing_key(tmp_path, "EdDSA", T0 + 10)
    assert {key.kid: key.state(T0 + 10) for key in load_keys(tmp_path)} == {
        old.kid: "retired",
        added.kid: "signing",
    }


def test_prune_waits_for_every_token_of_the_old_key_to_expire(tmp_path: Path) -> None:
    """A retired key stays until its last token expired (plus margin), then it is removed."""
    old = generate_key(tmp_path, "EdDSA", T0)
    new = rotate_keys(tmp_path, "EdDSA", T0, delay=60)
    retired_at = T0 + 60
    ttl = 900
    assert prune_keys(tmp_path, retired_at + ttl + PRUNE_MARGIN_SECONDS, ttl) == []
    removed = prune_keys(tmp_path, retired_at + ttl + PRUNE_MARGIN_SECONDS + 1, ttl)
    assert [key.kid for key in removed] == [old.kid]
    assert [key.kid for key in load_keys(tmp_path)] == [new.kid]


def test_keyring_reload_picks_up_new_files(tmp_path: Path) -> None:
    """refresh() reports no change when nothing changed and reloads when a file appears."""
    generate_key(tmp_path, "EdDSA", T0)
    ring = KeyRing(tmp_path, FrozenClock(T0))
    assert ring.refresh()
    etag = ring.jwks_etag
    assert not ring.refresh()
    rotate_keys(tmp_path, "ES256", T0, delay=300)
    assert ring.refresh()
    assert ring.jwks_etag != etag
    assert len(ring.keys) == 2


def test_empty_folder_has_no_signing_key(tmp_path: Path) -> None:
    """With no keys, signing fails loudly instead of producing unsigned tokens."""
    ring = KeyRing(tmp_path / "missing", FrozenClock(T0))
    ring.refresh()
    with pytest.raises(NoSigningKey):
        ring.signing_key()


def test_ensure_signing_key_only_generates_into_an_empty_folder(tmp_path: Path) -> None:
    """The development auto-key is made once; later starts reuse it."""
    first = ensure_signing_key(tmp_path, "EdDSA", T0)
    assert first is not None
    assert ensure_signing_key(tmp_path, "EdDSA", T0) is None
    assert [key.kid for key in load_keys(tmp_path)] == [first.kid]


@pytest.mark.parametrize("alg", ALGS)
def test_a_key_file_without_its_private_key_is_ignored_loudly(
    tmp_path: Path, alg: Alg, caplog: pytest.LogCaptureFixture
) -> None:
    """A public-only JWK in the folder (an operator's mistake) is neither published nor used to
    sign, and the log says so; the folder's real key keeps working."""
    real = generate_key(tmp_path, "EdDSA", T0 - 10)
    broken = generate_key(tmp_path, alg, T0)
    path = tmp_path / f"{broken.kid}.json"
    document = json.loads(path.read_text())
    document["jwk"] = {k: v for k, v in document["jwk"].items() if k not in PRIVATE_MEMBERS}
    path.write_text(json.dumps(document))
    ring = KeyRing(tmp_path, FrozenClock(T0 + 1))
    ring.refresh()
    assert [key["kid"] for key in msgspec.json.decode(ring.jwks_body)["keys"]] == [real.kid]
    assert ring.signing_key().stored.kid == real.kid
    assert f"key {broken.kid} is not a private {alg} key" in caplog.text


def test_rs256_line_beside_the_default_rotates_on_its_own(tmp_path: Path) -> None:
    """An RS256 key published beside EdDSA: access tokens keep EdDSA, ID tokens ask for RS256;
    rotating RS256 retires only RS256, and its successor is published before it signs."""
    clock = FrozenClock(T0)
    eddsa = generate_key(tmp_path, "EdDSA", T0)
    assert ensure_alg_key(tmp_path, "RS256", T0) is not None
    assert ensure_alg_key(tmp_path, "RS256", T0) is None
    ring = KeyRing(tmp_path, clock, default_alg="EdDSA")
    ring.refresh()
    first_rsa = ring.signing_key("RS256").stored
    assert (ring.signing_key().stored.kid, first_rsa.alg) == (eddsa.kid, "RS256")
    assert ring.signing_algs() == ["EdDSA", "RS256"]
    new = rotate_keys(tmp_path, "RS256", clock(), delay=300)
    ring.refresh()
    assert new.kid in {key["kid"] for key in msgspec.json.decode(ring.jwks_body)["keys"]}
    assert ring.signing_key("RS256").stored.kid == first_rsa.kid
    clock.advance(300)
    assert ring.signing_key("RS256").stored.kid == new.kid
    assert ring.signing_key().stored.kid == eddsa.kid
    assert {key.kid: key.state(clock()) for key in ring.keys}[eddsa.kid] == "signing"
    with pytest.raises(NoSigningKey):
        ring.signing_key("ES256")


@given(message=st.binary(max_size=2048))
@settings(max_examples=200, deadline=None)
def test_eddsa_signer_matches_cryptography_and_verifies(eddsa_ring: KeyRing, message: bytes) -> None:
    """The Ed25519 signer (libsodium) gives cryptography's signature, byte for byte (RFC 8032
    signatures are deterministic), and cryptography's public key verifies it."""
    loaded = eddsa_ring.signing_key("EdDSA")
    private = loaded.key.private_key
    assert isinstance(private, Ed25519PrivateKey)
    signature = loaded.sign(message)
    assert signature == private.sign(message)
    private.public_key().verify(signature, message)
    with pytest.raises(InvalidSignature):
        private.public_key().verify(signature, message + b"x")


def test_eddsa_token_verifies_with_pyjwt(tmp_path: Path) -> None:
    """A JWS signed by the ring's Ed25519 signer verifies with PyJWT against the published JWKS."""
    generate_key(tmp_path, "EdDSA", T0)
    ring = KeyRing(tmp_path, FrozenClock(T0))
    ring.refresh()
    loaded = ring.signing_key()
    signing_input = loaded.header_segment + b"." + b64url(b'{"sub":"u1"}')
    token = (signing_input + b"." + b64url(loaded.sign(signing_input))).decode()
    (jwk,) = msgspec.json.decode(ring.jwks_body)["keys"]
    public = jwt.PyJWK(jwk).key
    assert jwt.decode(token, public, algorithms=["EdDSA"]) == {"sub": "u1"}
