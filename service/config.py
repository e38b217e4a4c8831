"""Settings: read once from ``IDP_*`` variables, validated, then passed explicitly.

Settings come in sections (:class:`StorageSettings`, :class:`KeySettings`, …, and the
capabilities' :class:`~service.mail.settings.MailSettings`, :class:`~service.mfa.settings.MfaSettings`,
:class:`~service.admin.settings.AdminSettings`), all read by the one loader,
:class:`service.sections.Section`. Each section owns its defaults (its field defaults), the
variables it is read from (``ENV``) and its checks (``__post_init__``), so ``Section()`` and
``Section.from_env({})`` always agree. Nothing here runs at import time; every validation error
names the variable. This module imports no other part of the service except the error base,
the section loader and the pure types the settings hold.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import math
import os
import re
from collections import ChainMap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import msgspec

from service.admin.settings import AdminSettings
from service.errors import ConfigError
from service.limits import Rule
from service.mail.settings import MailSettings
from service.mfa.settings import MfaSettings
from service.sections import (
    Section,
    boolean,
    choice,
    http_url,
    non_negative_float,
    non_negative_int,
    origins,
    positive_int,
    read,
    rule,
)
from service.trust import EMPTY as EMPTY_TRUST
from service.trust import TrustConfig, load_trust_config

__all__ = [
    "SIGNING_ALGS",
    "Argon2Settings",
    "ConfigError",
    "KeySettings",
    "RateLimitSettings",
    "SessionSettings",
    "Settings",
    "StorageSettings",
    "load_settings",
]

SIGNING_ALGS = ("EdDSA", "RS256", "ES256")
Environment = Literal["development", "production"]
SigningAlg = Literal["EdDSA", "RS256", "ES256"]


# ---- converters of this module's own variables (the shared ones are in service.sections) ----


def _database_url(raw: str) -> str:
    if raw.startswith(("postgresql://", "postgres://")):
        return raw
    if raw.startswith("sqlite:///") and len(raw) > len("sqlite:///"):
        return raw
    raise ValueError("expected postgresql://… or sqlite:///path")


def _redis_url(raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("expected redis://…, rediss://… or unix://…")
    return raw


_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def _host(raw: str) -> str:
    """An IP address or a DNS host name (RFC 1123 labels), as a listen address."""
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(raw))
    labels = raw.removesuffix(".").split(".")
    if len(raw) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise ValueError("expected an IP address or a host name")
    return raw


def _networks(raw: str) -> tuple[str, ...]:
    return tuple(
        str(ipaddress.ip_network(part.strip(), strict=False)) for part in raw.split(",") if part.strip()
    )


# ---- sections ----


class StorageSettings(Section, frozen=True, kw_only=True):
    database_url: str = "sqlite:///./data/idp.sqlite3"
    redis_url: str | None = None
    redis_prefix: str = "idp:"
    redis_cluster: bool = False
    db_pool_size: int = 10
    auto_migrate: bool = True

    ENV: ClassVar[Mapping[str, tuple[str, Callable[[str], Any]]]] = {
        "database_url": ("IDP_DATABASE_URL", _database_url),
        "redis_url": ("IDP_REDIS_URL", _redis_url),
        "redis_prefix": ("IDP_REDIS_PREFIX", str),
        "redis_cluster": ("IDP_REDIS_CLUSTER", boolean),
        "db_pool_size": ("IDP_DB_POOL_SIZE", positive_int),
        "auto_migrate": ("IDP_AUTO_MIGRATE", boolean),
    }

    def __post_init__(self) -> None:
        if self.redis_url is None and self.database_kind == "postgresql":
            raise ConfigError(
                "IDP_REDIS_URL must be set when IDP_DATABASE_URL is PostgreSQL: "
                "sessions (refresh-token families) live in Redis in that deployment"
            )

    @property
    def database_kind(self) -> Literal["sqlite", "postgresql"]:
        return "postgresql" if self.database_url.startswith(("postgresql://", "postgres://")) else "sqlite"

    @property
    def sqlite_path(self) -> Path:
        """The file behind a ``sqlite:///path`` URL (three slashes, then a relative or absolute path)."""
        return Path(self.database_url.removeprefix("sqlite:///"))


