"""Email syntax and the normalised uniqueness key."""

from __future__ import annotations

import pytest

from service.emails import mask_email, normalize_email
from service.errors import InvalidEmail


@pytest.mark.parametrize(
    ("raw", "typed", "key"),
    [
        ("Ada@Example.com", "Ada@Example.com", "ada@example.com"),
        ("  ada@example.com ", "ada@example.com", "ada@example.com"),
        ("ADA+tag@EXAMPLE.COM", "ADA+tag@EXAMPLE.COM", "ada+tag@example.com"),
        ("\uff55ser@example.com", "\uff55ser@example.com", "user@example.com"),
        ("user@bücher.de", "user@bücher.de", "user@xn--bcher-kva.de"),
        ("Straße@example.com", "Straße@example.com", "strasse@example.com"),
    ],
    ids=["case", "whitespace", "plus-tag", "fullwidth-nfkc", "idna-domain", "casefold"],
)
def test_normalisation(raw: str, typed: str, key: str) -> None:
    """The typed form is kept (trimmed); the key is NFKC + casefold + IDNA."""
    assert normalize_email(raw) == (typed, key)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "plain",
        "@example.com",
        "user@",
        "user@localhost",
        "user@example",
        "user@exa mple.com",
        "us er@example.com",
        "user@@example.com",
        ".user@example.com",
        "us..er@example.com",
        "user@-example.com",
        "user@example.123",
        "user\x00@example.com",
        "a" * 65 + "@example.com",
        "a@" + "b" * 250 + ".com",
    ],
)
def test_invalid_addresses(raw: str) -> None:
    """Malformed addresses raise InvalidEmail, never another exception."""
    with pytest.raises(InvalidEmail):
        normalize_email(raw)


def test_mask_keeps_only_first_character_and_domain() -> None:
    """Logs see a***@example.com, never the full address."""
    assert mask_email("alice@example.com") == "a***@example.com"
