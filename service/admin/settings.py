"""The admin section of the settings: audit retention, the per-client limit, invitations."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from service.errors import ConfigError
from service.limits import Rule, parse_rule

__all__ = ["AdminSettings", "load_admin_settings"]

DEFAULT_CLIENT_RULE = Rule("admin-client", 600, 60)


class AdminSettings(msgspec.Struct, frozen=True, kw_only=True):
    audit_retention_days: int = 90
    """Audit events older than this are deleted from the database (the log keeps its own)."""
    client_rule: Rule = DEFAULT_CLIENT_RULE
    """Admin API calls per admin client (``IDP_RATELIMIT_ADMIN_CLIENT``)."""
    invite_ttl: int = 7 * 24 * 3600
    """How long an invitation's set-password link works (``IDP_INVITE_TTL`` seconds)."""


def _positive(name: str, raw: str | None, default: int) -> int:
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} is invalid: must be a positive integer")
    return value


def load_admin_settings(source: Mapping[str, str]) -> AdminSettings:
    raw_rule = source.get("IDP_RATELIMIT_ADMIN_CLIENT", "").strip()
    try:
        rule = parse_rule(DEFAULT_CLIENT_RULE.name, raw_rule) if raw_rule else DEFAULT_CLIENT_RULE
    except ValueError as exc:
        raise ConfigError(f"IDP_RATELIMIT_ADMIN_CLIENT={raw_rule!r} is invalid: {exc}") from exc
    return AdminSettings(
        audit_retention_days=_positive(
            "IDP_AUDIT_RETENTION_DAYS", source.get("IDP_AUDIT_RETENTION_DAYS"), 90
        ),
        client_rule=rule,
        invite_ttl=_positive("IDP_INVITE_TTL", source.get("IDP_INVITE_TTL"), 7 * 24 * 3600),
    )
