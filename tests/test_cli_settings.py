"""The command line validates every ``IDP_*`` value, the listening address included, through the
settings (exit 2, the variable named, never a traceback); only ``serve`` reads the address."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import run_idp


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("IDP_PORT", "abc"),
        ("IDP_PORT", "0"),
        ("IDP_PORT", "65536"),
        ("IDP_HOST", "not a host"),
        ("IDP_HOST", "exa_mple..com"),
    ],
)
def test_serve_names_a_bad_listening_variable(tmp_path: Path, variable: str, value: str) -> None:
    """A bad IDP_PORT or IDP_HOST stops ``serve`` with exit 2 and the variable's name."""
    result = run_idp(tmp_path, "serve", env={variable: value})
    assert (result.returncode, "Traceback" in result.stderr) == (2, False), result.stderr
    assert f"configuration error: {variable}=" in result.stderr


@pytest.mark.parametrize("port", ["0", "65536", "abc"])
def test_serve_refuses_a_bad_port_flag(tmp_path: Path, port: str) -> None:
    """``--port`` outside 1-65535 is a usage error naming the flag, not a traceback."""
    result = run_idp(tmp_path, "serve", "--port", port)
    assert (result.returncode, "Traceback" in result.stderr) == (2, False), result.stderr
    assert "--port" in result.stderr


def test_the_port_flag_wins_over_a_bad_environment(tmp_path: Path) -> None:
    """``serve --port`` replaces IDP_PORT, so a bad variable does not matter when the flag is given
    (the run then stops at a later check: production without keys)."""
    env = {"IDP_PORT": "abc", "IDP_ENV": "production", "IDP_ISSUER": "https://id.example.com"}
    result = run_idp(tmp_path, "serve", "--port", "8000", env=env)
    assert result.returncode == 2, result.stderr
    assert ("IDP_PORT" in result.stderr, "idp keys generate" in result.stderr) == (False, True)


@pytest.mark.parametrize(
    "port",
    # The second is what Kubernetes sets in every pod for a service named ``idp``.
    ["abc", "tcp://10.0.0.1:8000"],
)
def test_commands_that_do_not_listen_ignore_the_port(tmp_path: Path, port: str) -> None:
    """``migrate`` and the administration commands never read IDP_PORT or IDP_HOST."""
    env = {"IDP_PORT": port, "IDP_HOST": "not a host"}
    migrated = run_idp(tmp_path, "migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert ("IDP_PORT" in migrated.stderr, "IDP_HOST" in migrated.stderr) == (False, False)
    assert migrated.stdout.startswith("applied: 0001_users")
    created = run_idp(
        tmp_path, "users", "create", "ada@example.com", stdin="correct horse battery\n", env=env
    )
    assert created.returncode == 0, created.stderr


def test_other_bad_values_still_stop_migrate(tmp_path: Path) -> None:
    """Not reading the address is not skipping validation: a bad database URL stops ``migrate``."""
    result = run_idp(tmp_path, "migrate", env={"IDP_DATABASE_URL": "mysql://x"})
    assert result.returncode == 2
    assert "configuration error: IDP_DATABASE_URL=" in result.stderr
