"""The ``idp`` command line: users, keys, migrate and start-up refusals, as real processes."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import uvicorn

import service.cli
from service.config import Settings
from service.store.migrations import load_migrations
from tests.support.server import CHEAP_ARGON2

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def idp(tmp_path: Path) -> Run:
    """Run ``python -m service`` in an isolated folder (own keys and SQLite file)."""

    def run(
        *args: str, stdin: str = "", env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
        child_env.update(CHEAP_ARGON2)
        child_env.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "service", *args],
            cwd=tmp_path,
            env=child_env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return run


def test_users_lifecycle(idp: Run) -> None:
    """create (password on stdin, never argv), roles, disable, enable; errors exit 1."""
    created = idp(
        "users",
        "create",
        "Ada@Example.com",
        "--name",
        "Ada",
        "--role",
        "admin",
        stdin="correct horse battery\n",
    )
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("created user ")
    duplicate = idp("users", "create", "ada@example.com", stdin="correct horse battery\n")
    assert (duplicate.returncode, "email_taken" in duplicate.stderr) == (1, True)
    weak = idp("users", "create", "bob@example.com", stdin="password\n")
    assert (weak.returncode, "password_too_common" in weak.stderr) == (1, True)
    assert idp("users", "roles", "ada@example.com").stdout.strip() == "admin"
    assert (
        idp("users", "roles", "ada@example.com", "--set", "reader, writer").stdout.strip() == "reader,writer"
    )
    assert "disabled" in idp("users", "disable", "ada@example.com").stdout
    assert "enabled" in idp("users", "enable", "ada@example.com").stdout
    missing = idp("users", "disable", "nobody@example.com")
    assert (missing.returncode, "not_found" in missing.stderr) == (1, True)


def test_keys_generate_list_rotate_prune(idp: Run, tmp_path: Path) -> None:
    """Keys are created 0600 in keys/, listed with states, rotated with a delay."""
    generated = idp("keys", "generate", "--alg", "ES256")
    assert generated.returncode == 0, generated.stderr
    rotated = idp("keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    assert '"event":"key_rotation"' in rotated.stderr, "rotations are audited"
    listing = idp("keys", "list").stdout
    assert ("ES256" in listing, "EdDSA" in listing, "signing" in listing, "pending" in listing) == (True,) * 4
    files = sorted((tmp_path / "keys").glob("*.json"))
    assert len(files) == 2
    assert {oct(path.stat().st_mode & 0o777) for path in files} == {"0o600"}
    assert idp("keys", "prune").stdout.strip() == "nothing to prune"


def test_rotate_refuses_a_delay_shorter_than_the_jwks_cache(idp: Run) -> None:
    """A new key must not sign before verifiers' cached JWKS can have seen it."""
    result = idp("keys", "rotate", "--delay", "10")
    assert result.returncode == 2
    assert "IDP_JWKS_MAX_AGE + IDP_KEYS_RELOAD_INTERVAL" in result.stderr


def test_migrate_applies_then_reports_up_to_date(idp: Run) -> None:
    """``idp migrate`` applies once and is idempotent."""
    first = idp("migrate")
    every = ", ".join(version for version, _ in load_migrations("sqlite"))
    assert (first.returncode, first.stdout.strip()) == (0, f"applied: {every}")
    assert every.startswith("0001_users, 0002_clients_and_sessions, 0003_identities")
    assert idp("migrate").stdout.strip() == "database is up to date"


def test_production_refuses_to_start_without_keys(idp: Run, tmp_path: Path) -> None:
    """In production an empty keys folder is an error, never a silently generated key."""
    env = {"IDP_ENV": "production", "IDP_ISSUER": "https://id.example.com"}
    result = idp("serve", "--port", "1", env=env)
    assert result.returncode == 2
    assert "idp keys generate" in result.stderr
    assert not list((tmp_path / "keys").glob("*.json"))


def test_invalid_configuration_names_the_variable(idp: Run) -> None:
    """A bad IDP_* value stops the CLI with exit 2 and the variable's name."""
    result = idp("migrate", env={"IDP_SIGNING_ALG": "HS256"})
    assert result.returncode == 2
    assert "IDP_SIGNING_ALG" in result.stderr


def test_clients_add_list_remove(idp: Run, tmp_path: Path) -> None:
    """A client's secret is printed once and stored only as a hash."""
    added = idp("clients", "add", "Billing API", "--id", "billing")
    assert added.returncode == 0, added.stderr
    lines = dict(line.split(": ", 1) for line in added.stdout.strip().splitlines())
    assert lines["client_id"] == "billing"
    assert lines["client_secret"].startswith("idpcs_")
    assert lines["client_secret"].encode() not in (tmp_path / "data" / "idp.sqlite3").read_bytes()
    assert idp("clients", "add", "again", "--id", "billing").returncode == 1
    assert idp("clients", "list").stdout.splitlines()[1].startswith("billing\tBilling API\t")
    assert idp("clients", "remove", "billing").returncode == 0
    assert idp("clients", "list").stdout.strip() == "no clients"
    assert idp("clients", "remove", "billing").returncode == 1


