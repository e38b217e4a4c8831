"""Email syntax and the normalised uniqueness key."""

from __future__ import annotations

import unicodedata

import hypothesis
import pytest
from hypothesis import strategies as st

from service.emails import _DOMAIN_LABEL, _LOCAL_ATOM, mask_email, normalize_email
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


def _reference(raw: str) -> tuple[str, str] | None:
    """normalize_email before its ASCII fast path (every character scanned, NFKC, IDNA)."""
    email = raw.strip()
    if not email or len(email) > 254 or any(unicodedata.category(ch).startswith("C") for ch in email):
        return None
    local, at, domain = unicodedata.normalize("NFKC", email).rpartition("@")
    if not at or not local or not domain or len(local) > 64:
        return None
    if not _LOCAL_ATOM.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        return None
    try:
        ascii_domain = domain.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        return None
    return email, f"{local.casefold()}@{ascii_domain}"


def _ours(raw: str) -> tuple[str, str] | None:
    try:
        return normalize_email(raw)
    except InvalidEmail:
        return None


_LABEL = st.text(alphabet="abcxyzABCXYZ0129-", min_size=0, max_size=66)
_DOMAIN = st.builds(
    "{}{}".format, st.lists(_LABEL, min_size=1, max_size=4).map(".".join), st.sampled_from(["", ".", ".."])
)
_LOCAL = st.text(alphabet="abcXYZ019.+-_!#$%&'*/=?^`{|}~ \"(),:;<>@[\\]\x00\x7f\t", min_size=0, max_size=70)
ASCII_ADDRESS = (
    st.text(alphabet=st.characters(max_codepoint=127), max_size=80)
    | st.builds("{}@{}".format, _LOCAL, _DOMAIN)
    | st.builds("{}@{}.{}".format, st.text(alphabet="abcXYZ.+", min_size=1, max_size=10), _LABEL, _LABEL)
)


@hypothesis.settings(max_examples=2000, deadline=None)
@hypothesis.given(ASCII_ADDRESS)
def test_the_ascii_fast_path_agrees_with_the_full_normalisation(raw: str) -> None:
    assert _ours(raw) == _reference(raw)


@pytest.mark.parametrize(
    "raw",
    ["Ada@Example.COM.", "a@" + "b" * 64 + ".com", "a@b..com", "a@.com", "a\x7f@b.com", "a@b.c\x00m",
     "a b@c.de", "a@-b.com", "a@b.123", " ada@example.com ", "ADA@EXAMPLE.COM"],
)  # fmt: skip
def test_the_ascii_fast_path_agrees_on_edge_cases(raw: str) -> None:
    assert _ours(raw) == _reference(raw)
