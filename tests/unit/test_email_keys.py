"""Properties of the one email key: every spelling of an account shares its limiter key.

The account store treats two addresses as the same account exactly when their normalised keys
are equal; the limiter must key on the same thing, or a new spelling gets a fresh failure budget.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.abuse import account_key
from service.emails import email_key, normalize_email
from service.errors import InvalidEmail

LOCAL_CHARS = string.ascii_letters + string.digits + "+-_"
LABEL_CHARS = string.ascii_letters + string.digits
# Compatibility forms NFKC folds to an ASCII letter (one example each of the usual confusables).
CONFUSABLES = {
    "a": ["\u24d0", "\U0001d41a", "\u00aa"],  # circled, mathematical bold, feminine ordinal
    "k": ["\u212a"],  # Kelvin sign (casefolds to k)
    "s": ["\u017f"],  # long s (casefolds to s)
    "i": ["\u2170"],  # small roman numeral one
    "o": ["\u2092", "\u00ba"],  # subscript o, masculine ordinal
}
SPACES = ["", " ", "\t", "\u00a0", "\u3000", "\u2003", "\n"]

locals_ = st.text(LOCAL_CHARS, min_size=1, max_size=20)
labels = st.text(LABEL_CHARS, min_size=1, max_size=12)
domains = st.tuples(st.lists(labels, min_size=1, max_size=3), st.sampled_from(["com", "org", "example"]))


def _spell_char(draw: st.DrawFn, char: str) -> str:
    options = [char, char.upper(), char.lower()]
    if "!" <= char <= "~":
        options.append(chr(ord(char) + 0xFEE0))  # the fullwidth form
    options += CONFUSABLES.get(char.lower(), [])
    return draw(st.sampled_from(options))


@st.composite
def spellings(draw: st.DrawFn, address: tuple[str, str]) -> str:
    """Another way to type ``address``: per character case, width or a confusable, trailing dots
    on the domain, whitespace around the whole."""
    local, domain = address
    typed_local = "".join(_spell_char(draw, char) for char in local)
    typed_domain = "".join(_spell_char(draw, char) if char != "." else char for char in domain)
    typed_domain += "." * draw(st.integers(0, 2))
    return draw(st.sampled_from(SPACES)) + f"{typed_local}@{typed_domain}" + draw(st.sampled_from(SPACES))


@st.composite
def addresses(draw: st.DrawFn) -> tuple[str, str]:
    local = draw(locals_)
    parts, tld = draw(domains)
    return local, ".".join([*parts, tld])


@given(st.data(), addresses())
def test_every_spelling_shares_the_account_and_its_limiter_key(
    data: st.DataObject, address: tuple[str, str]
) -> None:
    """Two spellings of one address normalise to the same account key and so to the same
    limiter key."""
    first, other = data.draw(spellings(address)), data.draw(spellings(address))
    assert normalize_email(first)[1] == normalize_email(other)[1]
    assert account_key(first) == account_key(other)


@pytest.mark.parametrize(
    "spelling",
    ["victim@example.com.", "\uff56ictim@example.com", "victim@\uff45xample.com", " VICTIM@Example.COM "],
    ids=["trailing-dot", "fullwidth-local", "fullwidth-domain", "case-and-space"],
)
def test_the_reported_spellings_share_the_limiter_key(spelling: str) -> None:
    """The spellings of the attack run key the same failure budget as the exact address."""
    assert account_key(spelling) == account_key("victim@example.com")


@given(st.text(max_size=40), st.text(max_size=40))
def test_limiter_key_equal_exactly_when_the_store_key_is(first: str, second: str) -> None:
    """For any two strings the store accepts, equal store keys ⇔ equal limiter keys."""
    try:
        store_keys = normalize_email(first)[1], normalize_email(second)[1]
    except InvalidEmail:
        return
    assert (store_keys[0] == store_keys[1]) == (account_key(first) == account_key(second))


@given(addresses(), st.data())
def test_the_key_is_a_fixed_point(address: tuple[str, str], data: st.DataObject) -> None:
    """Normalising a key again gives the same key (what is stored is what a lookup computes)."""
    key = email_key(data.draw(spellings(address)))
    assert email_key(key) == key
