"""Email syntax checks and the one normalised key every consumer uses.

The address is stored as typed (trimmed); uniqueness, lookups, identity linking and every
rate-limit or delay key use :func:`normalize_email`'s key: NFKC, case-folded local part, IDNA
(punycode) lower-case domain without trailing dots. Two spellings share an account exactly when
they share this key, so they also share its failure budget (:func:`email_key`).
"""

from __future__ import annotations

import re
import unicodedata

from service.errors import InvalidEmail

__all__ = ["email_key", "mask_email", "normalize_email"]

MAX_EMAIL_LENGTH = 254
MAX_LOCAL_LENGTH = 64
_LOCAL_ATOM = re.compile(r"^[^\s@\"(),:;<>\[\\\]]+$")
_DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalize_email(raw: str) -> tuple[str, str]:
    """Return ``(as_typed, normalized_key)`` or raise :class:`InvalidEmail`."""
    email = raw.strip()
    if not email or len(email) > MAX_EMAIL_LENGTH:
        raise InvalidEmail
    # Every sign-in normalises its address twice (limiter key, account read): ASCII, the usual
    # case, skips the per-character category scan, NFKC and the IDNA codec, which leave it as
    # it is (tests/unit/test_emails.py checks both paths agree).
    if email.isascii():
        if not email.isprintable():  # the ASCII control characters, category Cc
            raise InvalidEmail
        text = email
    elif any(unicodedata.category(ch).startswith("C") for ch in email):
        raise InvalidEmail
    else:
        text = unicodedata.normalize("NFKC", email)
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain or len(local) > MAX_LOCAL_LENGTH:
        raise InvalidEmail
    if not _LOCAL_ATOM.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        raise InvalidEmail
    domain = domain.rstrip(".")
    try:
        # IDNA keeps ASCII labels as they are; its only check on them (1-63 characters) is one
        # of the label rules below.
        ascii_domain = (domain if domain.isascii() else domain.encode("idna").decode("ascii")).lower()
    except UnicodeError as exc:
        raise InvalidEmail from exc
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        raise InvalidEmail
    if labels[-1].isdigit():
        raise InvalidEmail
    return email, f"{local.casefold()}@{ascii_domain}"


def email_key(raw: str) -> str:
    """The account key of ``raw`` (its normalised form), for keys that must exist even for an
    address no account can have: a malformed one keys on its NFKC case-folded text instead."""
    try:
        return normalize_email(raw)[1]
    except InvalidEmail:
        return "invalid:" + unicodedata.normalize("NFKC", raw.strip()).casefold()


def mask_email(email: str) -> str:
    """A log-safe form: first character of the local part and the domain (``a***@example.com``)."""
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}***@{domain}" if local else "***"
