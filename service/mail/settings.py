"""The mail section of the settings (``IDP_SMTP_URL``, ``IDP_MAIL_*``, ``IDP_PUBLIC_URL``…),
read by :func:`service.config.load_settings` like every other section."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from email.utils import parseaddr
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec

from service.errors import ConfigError
from service.limits import Rule, parse_rule

__all__ = ["MailSettings", "SmtpConfig", "load_mail_settings", "parse_smtp_url"]

T = TypeVar("T")
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


class MailSettings(msgspec.Struct, frozen=True, kw_only=True):
    smtp: SmtpConfig | None = None
    """None: messages are written as files into ``folder``."""
    sender: str = "no-reply@localhost"
    folder: Path = Path("data/mail")
    templates: Path | None = None
    public_url: str = "http://127.0.0.1:8000"
    issuer_name: str = "idp"
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


def _get(source: Mapping[str, str], name: str, convert: Callable[[str], T], default: T) -> T:
    raw = source.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return convert(raw.strip())
    except ValueError as exc:
        raise ConfigError(f"{name} is invalid: {exc}") from exc  # the value may hold a password


def _sender(raw: str) -> str:
    _, address = parseaddr(raw)
    if "@" not in address or any(ch in raw for ch in "\r\n"):
        raise ValueError("expected an address like 'Example <no-reply@example.com>'")
    return raw


def _positive(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query or parts.fragment:
        raise ValueError("expected an absolute http(s) URL without query or fragment")
    return raw.rstrip("/")


def _flag(raw: str) -> bool:
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _verification(raw: str) -> Literal["optional", "required"]:
    if raw == "optional":
        return "optional"
    if raw == "required":
        return "required"
    raise ValueError("expected optional or required")


def _rule(name: str) -> Callable[[str], Rule]:
    return lambda raw: parse_rule(name, raw)


def load_mail_settings(source: Mapping[str, str], *, issuer: str, data_dir: Path) -> MailSettings:
    """Links in mail are built from ``IDP_PUBLIC_URL`` (default: the issuer), never a request."""
    public_url = _get(source, "IDP_PUBLIC_URL", _url, issuer)
    host = urlsplit(public_url).hostname or "localhost"
    return MailSettings(
        smtp=_get(source, "IDP_SMTP_URL", parse_smtp_url, None),
        sender=_get(source, "IDP_MAIL_FROM", _sender, f"no-reply@{host}"),
        folder=_get(source, "IDP_MAIL_DIR", Path, data_dir / "mail"),
        templates=_get(source, "IDP_MAIL_TEMPLATES", Path, None),
        public_url=public_url,
        issuer_name=_get(source, "IDP_ISSUER_NAME", str, host),
        max_attempts=_get(source, "IDP_MAIL_MAX_ATTEMPTS", _positive, 8),
        retry_base=float(_get(source, "IDP_MAIL_RETRY_BASE", _positive, 30)),
        worker=_get(source, "IDP_MAIL_WORKER", _flag, True),
        reset_ttl=_get(source, "IDP_RESET_TOKEN_TTL", _positive, 1800),
        verification=_get(source, "IDP_EMAIL_VERIFICATION", _verification, "optional"),
        verify_ttl=_get(source, "IDP_VERIFY_TOKEN_TTL", _positive, 86400),
        signup_enumeration_safe=_get(source, "IDP_SIGNUP_ENUMERATION_SAFE", _flag, False),
        request_ip=_get(source, "IDP_RATELIMIT_MAIL_REQUEST_IP", _rule("mail-request-ip"), REQUEST_IP),
        mail_account=_get(source, "IDP_RATELIMIT_MAIL_ACCOUNT", _rule("mail-account"), MAIL_ACCOUNT),
    )
