"""Settings come from IDP_* variables, with defaults that run with no configuration at all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from service.admin.settings import AdminSettings
from service.config import (
    Argon2Settings,
    ConfigError,
    KeySettings,
    RateLimitSettings,
    SessionSettings,
    Settings,
    StorageSettings,
    load_settings,
)
from service.mail.settings import MailSettings
from service.mfa.settings import MfaSettings
from service.sections import Section


def test_defaults_need_no_configuration() -> None:
    """An empty environment gives the embedded default on 127.0.0.1:8000."""
    settings = load_settings({})
    assert (settings.env, settings.issuer, settings.audience) == (
        "development",
        "http://127.0.0.1:8000",
        "http://127.0.0.1:8000",
    )
    storage = settings.storage
    assert (storage.database_kind, storage.sqlite_path, storage.redis_url) == (
        "sqlite",
        Path("data/idp.sqlite3"),
        None,
    )
    assert (settings.keys.signing_alg, settings.sessions.access_token_ttl) == ("EdDSA", 900)
    assert (settings.argon2.memory_kib, settings.argon2.time_cost, settings.argon2.parallelism) == (
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
    assert load_settings(env).storage.database_kind == "postgresql"


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
        ({"IDP_ARGON2_MAX_WAIT": "-1"}, "IDP_ARGON2_MAX_WAIT"),
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


@pytest.mark.parametrize(
    "section",
    [
        StorageSettings,
        KeySettings,
        SessionSettings,
        Argon2Settings,
        RateLimitSettings,
        MailSettings,
        MfaSettings,
        AdminSettings,
    ],
    ids=lambda section: section.__name__,
)
def test_each_section_has_one_set_of_defaults(section: type[Section]) -> None:
    """A section built in code and one read from an empty environment are equal: the defaults
    are written once, in the section (``argon2_threads`` once had two, 2 and the CPU count)."""
    assert section.from_env({}) == section()


def test_settings_defaults_match_an_empty_environment() -> None:
    """``Settings()`` is what ``load_settings({})`` returns (but for the MFA section's names,
    which follow the mail section's service name, the issuer's host)."""
    loaded = load_settings({})
    defaults = Settings()
    assert loaded.mail == defaults.mail
    assert msgspec.structs.replace(loaded, mfa=defaults.mfa) == defaults
    assert (loaded.mfa.totp_issuer, loaded.mfa.rp_name) == (loaded.mail.issuer_name,) * 2


def test_argon2_threads_default_to_the_cpu_count() -> None:
    """Without IDP_ARGON2_THREADS each process hashes on as many threads as the machine has CPUs."""
    assert Argon2Settings().threads == (os.cpu_count() or 2)


def test_a_section_checks_its_values_when_built_in_code() -> None:
    """The checks live in the section, so a section built without the environment is checked too."""
    with pytest.raises(ConfigError, match="IDP_REDIS_URL"):
        StorageSettings(database_url="postgresql://u@db/idp")
    with pytest.raises(ConfigError, match="IDP_KEY_ROTATION_DELAY"):
        KeySettings(jwks_max_age=600, rotation_delay=60)
    assert KeySettings(jwks_max_age=600).effective_rotation_delay == 605


def test_loading_settings_imports_no_storage_driver() -> None:
    """Reading settings pulls in neither redis, asyncpg nor the domain (a fresh interpreter)."""
    code = (
        "import sys, service.config as c; c.load_settings({}); "
        "drivers = {'redis', 'asyncpg', 'hiredis', 'litestar', 'aiosmtplib'}; "
        "domain = {'service.abuse', 'service.ratelimit', 'service.exchange'}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in drivers or m in domain))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_capability_sections_use_the_one_loader() -> None:
    """Mail, MFA and admin are read like every other section: defaults that follow the issuer,
    a variable that wins over them, checks that run in code too, errors that name the variable
    (and do not repeat an SMTP URL, which may hold a password)."""
    settings = load_settings(
        {
            "IDP_ISSUER": "https://id.example.com",
            "IDP_MAIL_RETRY_BASE": "5",
            "IDP_INVITE_TTL": "60",
            "IDP_WEBAUTHN_ORIGINS": "https://login.id.example.com",
        }
    )
    assert (settings.mail.public_url, settings.mail.sender) == (
        "https://id.example.com",
        "no-reply@id.example.com",
    )
    assert (settings.mail.retry_base, settings.admin.invite_ttl) == (5.0, 60)
    assert (settings.mfa.rp_id, settings.mfa.origins) == ("id.example.com", ("https://login.id.example.com",))
    assert MailSettings(public_url="https://a.example").sender == "no-reply@a.example"
    with pytest.raises(ConfigError, match="IDP_WEBAUTHN_ORIGINS"):
        MfaSettings(rp_id="example.com", origins=("https://evil.example",))
    with pytest.raises(ConfigError, match=r"^IDP_MFA_TICKET_TTL=5 is invalid"):
        load_settings({"IDP_MFA_TICKET_TTL": "5"})
    with pytest.raises(ConfigError, match=r"^IDP_AUDIT_RETENTION_DAYS='0' is invalid"):
        load_settings({"IDP_AUDIT_RETENTION_DAYS": "0"})
    with pytest.raises(ConfigError, match=r"^IDP_SMTP_URL is invalid") as error:
        load_settings({"IDP_SMTP_URL": "ftp://user:hunter2@mail.example"})
    assert "hunter2" not in str(error.value)
