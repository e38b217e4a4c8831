"""The MFA section of the settings (``IDP_MFA_*``, ``IDP_WEBAUTHN_*``), a
:class:`~service.sections.Section` read by :func:`service.config.load_settings` like every other.

The loader passes the defaults that follow the mail section: the relying party is the public
URL's host, the allowed origin its origin, the names the service's name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from service.errors import ConfigError
from service.limits import Rule
from service.sections import Section, boolean, positive_int, rule
from service.sections import origins as exact_origins

__all__ = ["MfaSettings"]

DEFAULT_ATTEMPTS = Rule("mfa-account", 5, 300)


class MfaSettings(Section, frozen=True, kw_only=True):
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

    ENV: ClassVar[Mapping[str, tuple[str, Callable[[str], Any]]]] = {
        "required": ("IDP_MFA_REQUIRED", boolean),
        "totp_issuer": ("IDP_MFA_TOTP_ISSUER", str),
        "rp_id": ("IDP_WEBAUTHN_RP_ID", str.lower),
        "rp_name": ("IDP_WEBAUTHN_RP_NAME", str),
        "origins": ("IDP_WEBAUTHN_ORIGINS", exact_origins),
        "ticket_ttl": ("IDP_MFA_TICKET_TTL", positive_int),
        "attempts": ("IDP_RATELIMIT_MFA_ACCOUNT", rule(DEFAULT_ATTEMPTS.name)),
    }

    def __post_init__(self) -> None:
        if not 30 <= self.ticket_ttl <= 1800:
            raise ConfigError(
                f"IDP_MFA_TICKET_TTL={self.ticket_ttl} is invalid: must be between 30 and 1800 seconds"
            )
        for origin in self.origins:
            origin_host = urlsplit(origin).hostname or ""
            if origin_host != self.rp_id and not origin_host.endswith("." + self.rp_id):
                raise ConfigError(
                    f"IDP_WEBAUTHN_ORIGINS: {origin} is not on IDP_WEBAUTHN_RP_ID={self.rp_id} "
                    "or a subdomain of it"
                )
