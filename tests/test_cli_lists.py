"""What a new user meets in the command line: list commands with a header row and ``--json``,
and a clear word when no password was given."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.cli import run_idp


@pytest.mark.parametrize("stdin", ["", "\n"], ids=["end-of-input", "empty-line"])
def test_users_create_without_a_password_says_so(tmp_path: Path, stdin: str) -> None:
    """``idp users create EMAIL < /dev/null`` names the missing password (not a policy code)
    and creates nothing."""
    result = run_idp(tmp_path, "users", "create", "ada@example.com", stdin=stdin)
    assert (result.returncode, "password_too_short" in result.stderr) == (2, False), result.stderr
    assert "no password given" in result.stderr
    again = run_idp(tmp_path, "users", "create", "ada@example.com", stdin="correct horse battery\n")
    assert again.returncode == 0, again.stderr


def test_clients_list_has_a_header_row(tmp_path: Path) -> None:
    """Like ``keys list``, the client listing starts with the names of its columns."""
    assert run_idp(tmp_path, "clients", "add", "Billing API", "--id", "billing").returncode == 0
    lines = run_idp(tmp_path, "clients", "list").stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [["client_id", "name"], ["billing", "Billing"]]


def test_clients_list_json(tmp_path: Path) -> None:
    """``clients list --json``: one object per client, an empty array when there is none."""
    assert json.loads(run_idp(tmp_path, "clients", "list", "--json").stdout) == []
    assert run_idp(tmp_path, "clients", "add", "Billing API", "--id", "billing").returncode == 0
    (client,) = json.loads(run_idp(tmp_path, "clients", "list", "--json").stdout)
    assert (client["id"], client["name"], sorted(client)) == (
        "billing",
        "Billing API",
        ["created_at", "id", "name"],
    )
    datetime.fromisoformat(client["created_at"])


def test_keys_list_json(tmp_path: Path) -> None:
    """``keys list --json``: every key with its state and times (ISO 8601, null when unset)."""
    assert json.loads(run_idp(tmp_path, "keys", "list", "--json").stdout) == []
    assert run_idp(tmp_path, "keys", "generate").returncode == 0
    assert run_idp(tmp_path, "keys", "rotate").returncode == 0
    keys = json.loads(run_idp(tmp_path, "keys", "list", "--json").stdout)
    assert [(key["alg"], key["state"]) for key in keys] == [("EdDSA", "signing"), ("EdDSA", "pending")]
    assert keys[0]["retires_at"] == keys[1]["activates_at"]
    assert keys[1]["retires_at"] is None
    assert {path.stem for path in (tmp_path / "keys").glob("*.json")} == {key["kid"] for key in keys}
    assert {name for key in keys for name in key} == {
        "kid",
        "alg",
        "state",
        "created_at",
        "activates_at",
        "retires_at",
    }, "no key material in the listing"
