"""Opaque refresh tokens: format, hashing, and sealing of a successor under the used token.

A token is ``idprt_`` + the family id (16 random bytes, base64url, 22 chars) + a secret (32
random bytes, base64url, 43 chars). The family id locates the session (and is its ``sid``); only
the secret proves possession, and only its SHA-256 is stored. A 256-bit random secret needs no
slow hash. The successor handed out when a token is rotated is kept sealed with AES-256-GCM
under a key derived (HKDF-SHA256) from the rotated token's secret, so a retry inside the grace
window can be answered with the same pair while storage never holds a usable token.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from service.errors import InvalidGrant

__all__ = ["PREFIX", "hash_secret", "new_family_id", "new_token", "parse_token", "seal", "unseal"]

PREFIX = "idprt_"
FAMILY_ID_LENGTH = 22
SECRET_LENGTH = 43
TOKEN_LENGTH = len(PREFIX) + FAMILY_ID_LENGTH + SECRET_LENGTH
_SEAL_INFO = b"idp refresh successor v1"
_NONCE_BYTES = 12
_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def new_family_id() -> str:
    return secrets.token_urlsafe(16)


def new_token(family_id: str) -> tuple[str, str]:
    """A fresh token for the family and the hash to store for it."""
    secret = secrets.token_urlsafe(32)
    return f"{PREFIX}{family_id}{secret}", hash_secret(secret)


def parse_token(token: str) -> tuple[str, str]:
    """``(family_id, secret)``; any malformed token is an ``invalid_grant``."""
    if len(token) != TOKEN_LENGTH or not token.startswith(PREFIX):
        raise InvalidGrant("The refresh token is invalid.")
    body = token[len(PREFIX) :]
    if not set(body) <= _B64URL:
        raise InvalidGrant("The refresh token is invalid.")
    return body[:FAMILY_ID_LENGTH], body[FAMILY_ID_LENGTH:]


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


_NO_SALT = bytes(32)  # RFC 5869 §2.2: an absent salt is HashLen zero bytes


def _key(secret: str) -> bytes:
    """HKDF-SHA256 (RFC 5869) of the secret, 32 bytes: one extract and one expand block,
    written with ``hmac.digest`` (the ``cryptography`` HKDF object cost more to build than
    to run, on every refresh)."""
    prk = hmac.digest(_NO_SALT, secret.encode("ascii"), "sha256")
    return hmac.digest(prk, _SEAL_INFO + b"\x01", "sha256")


def seal(secret: str, payload: bytes) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(_key(secret)).encrypt(nonce, payload, None)


def unseal(secret: str, sealed: bytes) -> bytes:
    """Open a sealed successor; a wrong key or damaged blob is an ``invalid_grant``."""
    try:
        return AESGCM(_key(secret)).decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], None)
    except (InvalidTag, ValueError, binascii.Error) as exc:
        raise InvalidGrant("The refresh token is invalid.") from exc
