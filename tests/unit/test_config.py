"""Settings come from IDP_* variables, with defaults that run with no configuration at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import ConfigError, load_settings


def test_defaults_need_no_configuration() -> None:
    """An empty environment gives the embedded default on 127.0.0.1:8000."""
    settings = load_settings({})
    assert (settings.env, settings.issuer, settings.audience) == (
        "development",
        "http://127.0.0.1:8000",
        "http://127.0.0.1:8000",
    )
    assert (settings.database_kind, settings.sqlite_path) == ("sqlite", Path("data/idp.sqlite3"))
    assert (settings.signing_alg, settings.access_token_ttl, settings.redis_url) == ("EdDSA", 900, None)
    assert (settings.argon2_memory_kib, settings.argon2_time_cost, settings.argon2_parallelism) == (
        19456,
        2,
        1,
    )


def test_issuer_follows_host_and_port() -> None:
    """Without IDP_ISSUER the issuer is built from the served address."""
    assert load_settings({}, overrides={"IDP_PORT": "9001"}).issuer == "http://127.0.0.1:9001"
    assert load_settings({"IDP_HOST": "0.0.0.0"}).issuer == "http://127.0.0.1:8000"


def test_postgres_url_selects_postgres() -> None:
    """A postgresql:// URL selects the PostgreSQL backend (with Redis for sessions)."""
    env = {"IDP_DATABASE_URL": "postgresql://u@db/idp", "IDP_REDIS_URL": "redis://cache:6379/0"}
    assert load_settings(env).database_kind == "postgresql"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"IDP_ENV": "staging"}, "IDP_ENV"),
        ({"IDP_PORT": "http"}, "IDP_PORT"),
        ({"IDP_PORT": "70000"}, "IDP_PORT"),
        ({"IDP_ISSUER": "ftp://x"}, "IDP_ISSUER"),
        ({"IDP_ISSUER": "https://x/?a=b"}, "IDP_ISSUER"),
        ({"IDP_DATABASE_URL": "mysql://x"}, "IDP_DATABASE_URL"),
        ({"IDP_REDIS_URL": "http://x"}, "IDP_REDIS_URL"),
        ({"IDP_SIGNING_ALG": "HS256"}, "IDP_SIGNING_ALG"),
        ({"IDP_SIGNING_ALG": "none"}, "IDP_SIGNING_ALG"),
        ({"IDP_ACCESS_TOKEN_TTL": "-5"}, "IDP_ACCESS_TOKEN_TTL"),
        ({"IDP_ARGON2_MEMORY_KIB": "lots"}, "IDP_ARGON2_MEMORY_KIB"),
        ({"IDP_JWKS_MAX_AGE": "600", "IDP_KEY_ROTATION_DELAY": "60"}, "IDP_KEY_ROTATION_DELAY"),
        ({"IDP_JWKS_MAX_AGE": "60", "IDP_KEY_ROTATION_DELAY": "60"}, "IDP_KEYS_RELOAD_INTERVAL"),
        ({"IDP_AUTO_MIGRATE": "maybe"}, "IDP_AUTO_MIGRATE"),
        ({"IDP_DATABASE_URL": "postgresql://u@db/idp"}, "IDP_REDIS_URL"),
        ({"IDP_REFRESH_IDLE_TTL": "100", "IDP_REFRESH_ABSOLUTE_TTL": "50"}, "IDP_REFRESH_IDLE_TTL"),
        ({"IDP_REFRESH_REUSE_GRACE": "-1"}, "IDP_REFRESH_REUSE_GRACE"),
        ({"IDP_RATELIMIT_LOGIN_IP": "lots"}, "IDP_RATELIMIT_LOGIN_IP"),
        ({"IDP_RATELIMIT_TOKEN_CLIENT": "0/60"}, "IDP_RATELIMIT_TOKEN_CLIENT"),
        ({"IDP_TRUSTED_PROXIES": "10.0.0.0/8, not-a-network"}, "IDP_TRUSTED_PROXIES"),
        ({"IDP_CORS_ORIGINS": "*"}, "IDP_CORS_ORIGINS"),
        ({"IDP_CORS_ORIGINS": "https://app.example.com/path"}, "IDP_CORS_ORIGINS"),
        ({"IDP_HSTS_MAX_AGE": "-1"}, "IDP_HSTS_MAX_AGE"),
        ({"IDP_ENV": "production"}, "IDP_ISSUER"),
        ({"IDP_ENV": "production", "IDP_ISSUER": "http://idp.example.com"}, "IDP_ISSUER"),
    ],
    ids=lambda value: (
        str(value) if isinstance(value, str) else "-".join(f"{k}={v}" for k, v in value.items())
    ),
)
def test_invalid_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    """Each invalid value is refused at start-up with a message naming its variable."""
    with pytest.raises(ConfigError, match=variable):
        load_settings(env)


def test_production_accepts_https_issuer() -> None:
    """Production with an https issuer is valid."""
    settings = load_settings({"IDP_ENV": "production", "IDP_ISSUER": "https://id.example.com/"})
    assert (settings.env, settings.issuer) == ("production", "https://id.example.com")


@pytest.mark.parametrize(
    ("host", "issuer"),
    [
        ("localhost", "http://localhost:8000"),
        ("id.internal.example", "http://id.internal.example:8000"),
        ("0.0.0.0", "http://127.0.0.1:8000"),
        ("::1", "http://[::1]:8000"),
    ],
)
def test_listen_host_is_validated_and_shapes_the_default_issuer(host: str, issuer: str) -> None:
    """IDP_HOST is an IP address or a host name; the default issuer is a valid URL for it."""
    assert load_settings({"IDP_HOST": host}).issuer == issuer


@pytest.mark.parametrize("host", ["not a host", "-bad.example", "a..b", "x" * 64])
def test_a_bad_listen_host_names_the_variable(host: str) -> None:
    """A listen address that is neither an IP address nor a host name is refused by name."""
    with pytest.raises(ConfigError, match=r"^IDP_HOST="):
        load_settings({"IDP_HOST": host})