class KeySettings(Section, frozen=True, kw_only=True):
    dir: Path = Path("keys")
    signing_alg: SigningAlg = "EdDSA"
    jwks_max_age: int = 300
    reload_interval: float = 5.0
    rotation_delay: int | None = None
    """Seconds between `idp keys rotate` and the new key signing; None: :attr:`minimum_rotation_delay`."""

    ENV: ClassVar[Mapping[str, tuple[str, Callable[[str], Any]]]] = {
        "dir": ("IDP_KEYS_DIR", Path),
        "signing_alg": ("IDP_SIGNING_ALG", choice(*SIGNING_ALGS)),
        "jwks_max_age": ("IDP_JWKS_MAX_AGE", positive_int),
        "reload_interval": ("IDP_KEYS_RELOAD_INTERVAL", non_negative_float),
        "rotation_delay": ("IDP_KEY_ROTATION_DELAY", positive_int),
    }

    def __post_init__(self) -> None:
        if self.rotation_delay is not None and self.rotation_delay < self.minimum_rotation_delay:
            raise ConfigError(
                f"IDP_KEY_ROTATION_DELAY={self.rotation_delay} is invalid: must be at least "
                f"IDP_JWKS_MAX_AGE + IDP_KEYS_RELOAD_INTERVAL ({self.minimum_rotation_delay}) "
                "so caches see a key before it signs"
            )

    @property
    def minimum_rotation_delay(self) -> int:
        """A rotated-in key reaches the JWKS at an instance's next folder reload, and a verifier
        may then keep the older JWKS for a full max-age: the new key must not sign before."""
        return self.jwks_max_age + math.ceil(self.reload_interval)

    @property
    def effective_rotation_delay(self) -> int:
        return self.minimum_rotation_delay if self.rotation_delay is None else self.rotation_delay


class SessionSettings(Section, frozen=True, kw_only=True):
    access_token_ttl: int = 900
    absolute_ttl: int = 30 * 24 * 3600
    idle_ttl: int = 7 * 24 * 3600
    reuse_grace: float = 10.0

    ENV: ClassVar[Mapping[str, tuple[str, Callable[[str], Any]]]] = {
        "access_token_ttl": ("IDP_ACCESS_TOKEN_TTL", positive_int),
        "absolute_ttl": ("IDP_REFRESH_ABSOLUTE_TTL", positive_int),
        "idle_ttl": ("IDP_REFRESH_IDLE_TTL", positive_int),
        "reuse_grace": ("IDP_REFRESH_REUSE_GRACE", non_negative_float),
    }

    def __post_init__(self) -> None:
        if self.idle_ttl > self.absolute_ttl:
            raise ConfigError(
                f"IDP_REFRESH_IDLE_TTL={self.idle_ttl} is invalid: must not exceed IDP_REFRESH_ABSOLUTE_TTL"
            )


class Argon2Settings(Section, frozen=True, kw_only=True):
    memory_kib: int = 19456
    time_cost: int = 2
    parallelism: int = 1
    threads: int = msgspec.field(default_factory=lambda: os.cpu_count() or 2)
    max_queue: int = 64
    max_wait: float = 0.5
    priority: Literal["idle", "normal"] = "idle"

    ENV: ClassVar[Mapping[str, tuple[str, Callable[[str], Any]]]] = {
        "memory_kib": ("IDP_ARGON2_MEMORY_KIB", positive_int),
        "time_cost": ("IDP_ARGON2_TIME_COST", positive_int),
        "parallelism": ("IDP_ARGON2_PARALLELISM", positive_int),
        "threads": ("IDP_ARGON2_THREADS", positive_int),
        "max_queue": ("IDP_ARGON2_MAX_QUEUE", positive_int),
        "max_wait": ("IDP_ARGON2_MAX_WAIT", non_negative_float),
        "priority": ("IDP_ARGON2_PRIORITY", choice("idle", "normal")),
    }

    def __post_init__(self) -> None:
        if self.memory_kib < 8 * self.parallelism:
            raise ConfigError("IDP_ARGON2_MEMORY_KIB must be at least 8 * IDP_ARGON2_PARALLELISM")


