"""The one settings-section loader: :class:`Section` and the converters every section uses.

A section (``service/config.py``'s, ``mail/settings.py``, ``mfa/settings.py``,
``admin/settings.py``) is a frozen struct that owns its defaults (its field defaults), the
variables it is read from (``ENV``: field → variable and converter) and its checks
(``__post_init__``, which runs alike for ``Section(...)`` in code and for
:meth:`Section.from_env`), so ``Section() == Section.from_env({})``. A default that follows
another section (mail links follow the issuer) is passed to :meth:`Section.from_env` by the
loader, :func:`service.config.load_settings`; a variable still wins over it.

Kept apart from ``config.py`` so the capability sections can use it while ``config.py``
gathers them: config layer, imports only ``errors`` and ``limits``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import msgspec

from service.errors import ConfigError
from service.limits import Rule, parse_rule

__all__ = [
    "Section",
    "boolean",
    "choice",
    "http_url",
    "non_negative_float",
    "non_negative_int",
    "origins",
    "positive_int",
    "read",
    "rule",
]

T = TypeVar("T")
S = TypeVar("S", bound="Section")


# ---- converters: raw text → value, ValueError with the reason when it is not one ----


def positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def non_negative_float(raw: str) -> float:
    value = float(raw)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def boolean(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def choice(*options: str) -> Callable[[str], str]:
    def convert(raw: str) -> str:
        if raw not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return raw

    return convert


def http_url(raw: str) -> str:
    """An absolute http(s) URL without query or fragment, without its trailing slash."""
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError("expected an absolute http(s) URL")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    return raw.rstrip("/")


def origins(raw: str) -> tuple[str, ...]:
    """Comma-separated exact origins (``https://app.example.com``); no wildcards."""
    found = tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())
    for origin in found:
        parts = urlsplit(origin)
        if parts.scheme not in {"http", "https"} or not parts.netloc or parts.path or "*" in origin:
            raise ValueError(f"{origin!r} is not an exact origin like https://app.example.com")
    return found


def rule(name: str) -> Callable[[str], Rule]:
    """``LIMIT/SECONDS`` as the rate-limit rule ``name``."""
    return lambda raw: parse_rule(name, raw)


def read(
    source: Mapping[str, str], name: str, convert: Callable[[str], T], *, secret: bool = False
) -> T | None:
    """The variable's value, or None when it is unset or blank. An error names the variable
    and echoes the value, unless ``secret`` (the value may hold a password)."""
    raw = source.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        return convert(raw.strip())
    except ValueError as exc:
        shown = name if secret else f"{name}={raw!r}"
        raise ConfigError(f"{shown} is invalid: {exc}") from exc


class Section(msgspec.Struct, frozen=True, kw_only=True):
    """A group of settings: field defaults, ``ENV`` (field → variable and converter), checks."""

    ENV: ClassVar[Mapping[str, tuple[str, Callable[[str], Any]]]] = {}
    SECRET: ClassVar[frozenset[str]] = frozenset()
    """Variables whose value an error message must not repeat."""

    @classmethod
    def from_env(cls: type[S], source: Mapping[str, str], **defaults: Any) -> S:
        """The section from ``source``; ``defaults``: values that follow another section, used
        when the field's variable is unset."""
        values = {
            field: read(source, name, convert, secret=name in cls.SECRET)
            for field, (name, convert) in cls.ENV.items()
        }
        return cls(**{**defaults, **{field: value for field, value in values.items() if value is not None}})