def test_clients_add_registers_a_public_code_flow_client(idp: Run) -> None:
    """--redirect-uri and --public make a PKCE-only code-flow client with no secret."""
    added = idp(
        "clients",
        "add",
        "SPA",
        "--id",
        "spa",
        "--public",
        "--redirect-uri",
        "http://127.0.0.1:5173/callback",
        "--post-logout-redirect-uri",
        "http://127.0.0.1:5173/",
        "--scope",
        "api:read,api:write",
    )
    assert added.returncode == 0, added.stderr
    lines = dict(line.split(": ", 1) for line in added.stdout.strip().splitlines())
    assert lines == {"client_id": "spa", "grant_types": "authorization_code"}
    assert "no secret" in added.stderr
    refused = idp("clients", "add", "Bad", "--redirect-uri", "http://evil.example/cb")
    assert refused.returncode == 1
    assert "loopback" in refused.stderr


def test_clients_add_require_mfa(idp: Run) -> None:
    """--require-mfa registers a client whose sign-ins need a second factor; without it the
    output has no such line."""
    added = idp("clients", "add", "Payroll", "--id", "payroll", "--require-mfa")
    assert added.returncode == 0, added.stderr
    lines = dict(line.split(": ", 1) for line in added.stdout.strip().splitlines())
    assert lines["require_mfa"] == "true"
    plain = idp("clients", "add", "Billing", "--id", "billing")
    assert "require_mfa" not in plain.stdout


def test_serve_sizes_every_workers_argon2_pool_to_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """``idp serve --workers N`` leaves IDP_ARGON2_THREADS to its default (the CPU count) in every
    worker: all of a gateway's keep-alive connections may land on one worker, which must then be
    able to hash on every core."""
    environ: dict[str, str] = {}
    started: list[dict[str, object]] = []
    monkeypatch.setattr(os, "environ", environ)
    monkeypatch.setattr(service.cli, "with_runtime", lambda *_args, **_kwargs: None)
    monkeypatch.setattr(uvicorn, "run", lambda *_args, **kwargs: started.append(kwargs))
    service.cli.cmd_serve(Settings(), argparse.Namespace(workers=2, clock=None))
    assert started[0]["workers"] == 2
    assert "IDP_ARGON2_THREADS" not in environ


@pytest.mark.parametrize(
    ("mode", "on_libsodium", "said"),
    [
        ("madvise", True, True),
        ("never", True, True),
        ("always", True, False),
        (None, True, False),
        ("madvise", False, False),
    ],
)
def test_serve_says_once_what_small_pages_cost_the_hashes(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    mode: str | None,
    on_libsodium: bool,
    said: bool,
) -> None:
    """libsodium maps each hash's memory afresh; in 4 KiB pages that is ~40 % of a hash's CPU.
    ``idp serve`` says so once (its preflight), not once per worker, and only when it applies."""
    runtime = SimpleNamespace(passwords=SimpleNamespace(on_libsodium=on_libsodium))

    def with_runtime(_settings: Settings, work: Any, **_kwargs: Any) -> None:
        asyncio.run(work(runtime))

    monkeypatch.setattr(os, "environ", {})
    monkeypatch.setattr(service.cli, "with_runtime", with_runtime)
    monkeypatch.setattr(service.cli, "huge_page_mode", lambda: mode)
    monkeypatch.setattr(uvicorn, "run", lambda *_args, **_kwargs: None)
    with caplog.at_level(logging.INFO, logger="idp"):
        service.cli.cmd_serve(Settings(), argparse.Namespace(workers=2, clock=None))
    notices = [record.getMessage() for record in caplog.records if "huge pages" in record.getMessage()]
    expected = f"argon2: transparent huge pages are '{mode}', so each hash maps its 19 MiB in 4 KiB pages"
    assert len(notices) == (1 if said else 0)
    assert all(notice.startswith(expected) for notice in notices)


def test_users_and_clients_commands_use_the_injected_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``idp users`` and ``idp clients`` open the runtime with ``main``'s clock, not the system's:
    what they create carries the injected time (issue 11: the CLI uses the clock)."""
    from service.cli import main  # noqa: PLC0415 - in-process, unlike the tests above
    from service.clock import FrozenClock  # noqa: PLC0415

    for name in [name for name in os.environ if name.startswith("IDP_")]:
        monkeypatch.delenv(name)
    for name, value in CHEAP_ARGON2.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("correct horse battery\n"))
    clock = FrozenClock(1_000_000_000.0)  # 2001-09-09T01:46:40Z
    assert main(["users", "create", "ada@example.com"], clock=clock) == 0
    assert main(["clients", "add", "Billing", "--id", "billing"], clock=clock) == 0
    capsys.readouterr()
    assert main(["users", "list", "--json"], clock=clock) == 0
    assert main(["clients", "list", "--json"], clock=clock) == 0
    out = capsys.readouterr().out
    assert out.count('"created_at": "2001-09-09T01:46:40+00:00"') == 2, out
