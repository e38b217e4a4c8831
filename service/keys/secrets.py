"""The secrets-at-rest key: ``keys/secrets-at-rest.key``, 32 random bytes (base64url), 0600.

Not a signing key: it is never loaded into the keyring, never published in the JWKS, and its
name does not match the ``*.json`` key files. Purpose-bound subkeys are derived from it with
HKDF-SHA-256, so one file serves every use without the uses sharing a key:
AES-256-GCM sealing (TOTP secrets, MFA tickets, WebAuthn challenge state) and HMAC-SHA-256
(recovery codes, replay fingerprints).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from service.keys.files import KeyFileError, _folder_lock

__all__ = ["SECRETS_KEY_FILE", "SealBroken", "SecretBox", "ensure_secrets_key", "load_secrets_key"]

SECRETS_KEY_FILE = "secrets-at-rest.key"
_VERSION = b"\x01"
_NONCE_BYTES = 12


class SealBroken(Exception):
    """A sealed value was altered, sealed for another purpose or context, or under another key."""


def load_secrets_key(directory: Path) -> bytes | None:
    path = directory / SECRETS_KEY_FILE
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read {SECRETS_KEY_FILE}: {type(exc).__name__}") from exc
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError as exc:
        raise KeyFileError(f"{SECRETS_KEY_FILE} is not base64url") from exc
    if len(key) != 32:
        raise KeyFileError(f"{SECRETS_KEY_FILE} must hold 32 bytes")
    return key


def ensure_secrets_key(directory: Path) -> tuple[bytes, bool]:
    """The key, created (atomically, 0600) if the folder has none; ``(key, created)``."""
    with _folder_lock(directory):
        existing = load_secrets_key(directory)
        if existing is not None:
            return existing, False
        key = secrets.token_bytes(32)
        temp = directory / f".{SECRETS_KEY_FILE}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, base64.urlsafe_b64encode(key).rstrip(b"=") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(temp, 0o600)
        temp.replace(directory / SECRETS_KEY_FILE)
        return key, True


class SecretBox:
    """Sealing and keyed hashing under subkeys of the secrets-at-rest key."""

    def __init__(self, master: bytes) -> None:
        self._master = master
        self._subkeys: dict[str, bytes] = {}

    def _subkey(self, purpose: str) -> bytes:
        key = self._subkeys.get(purpose)
        if key is None:
            hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"idp/" + purpose.encode())
            key = self._subkeys[purpose] = hkdf.derive(self._master)
        return key

    def seal(self, purpose: str, plaintext: bytes, context: bytes = b"") -> bytes:
        """``0x01 || nonce || AES-256-GCM(plaintext)``; ``context`` is authenticated, not stored."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return _VERSION + nonce + AESGCM(self._subkey(purpose)).encrypt(nonce, plaintext, context)

    def unseal(self, purpose: str, sealed: bytes, context: bytes = b"") -> bytes:
        if len(sealed) < 1 + _NONCE_BYTES + 16 or sealed[:1] != _VERSION:
            raise SealBroken
        nonce, body = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
        try:
            return AESGCM(self._subkey(purpose)).decrypt(nonce, body, context)
        except InvalidTag as exc:
            raise SealBroken from exc

    def mac(self, purpose: str, data: bytes) -> str:
        """HMAC-SHA-256, hex: a keyed fingerprint (stored or used as a cache key)."""
        return hmac.new(self._subkey(purpose), data, hashlib.sha256).hexdigest()
