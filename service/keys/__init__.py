"""Signing keys: private JWK files in ``keys/``, the in-memory keyring, the public JWKS."""

from service.keys.files import KeyFileError, StoredKey, generate_key, prune_keys, rotate_keys
from service.keys.keyring import KeyRing, NoSigningKey

__all__ = [
    "KeyFileError",
    "KeyRing",
    "NoSigningKey",
    "StoredKey",
    "generate_key",
    "prune_keys",
    "rotate_keys",
]
