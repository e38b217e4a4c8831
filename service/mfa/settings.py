"""The MFA section of the settings (``IDP_MFA_*``, ``IDP_WEBAUTHN_*``), read by
:func:`service.config.load_settings` like every other section."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

import msgspec

from service.errors import ConfigError
from service.limits import Rule, parse_rule

__all__ = ["MfaSettings", "load_mfa_settings"]

T = TypeVar("T")
DEFAULT_ATTEMPTS = Rule("mfa-account", 5, 300)


class MfaSettings(msgspec.Struct, frozen=True, kw_only=True):
    required: bool = False
    """``IDP_MFA_REQUIRED``: every password sign-in needs a second factor (enrol one if none)."""
    totp_issuer: str = "idp"
    """The ``issuer`` label authenticator apps show next to the account."""
    rp_id: str = "127.0.0.1"
    rp_name: str = "idp"
    origins: tuple[str, ...] = ("http://127.0.0.1:8000",)
    ticket_ttl: int = 300
    """Seconds an ``mfa_token`` (and a WebAuthn challenge) stays usable."""
    attempts: Rule = DEFAULT_ATTEMPTS
    """Failed second-factor attempts per account (``IDP_RATELIMIT_MFA_ACCOUNT``)."""


def _get(source: Mapping[str, str], name: str, convert: Callable[[str], T], default: T) -> T:
    raw = source.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return convert(raw.strip())
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is invalid: {exc}") from exc


def _flag(raw: str) -> bool:
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in {"http", "https"} or not parts.netloc or parts.path:
            raise ValueError(f"{origin!r} is not an origin like https://login.example.com")
    return origins


def _ttl(raw: str) -> int:
    value = int(raw)
    if not 30 <= value <= 1800:
        raise ValueError("must be between 30 and 1800 seconds")
    return value


def load_mfa_settings(source: Mapping[str, str], *, public_url: str, name: str) -> MfaSettings:
    """The RP id defaults to the public URL's host, the allowed origin to its origin."""
    parts = urlsplit(public_url)
    host = parts.hostname or "localhost"
    rp_id = _get(source, "IDP_WEBAUTHN_RP_ID", str, host).lower()
    default_origins: tuple[str, ...] = (f"{parts.scheme}://{parts.netloc}",)
    origins = _get(source, "IDP_WEBAUTHN_ORIGINS", _origins, default_origins)
    for origin in origins:
        origin_host = urlsplit(origin).hostname or ""
        if origin_host != rp_id and not origin_host.endswith("." + rp_id):
            raise ConfigError(
                f"IDP_WEBAUTHN_ORIGINS: {origin} is not on IDP_WEBAUTHN_RP_ID={rp_id} or a subdomain of it"
            )
    return MfaSettings(
        required=_get(source, "IDP_MFA_REQUIRED", _flag, False),
        totp_issuer=_get(source, "IDP_MFA_TOTP_ISSUER", str, name),
        rp_id=rp_id,
        rp_name=_get(source, "IDP_WEBAUTHN_RP_NAME", str, name),
        origins=origins,
        ticket_ttl=_get(source, "IDP_MFA_TICKET_TTL", _ttl, 300),
        attempts=_get(
            source,
            "IDP_RATELIMIT_MFA_ACCOUNT",
            lambda raw: parse_rule(DEFAULT_ATTEMPTS.name, raw),
            DEFAULT_ATTEMPTS,
        ),
    )
