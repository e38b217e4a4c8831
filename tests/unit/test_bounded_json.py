"""The nesting limit of every untrusted-JSON parser (``service.bounded_json``)."""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.bounded_json import MAX_DEPTH, TooDeep, check_depth, decode

scalars = st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab', max_size=6)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(item) for item in value.values()), default=0)
    return 0


def wrap(value: Any, levels: int) -> Any:
    for level in range(levels):
        value = [value] if level % 2 else {"k": value}
    return value


@given(documents, st.integers(0, 2 * MAX_DEPTH))
def test_the_limit_is_exact(document: Any, extra: int) -> None:
    """Documents up to MAX_DEPTH levels decode to what json.loads gives; deeper ones raise
    TooDeep (a msgspec.DecodeError), whatever brackets their strings contain."""
    value = wrap(document, extra)
    data = json.dumps(value).encode()
    if depth(value) <= MAX_DEPTH:
        assert decode(data) == json.loads(data)
    else:
        with pytest.raises(TooDeep):
            decode(data)


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 100_000,
        b"[" * 50_000 + b"]" * 50_000,
        b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
        b"[" * 40 + b'"' + b'\\"' * 30_000,
    ],
    ids=["unclosed", "arrays", "objects", "unterminated-string"],
)
def test_hostile_documents_are_refused_quickly(data: bytes) -> None:
    """Deep or unterminated input is a DecodeError, never a RecursionError, within a few ms."""
    started = time.perf_counter()
    with pytest.raises(msgspec.DecodeError):
        decode(data)
    assert time.perf_counter() - started < 0.1


def test_wide_but_shallow_documents_pass() -> None:
    """Many brackets side by side are not depth: 30 000 empty arrays in one array decode."""
    data = b"[" + b"[]," * 30_000 + b"[]]"
    check_depth(data)
    assert len(decode(data)) == 30_001


def test_typed_decoding_keeps_its_checks() -> None:
    """``type=`` is passed through: a wrong shape is a ValidationError as before."""
    assert decode(b'{"a": "b"}', type=dict[str, str]) == {"a": "b"}
    with pytest.raises(msgspec.ValidationError):
        decode(b'{"a": 1}', type=dict[str, str])
