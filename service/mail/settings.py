"""The mail section of the settings (``IDP_SMTP_URL``, ``IDP_MAIL_*``, ``IDP_PUBLIC_URL``…), a
:class:`~service.sections.Section` read by :func:`service.config.load_settings` like every other."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from email.utils import parseaddr
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec

from service.limits import Rule
from service.sections import Section, boolean, choice, http_url, positive_int, rule

__all__ = ["MailSettings", "SmtpConfig", "parse_smtp_url"]

REQUEST_IP = Rule("mail-request-ip", 20, 3600)
MAIL_ACCOUNT = Rule("mail-account", 3, 3600)


class SmtpConfig(msgspec.Struct, frozen=True, kw_only=True):
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    implicit_tls: bool = False
    starttls: bool = False
    timeout: float = 10.0
    verify: bool = True

    def __repr__(self) -> str:  # never print the password
        return f"SmtpConfig(host={self.host!r}, port={self.port}, tls={self.implicit_tls or self.starttls})"


def _sender(raw: str) -> str:
    _, address = parseaddr(raw)
    if "@" not in address or any(ch in raw for ch in "\r\n"):
        raise ValueError("expected an address like 'Example <no-reply@example.com>'")
    return raw


def parse_smtp_url(raw: str) -> SmtpConfig:
    """``smtp://[user:pass@]host[:port][?starttls=true&timeout=10&verify=false]`` or ``smtps://…``
    (implicit TLS, port 465 by default). Raises ValueError with a reason."""
    parts = urlsplit(raw)
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise ValueError("expected smtp://host[:port] or smtps://host[:port]")
    options = {key: values[-1].lower() for key, values in parse_qs(parts.query).items()}
    unknown = set(options) - {"starttls", "timeout", "verify"}
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))}")
    implicit = parts.scheme == "smtps"
    starttls = options.get("starttls", "false") in {"1", "true", "yes"}
    if implicit and starttls:
        raise ValueError("smtps:// is already TLS; starttls applies to smtp:// only")
    timeout = float(options.get("timeout", "10"))
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    return SmtpConfig(
        host=parts.hostname,
        port=parts.port or (465 if implicit else 587 if starttls else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        implicit_tls=implicit,
        starttls=starttls,
        timeout=timeout,
        verify=options.get("verify", "true") not in {"0", "false", "no"},
    )


class MailSettings(Section, frozen=True, kw_only=True):
    smtp: SmtpConfig | None = None
    """None: messages are written as files into ``folder``."""
    sender: str = ""
    """``IDP_MAIL_FROM``; empty: ``no-reply@`` the host of ``public_url``."""
    folder: Path = Path("data/mail")
    templates: Path | None = None
    public_url: str = "http://127.0.0.1:8000"
    """Links in mail are built from it (``IDP_PUBLIC_URL``; the loader's default: the issuer),
    never from a request."""
    issuer_name: str = ""
    """``IDP_ISSUER_NAME``; empty: the host of ``public_url``."""
    max_attempts: int = 8
    retry_base: float = 30.0
    worker: bool = True
    reset_ttl: int = 1800
    verification: Literal["optional", "required"] = "optional"
    """``required``: no sign-in before the address is verified; ``optional``: sign-in allowed,
    ``email_verified`` says false until then."""
    verify_ttl: int = 86400
    signup_enumeration_safe: bool = False
    """True: signup answers 202 alike for new and existing addresses and mails the owner of an
    existing one; False (default): an existing address is an explicit 409."""
    request_ip: Rule = REQUEST_IP
    """Requests that send a link (reset, resend verification) per IP; beyond: 429."""
    mail_account: Rule = MAIL_ACCOUNT
    """Link mails per account; beyond, requests still answer 202 but send nothing."""

    ENV: ClassVar[Mapping[str, tuple[str, Callable[[str], Any]]]] = {
        "smtp": ("IDP_SMTP_URL", parse_smtp_url),
        "sender": ("IDP_MAIL_FROM", _sender),
        "folder": ("IDP_MAIL_DIR", Path),
        "templates": ("IDP_MAIL_TEMPLATES", Path),
        "public_url": ("IDP_PUBLIC_URL", http_url),
        "issuer_name": ("IDP_ISSUER_NAME", str),
        "max_attempts": ("IDP_MAIL_MAX_ATTEMPTS", positive_int),
        "retry_base": ("IDP_MAIL_RETRY_BASE", lambda raw: float(positive_int(raw))),
        "worker": ("IDP_MAIL_WORKER", boolean),
        "reset_ttl": ("IDP_RESET_TOKEN_TTL", positive_int),
        "verification": ("IDP_EMAIL_VERIFICATION", choice("optional", "required")),
        "verify_ttl": ("IDP_VERIFY_TOKEN_TTL", positive_int),
        "signup_enumeration_safe": ("IDP_SIGNUP_ENUMERATION_SAFE", boolean),
        "request_ip": ("IDP_RATELIMIT_MAIL_REQUEST_IP", rule(REQUEST_IP.name)),
        "mail_account": ("IDP_RATELIMIT_MAIL_ACCOUNT", rule(MAIL_ACCOUNT.name)),
    }
    SECRET: ClassVar[frozenset[str]] = frozenset({"IDP_SMTP_URL"})  # may hold a password

    def __post_init__(self) -> None:
        host = urlsplit(self.public_url).hostname or "localhost"
        if not self.sender:
            msgspec.structs.force_setattr(self, "sender", f"no-reply@{host}")
        if not self.issuer_name:
            msgspec.structs.force_setattr(self, "issuer_name", host)
