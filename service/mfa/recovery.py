"""Recovery codes: ten single-use codes of 50 random bits each, shown once, kept as keyed
hashes (HMAC-SHA-256 under a subkey of the secrets-at-rest key, bound to the account)."""

from __future__ import annotations

import base64
import secrets
from uuid import UUID

from service.keys.secrets import SecretBox

__all__ = ["CODE_COUNT", "code_hash", "new_codes", "normalize_code"]

CODE_COUNT = 10
_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def new_codes() -> list[str]:
    """``xxxxx-xxxxx`` in lower-case base32 (no 0/1/8/9 to misread)."""
    codes = []
    for _ in range(CODE_COUNT):
        raw = base64.b32encode(secrets.token_bytes(7)).decode("ascii").lower()[:10]
        codes.append(f"{raw[:5]}-{raw[5:]}")
    return codes


def normalize_code(code: str) -> str | None:
    """What the user typed, without spaces, dashes or case; None if it cannot be a code."""
    cleaned = code.replace("-", "").replace(" ", "").lower()
    if len(cleaned) != 10 or any(ch not in _ALPHABET for ch in cleaned):
        return None
    return cleaned


def code_hash(box: SecretBox, user_id: UUID, normalized: str) -> str:
    return box.mac("recovery-code", user_id.bytes + normalized.encode("ascii"))
