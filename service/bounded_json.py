"""JSON from untrusted sources, decoded with a nesting limit.

msgspec and the standard ``json`` recurse once per level and raise ``RecursionError`` near the
interpreter's limit (~1 000 levels): an unauthenticated 500. Every parser of untrusted JSON
(request bodies, JOSE headers and payloads, subject tokens, remote JWKS) goes through
:func:`decode`, which refuses deeper input with ``msgspec.DecodeError`` (a ``ValueError``) before
any recursion, so callers keep mapping it to their usual 4xx.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar, overload

import msgspec

__all__ = ["MAX_DEPTH", "TooDeep", "check_depth", "decode"]

MAX_DEPTH = 32
"""Far above any document we accept (a JWT's claims, a JWKS: ≤ 4), far below the recursion limit."""

T = TypeVar("T")

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"?', re.DOTALL)  # an unterminated string runs to the end
_AS_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")


class TooDeep(msgspec.DecodeError):
    """The document is nested deeper than allowed."""


def check_depth(data: bytes, max_depth: int = MAX_DEPTH) -> None:
    """Raise :class:`TooDeep` if ``data`` nests arrays/objects more than ``max_depth`` levels.

    Recursion-free and fast: the common case (fewer brackets than the limit in all) is two
    counts; otherwise strings are blanked, braces become brackets, and each round removes the
    innermost level of pairs (``[]``). Malformed input may count as too deep; it is refused either way.
    """
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return
    brackets = _STRING.sub(b"", data).translate(_AS_SQUARE, _NOT_BRACKETS)
    if b"[" * (max_depth + 1) in brackets:  # the usual attack: one long run of openers
        raise TooDeep(f"JSON nested deeper than {max_depth} levels")
    for _ in range(max_depth):
        brackets = brackets.replace(b"[]", b"")
        if not brackets:
            return
    raise TooDeep(f"JSON nested deeper than {max_depth} levels")


@overload
def decode(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any: ...
@overload
def decode(data: bytes | str, *, type: type[T], max_depth: int = MAX_DEPTH) -> T: ...
def decode(data: bytes | str, *, type: Any = Any, max_depth: int = MAX_DEPTH) -> Any:
    """``msgspec.json.decode`` after :func:`check_depth`."""
    raw = data.encode() if isinstance(data, str) else data
    check_depth(raw, max_depth)
    return msgspec.json.decode(raw, type=type)
