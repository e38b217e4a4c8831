"""Settings: read once from ``IDP_*`` variables, validated, then passed explicitly.

Nothing here runs at import time. :func:`load_settings` takes the environment as a mapping so
tests build settings from plain dictionaries; every validation error names the variable.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import ipaddress
import math
import os
import re
from collections import ChainMap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

import msgspec

from service.abuse import LimitRules
from service.admin.settings import AdminSettings, load_admin_settings
from service.errors import ConfigError
from service.exchange.policy import EMPTY as EMPTY_TRUST
from service.exchange.policy import TrustConfig, load_trust_config
from service.mail.settings import MailSettings, load_mail_settings
from service.mfa.settings import MfaSettings, load_mfa_settings
from service.ratelimit import Rule, parse_rule

__all__ = ["SIGNING_ALGS", "ConfigError", "Settings", "load_settings"]

SIGNING_ALGS = ("EdDSA", "RS256", "ES256")
Environment = Literal["development", "production"]
SigningAlg = Literal["EdDSA", "RS256", "ES256"]
T = TypeVar("T")


DEFAULT_LIMITS = LimitRules(
    login_ip=Rule("login-ip", 30, 60),
    login_ip_account=Rule("login-ip-account", 10, 600),
    login_account_failures=Rule("login-account", 10, 600),
    login_max_delay=5.0,
    signup_ip=Rule("signup-ip", 20, 3600),
    token_ip=Rule("token-ip", 300, 60),
    token_client=Rule("token-client", 3000, 60),
)


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    env: Environment = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    issuer: str = "http://127.0.0.1:8000"
    audience: str = "http://127.0.0.1:8000"
    database_url: str = "sqlite:///./data/idp.sqlite3"
    redis_url: str | None = None
    keys_dir: Path = Path("keys")
    signing_alg: SigningAlg = "EdDSA"
    access_token_ttl: int = 900
    jwks_max_age: int = 300
    key_rotation_delay: int = 305
    keys_reload_interval: float = 5.0
    argon2_memory_kib: int = 19456
    argon2_time_cost: int = 2
    argon2_parallelism: int = 1
    argon2_threads: int = 2
    max_body_bytes: int = 64 * 1024
    db_pool_size: int = 10
    auto_migrate: bool = True
    redis_prefix: str = "idp:"
    redis_cluster: bool = False
    refresh_absolute_ttl: int = 30 * 24 * 3600
    refresh_idle_ttl: int = 7 * 24 * 3600
    refresh_reuse_grace: float = 10.0
    config_path: Path | None = None
    trust: TrustConfig = EMPTY_TRUST
    limits: LimitRules = DEFAULT_LIMITS
    trusted_proxies: tuple[str, ...] = ()
    """CIDRs, validated at start-up; X-Forwarded-For is believed only from these peers."""
    argon2_max_queue: int = 64
    argon2_priority: Literal["idle", "normal"] = "idle"
    cors_origins: tuple[str, ...] = ()
    hsts_max_age: int = 0
    metrics_token_sha256: str | None = None
    """SHA-256 (hex) of ``IDP_METRICS_TOKEN``: the token itself is not kept, so no repr shows it.
    Unset: ``/metrics`` answers only direct loopback requests."""
    mail: MailSettings = MailSettings()
    mfa: MfaSettings = MfaSettings()
    admin: AdminSettings = AdminSettings()

    @property
    def database_kind(self) -> Literal["sqlite", "postgresql"]:
        return "postgresql" if self.database_url.startswith(("postgresql://", "postgres://")) else "sqlite"

    @property
    def minimum_rotation_delay(self) -> int:
        """A rotated-in key reaches the JWKS at an instance's next folder reload, and a verifier
        may then keep the older JWKS for a full max-age: the new key must not sign before."""
        return self.jwks_max_age + math.ceil(self.keys_reload_interval)

    @property
    def sqlite_path(self) -> Path:
        """The file behind a ``sqlite:///path`` URL (three slashes, then a relative or absolute path)."""
        return Path(self.database_url.removeprefix("sqlite:///"))


