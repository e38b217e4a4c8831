"""The refresh-token successor seal: its key derivation is RFC 5869 HKDF-SHA256."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from service.errors import InvalidGrant
from service.tokens import refresh


def test_the_seal_key_is_rfc_5869_hkdf_sha256() -> None:
    """Sealed successors written before the derivation was rewritten with hmac still open."""
    secret = refresh.new_token(refresh.new_family_id())[0][-refresh.SECRET_LENGTH :]
    expected = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"idp refresh successor v1")
    assert refresh._key(secret) == expected.derive(secret.encode())
    assert refresh.unseal(secret, refresh.seal(secret, b"pair")) == b"pair"
    with pytest.raises(InvalidGrant):
        refresh.unseal("t" * refresh.SECRET_LENGTH, refresh.seal(secret, b"pair"))