class RateLimitSettings(Section, frozen=True, kw_only=True):
    """``IDP_RATELIMIT_<RULE>=LIMIT/SECONDS`` for each rule; ``IDP_LOGIN_MAX_DELAY`` seconds."""

    login_ip: Rule = Rule("login-ip", 30, 60)
    login_ip_account: Rule = Rule("login-ip-account", 10, 600)
    login_account_failures: Rule = Rule("login-account", 10, 600)
    login_max_delay: float = 5.0
    signup_ip: Rule = Rule("signup-ip", 20, 3600)
    token_ip: Rule = Rule("token-ip", 300, 60)
    token_client: Rule = Rule("token-client", 3000, 60)

    ENV: ClassVar[Mapping[str, tuple[str, Callable[[str], Any]]]] = {
        "login_ip": ("IDP_RATELIMIT_LOGIN_IP", rule("login-ip")),
        "login_ip_account": ("IDP_RATELIMIT_LOGIN_IP_ACCOUNT", rule("login-ip-account")),
        "login_account_failures": ("IDP_RATELIMIT_LOGIN_ACCOUNT_FAILURES", rule("login-account")),
        "login_max_delay": ("IDP_LOGIN_MAX_DELAY", non_negative_float),
        "signup_ip": ("IDP_RATELIMIT_SIGNUP_IP", rule("signup-ip")),
        "token_ip": ("IDP_RATELIMIT_TOKEN_IP", rule("token-ip")),
        "token_client": ("IDP_RATELIMIT_TOKEN_CLIENT", rule("token-client")),
    }


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """The served instance (address, issuer, HTTP limits) and one field per section."""

    env: Environment = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    issuer: str = "http://127.0.0.1:8000"
    audience: str = "http://127.0.0.1:8000"
    max_body_bytes: int = 64 * 1024
    cors_origins: tuple[str, ...] = ()
    hsts_max_age: int = 0
    trusted_proxies: tuple[str, ...] = ()
    """CIDRs, validated at start-up; X-Forwarded-For is believed only from these peers."""
    config_path: Path | None = None
    trust: TrustConfig = EMPTY_TRUST
    storage: StorageSettings = msgspec.field(default_factory=StorageSettings)
    keys: KeySettings = msgspec.field(default_factory=KeySettings)
    sessions: SessionSettings = msgspec.field(default_factory=SessionSettings)
    argon2: Argon2Settings = msgspec.field(default_factory=Argon2Settings)
    limits: RateLimitSettings = msgspec.field(default_factory=RateLimitSettings)
    metrics_token_sha256: str | None = None
    """SHA-256 (hex) of ``IDP_METRICS_TOKEN``: the token itself is not kept, so no repr shows it.
    Unset: ``/metrics`` answers only direct loopback requests."""
    mail: MailSettings = msgspec.field(default_factory=MailSettings)
    mfa: MfaSettings = msgspec.field(default_factory=MfaSettings)
    admin: AdminSettings = msgspec.field(default_factory=AdminSettings)

    ENV: ClassVar[Mapping[str, tuple[str, Callable[[str], Any]]]] = {
        "env": ("IDP_ENV", choice("development", "production")),
        "host": ("IDP_HOST", _host),
        "port": ("IDP_PORT", positive_int),
        "issuer": ("IDP_ISSUER", http_url),
        "audience": ("IDP_AUDIENCE", str),
        "max_body_bytes": ("IDP_MAX_BODY_BYTES", positive_int),
        "cors_origins": ("IDP_CORS_ORIGINS", origins),
        "hsts_max_age": ("IDP_HSTS_MAX_AGE", non_negative_int),
        "trusted_proxies": ("IDP_TRUSTED_PROXIES", _networks),
        "config_path": ("IDP_CONFIG", Path),
    }

    def __post_init__(self) -> None:
        if self.port > 65535:
            raise ConfigError(f"IDP_PORT={self.port} is invalid: must be at most 65535")
        parts = urlsplit(self.issuer)
        if self.env == "production" and parts.scheme != "https" and parts.hostname not in _LOOPBACK:
            raise ConfigError("IDP_ISSUER must be an https URL when IDP_ENV=production")


