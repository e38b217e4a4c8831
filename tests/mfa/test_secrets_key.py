"""The secrets-at-rest key: its own 0600 file in keys/, never a signing key, never published."""

from __future__ import annotations

import stat
from pathlib import Path

import msgspec
import pytest

from service.keys.files import generate_key, load_keys
from service.keys.keyring import KeyRing
from service.keys.secrets import SECRETS_KEY_FILE, SealBroken, SecretBox, ensure_secrets_key, load_secrets_key

NOW = 1_800_000_000.0


def key_text(keys: Path) -> str:
    return (keys / SECRETS_KEY_FILE).read_text().strip()


def test_the_key_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    """First call creates 32 bytes in a 0600 file; the second returns the same key."""
    keys = tmp_path / "keys"
    first, created = ensure_secrets_key(keys)
    second, created_again = ensure_secrets_key(keys)
    assert (created, created_again, len(first), first == second) == (True, False, 32, True)
    assert stat.S_IMODE((keys / SECRETS_KEY_FILE).stat().st_mode) == 0o600
    assert load_secrets_key(keys) == first


def test_it_is_not_a_signing_key_and_not_in_the_jwks(tmp_path: Path) -> None:
    """``idp keys list`` (load_keys) and the JWKS see only the signing key."""
    keys = tmp_path / "keys"
    signing = generate_key(keys, "EdDSA", NOW)
    ensure_secrets_key(keys)
    assert [key.kid for key in load_keys(keys)] == [signing.kid]
    ring = KeyRing(keys, lambda: NOW)
    ring.refresh()
    assert [key.kid for key in ring.keys] == [signing.kid]
    published = msgspec.json.decode(ring.jwks_body)["keys"]
    assert [jwk["kid"] for jwk in published] == [signing.kid]
    assert key_text(keys) not in ring.jwks_body.decode()


def test_a_sealed_value_opens_only_with_its_purpose_context_and_key(tmp_path: Path) -> None:
    """AES-GCM: another purpose, another context, another key or one flipped bit all fail."""
    key, _ = ensure_secrets_key(tmp_path / "keys")
    box = SecretBox(key)
    sealed = box.seal("totp-secret", b"JBSWY3DPEHPK3PXP", b"user-1")
    assert box.unseal("totp-secret", sealed, b"user-1") == b"JBSWY3DPEHPK3PXP"
    assert b"JBSWY3DPEHPK3PXP" not in sealed
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    for purpose, blob, context, other in [
        ("ticket", sealed, b"user-1", box),
        ("totp-secret", sealed, b"user-2", box),
        ("totp-secret", tampered, b"user-1", box),
        ("totp-secret", sealed, b"user-1", SecretBox(b"\x00" * 32)),
    ]:
        with pytest.raises(SealBroken):
            other.unseal(purpose, blob, context)


def test_a_malformed_key_file_is_an_error_that_names_it(tmp_path: Path) -> None:
    """A key of the wrong length is refused rather than used."""
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / SECRETS_KEY_FILE).write_text("c2hvcnQ\n")
    with pytest.raises(Exception, match=SECRETS_KEY_FILE):
        load_secrets_key(keys)