def _parse(env: Mapping[str, str], name: str, convert: Callable[[str], T], default: T) -> T:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return convert(raw.strip())
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is invalid: {exc}") from exc


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _boolean(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def convert(raw: str) -> str:
        if raw not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return raw

    return convert


def _http_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError("expected an absolute http(s) URL")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    return raw.rstrip("/")


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


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _origins(raw: str) -> tuple[str, ...]:
    """Comma-separated exact origins (``https://app.example.com``); no wildcards."""
    origins = tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in {"http", "https"} or not parts.netloc or parts.path or "*" in origin:
            raise ValueError(f"{origin!r} is not an exact origin like https://app.example.com")
    return origins


def _networks(raw: str) -> tuple[str, ...]:
    return tuple(
        str(ipaddress.ip_network(part.strip(), strict=False)) for part in raw.split(",") if part.strip()
    )


def _limits(source: Mapping[str, str]) -> LimitRules:
    """``IDP_RATELIMIT_<RULE>=LIMIT/SECONDS`` for each rule; ``IDP_LOGIN_MAX_DELAY`` seconds."""
    rules = {}
    for field in (
        "login_ip",
        "login_ip_account",
        "login_account_failures",
        "signup_ip",
        "token_ip",
        "token_client",
    ):
        default: Rule = getattr(DEFAULT_LIMITS, field)
        variable = f"IDP_RATELIMIT_{field.upper()}"
        rules[field] = _parse(source, variable, functools.partial(parse_rule, default.name), default)
    max_delay = _parse(source, "IDP_LOGIN_MAX_DELAY", _non_negative_float, DEFAULT_LIMITS.login_max_delay)
    return LimitRules(login_max_delay=max_delay, **rules)


def load_settings(
    env: Mapping[str, str] | None = None, *, overrides: Mapping[str, str] | None = None
) -> Settings:
    """Build :class:`Settings` from ``IDP_*`` variables (``os.environ`` when ``env`` is None).

    ``overrides`` win over ``env``; the CLI passes ``--host``/``--port`` through it.
    """
    base = os.environ if env is None else env
    # No copy: the environment is only read, and tests can observe which variables are read.
    source: Mapping[str, str] = ChainMap(dict(overrides or {}), base)  # type: ignore[arg-type]
    environment = _parse(source, "IDP_ENV", _choice(("development", "production")), "development")
    host = _parse(source, "IDP_HOST", _host, "127.0.0.1")
    port = _parse(source, "IDP_PORT", _positive_int, 8000)
    if port > 65535:
        raise ConfigError(f"IDP_PORT={port} is invalid: must be at most 65535")
    explicit_issuer = source.get("IDP_ISSUER", "").strip()
    default_host = "127.0.0.1" if host in {"0.0.0.0", "::"} else host  # noqa: S104
    if ":" in default_host:
        default_host = f"[{default_host}]"
    issuer = _parse(source, "IDP_ISSUER", _http_url, f"http://{default_host}:{port}")
    if environment == "production":
        if not explicit_issuer:
            raise ConfigError("IDP_ISSUER must be set when IDP_ENV=production")
        if urlsplit(issuer).scheme != "https" and urlsplit(issuer).hostname not in {
            "localhost",
            "127.0.0.1",
        }:
            raise ConfigError("IDP_ISSUER must be an https URL when IDP_ENV=production")
    jwks_max_age = _parse(source, "IDP_JWKS_MAX_AGE", _positive_int, 300)
    reload_interval = _parse(source, "IDP_KEYS_RELOAD_INTERVAL", _non_negative_float, 5.0)
    # A rotated-in key reaches the JWKS only at an instance's next folder reload; a verifier
    # may then cache the older JWKS for a full max-age. The new key must not sign before that.
    minimum_delay = jwks_max_age + math.ceil(reload_interval)
    rotation_delay = _parse(source, "IDP_KEY_ROTATION_DELAY", _positive_int, minimum_delay)
    if rotation_delay < minimum_delay:
        raise ConfigError(
            f"IDP_KEY_ROTATION_DELAY={rotation_delay} is invalid: must be at least IDP_JWKS_MAX_AGE "
            f"+ IDP_KEYS_RELOAD_INTERVAL ({minimum_delay}) so caches see a key before it signs"
        )
    memory = _parse(source, "IDP_ARGON2_MEMORY_KIB", _positive_int, 19456)
    parallelism = _parse(source, "IDP_ARGON2_PARALLELISM", _positive_int, 1)
    if memory < 8 * parallelism:
        raise ConfigError("IDP_ARGON2_MEMORY_KIB must be at least 8 * IDP_ARGON2_PARALLELISM")
    database_url = _parse(source, "IDP_DATABASE_URL", _database_url, "sqlite:///./data/idp.sqlite3")
    redis_url = _parse(source, "IDP_REDIS_URL", _redis_url, None)
    if redis_url is None and database_url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            "IDP_REDIS_URL must be set when IDP_DATABASE_URL is PostgreSQL: "
            "sessions (refresh-token families) live in Redis in that deployment"
        )
    absolute_ttl = _parse(source, "IDP_REFRESH_ABSOLUTE_TTL", _positive_int, 30 * 24 * 3600)
    idle_ttl = _parse(source, "IDP_REFRESH_IDLE_TTL", _positive_int, 7 * 24 * 3600)
    if idle_ttl > absolute_ttl:
        raise ConfigError(
            f"IDP_REFRESH_IDLE_TTL={idle_ttl} is invalid: must not exceed IDP_REFRESH_ABSOLUTE_TTL"
        )
    config_path = _parse(source, "IDP_CONFIG", Path, None)
    mail = load_mail_settings(source, issuer=issuer, data_dir=_data_dir(database_url))
    return Settings(
        env=environment,  # type: ignore[arg-type]
        host=host,
        port=port,
        issuer=issuer,
        audience=_parse(source, "IDP_AUDIENCE", str, issuer),
        database_url=database_url,
        redis_url=redis_url,
        keys_dir=_parse(source, "IDP_KEYS_DIR", Path, Path("keys")),
        signing_alg=_parse(source, "IDP_SIGNING_ALG", _choice(SIGNING_ALGS), "EdDSA"),  # type: ignore[arg-type]
        access_token_ttl=_parse(source, "IDP_ACCESS_TOKEN_TTL", _positive_int, 900),
        jwks_max_age=jwks_max_age,
        key_rotation_delay=rotation_delay,
        keys_reload_interval=reload_interval,
        argon2_memory_kib=memory,
        argon2_time_cost=_parse(source, "IDP_ARGON2_TIME_COST", _positive_int, 2),
        argon2_parallelism=parallelism,
        argon2_threads=_parse(source, "IDP_ARGON2_THREADS", _positive_int, os.cpu_count() or 2),
        max_body_bytes=_parse(source, "IDP_MAX_BODY_BYTES", _positive_int, 64 * 1024),
        db_pool_size=_parse(source, "IDP_DB_POOL_SIZE", _positive_int, 10),
        auto_migrate=_parse(source, "IDP_AUTO_MIGRATE", _boolean, True),
        redis_prefix=_parse(source, "IDP_REDIS_PREFIX", str, "idp:"),
        redis_cluster=_parse(source, "IDP_REDIS_CLUSTER", _boolean, False),
        refresh_absolute_ttl=absolute_ttl,
        refresh_idle_ttl=idle_ttl,
        refresh_reuse_grace=_parse(source, "IDP_REFRESH_REUSE_GRACE", _non_negative_float, 10.0),
        config_path=config_path,
        trust=load_trust_config(config_path, source),
        limits=_limits(source),
        trusted_proxies=_parse(source, "IDP_TRUSTED_PROXIES", _networks, ()),
        argon2_max_queue=_parse(source, "IDP_ARGON2_MAX_QUEUE", _positive_int, 64),
        argon2_priority=_parse(source, "IDP_ARGON2_PRIORITY", _choice(("idle", "normal")), "idle"),  # type: ignore[arg-type]
        cors_origins=_parse(source, "IDP_CORS_ORIGINS", _origins, ()),
        hsts_max_age=_parse(source, "IDP_HSTS_MAX_AGE", _non_negative_int, 0),
        metrics_token_sha256=_metrics_token_sha256(source),
        mail=mail,
        mfa=load_mfa_settings(source, public_url=mail.public_url, name=mail.issuer_name),
        admin=load_admin_settings(source),
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


def _data_dir(database_url: str) -> Path:
    """Where embedded-mode files live: next to the SQLite file (``./data`` by default)."""
    if database_url.startswith("sqlite:///"):
        return Path(database_url.removeprefix("sqlite:///")).parent
    return Path("data")