_LOOPBACK = frozenset({"localhost", "127.0.0.1"})


def load_settings(
    env: Mapping[str, str] | None = None, *, overrides: Mapping[str, str] | None = None
) -> Settings:
    """Build :class:`Settings` from ``IDP_*`` variables (``os.environ`` when ``env`` is None).

    ``overrides`` win over ``env``; the CLI passes ``--host``/``--port`` through it.
    """
    base = os.environ if env is None else env
    # No copy: the environment is only read, and tests can observe which variables are read.
    source: Mapping[str, str] = ChainMap(dict(overrides or {}), base)  # type: ignore[arg-type]
    values: dict[str, Any] = {
        field: value
        for field, (name, convert) in Settings.ENV.items()
        if (value := read(source, name, convert)) is not None
    }
    if "issuer" not in values:
        if values.get("env") == "production":
            raise ConfigError("IDP_ISSUER must be set when IDP_ENV=production")
        host = values.get("host", "127.0.0.1")
        host = "127.0.0.1" if host in {"0.0.0.0", "::"} else host  # noqa: S104
        values["issuer"] = f"http://{f'[{host}]' if ':' in host else host}:{values.get('port', 8000)}"
    values.setdefault("audience", values["issuer"])
    values["trust"] = load_trust_config(values.get("config_path"), source)
    values["metrics_token_sha256"] = _metrics_token_sha256(source)
    storage = StorageSettings.from_env(source)
    # Embedded-mode files (mail as .eml) live next to the SQLite file (``./data`` by default).
    data_dir = storage.sqlite_path.parent if storage.database_kind == "sqlite" else Path("data")
    mail = MailSettings.from_env(source, public_url=values["issuer"], folder=data_dir / "mail")
    # WebAuthn's relying party and the names shown in apps follow the public URL and the
    # service name, unless their own variables say otherwise.
    public = urlsplit(mail.public_url)
    return Settings(
        **values,
        storage=storage,
        keys=KeySettings.from_env(source),
        sessions=SessionSettings.from_env(source),
        argon2=Argon2Settings.from_env(source),
        limits=RateLimitSettings.from_env(source),
        mail=mail,
        mfa=MfaSettings.from_env(
            source,
            rp_id=public.hostname or "localhost",
            origins=(f"{public.scheme}://{public.netloc}",),
            totp_issuer=mail.issuer_name,
            rp_name=mail.issuer_name,
        ),
        admin=AdminSettings.from_env(source),
    )


MIN_METRICS_TOKEN_CHARS = 32


def _metrics_token_sha256(source: Mapping[str, str]) -> str | None:
    """``IDP_METRICS_TOKEN``, checked and hashed; the message never echoes the secret."""
    token = source.get("IDP_METRICS_TOKEN", "").strip()
    if not token:
        return None
    if len(token) < MIN_METRICS_TOKEN_CHARS:
        raise ConfigError(
            f"IDP_METRICS_TOKEN is too short: use at least {MIN_METRICS_TOKEN_CHARS} characters"
        )
    return hashlib.sha256(token.encode()).hexdigest()
