"""The admin section of the settings: audit retention, the per-client limit, invitations; a
:class:`~service.sections.Section` read by :func:`service.config.load_settings` like every other."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from service.limits import Rule
from service.sections import Section, positive_int, rule

__all__ = ["AdminSettings"]

DEFAULT_CLIENT_RULE = Rule("admin-client", 600, 60)


class AdminSettings(Section, frozen=True, kw_only=True):
    audit_retention_days: int = 90
    """Audit events older than this are deleted from the database (the log keeps its own)."""
    client_rule: Rule = DEFAULT_CLIENT_RULE
    """Admin API calls per admin client (``IDP_RATELIMIT_ADMIN_CLIENT``)."""
    invite_ttl: int = 7 * 24 * 3600
    """How long an invitation's set-password link works (``IDP_INVITE_TTL`` seconds)."""

    ENV: ClassVar[Mapping[str, tuple[str, Callable[[str], Any]]]] = {
        "audit_retention_days": ("IDP_AUDIT_RETENTION_DAYS", positive_int),
        "client_rule": ("IDP_RATELIMIT_ADMIN_CLIENT", rule(DEFAULT_CLIENT_RULE.name)),
        "invite_ttl": ("IDP_INVITE_TTL", positive_int),
    }
