"""The ``idp`` admin commands run the admin API's domain operations (service/admin/): the
same account listing, invitation, deletion, audit trail (actor ``cli``) and secret rotation."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import run_idp

PASSWORD = "correct horse battery\n"


def test_users_and_audit_through_the_shared_domain(tmp_path: Path) -> None:
    """Create one account with a password and invite another (a mail is queued), list both as
    JSON in creation order, delete one; the stored audit trail shows the creation, invitation
    and deletion with the actor ``cli`` and no email address."""
    assert run_idp(tmp_path, "users", "create", "ada@example.com", stdin=PASSWORD).returncode == 0
    invited = run_idp(tmp_path, "users", "create", "bob@example.com", "--invite", "--role", "support")
    assert invited.returncode == 0, invited.stderr
    assert invited.stdout.startswith("invited user ")
    listed = run_idp(tmp_path, "users", "list", "--json")
    rows = json.loads(listed.stdout)
    assert [(row["email"], row["roles"]) for row in rows] == [
        ("ada@example.com", []),
        ("bob@example.com", ["support"]),
    ]
    mail = json.loads(run_idp(tmp_path, "mail", "list", "--json").stdout)
    assert [row["kind"] for row in mail] == ["invitation"]
    assert run_idp(tmp_path, "users", "delete", "bob@example.com").returncode == 0
    audit = run_idp(tmp_path, "audit", "list", "--json")
    events = json.loads(audit.stdout)
    mine = [(e["event"], e["details"].get("actor", e["details"].get("by"))) for e in events]
    assert [pair for pair in mine if pair[1] == "cli"] == [
        ("account_deleted", "cli"),
        ("user_invited", "cli"),
        ("user_created", "cli"),
    ]
    assert "bob@example.com" not in audit.stdout
    assert [row["email"] for row in json.loads(run_idp(tmp_path, "users", "list", "--json").stdout)] == [
        "ada@example.com"
    ]


def test_clients_rotate_secret(tmp_path: Path) -> None:
    """rotate-secret prints a new secret, different from the one add printed; an unknown id is
    refused with exit code 1."""
    added = run_idp(tmp_path, "clients", "add", "Billing", "--id", "billing")
    first = next(line for line in added.stdout.splitlines() if line.startswith("client_secret: "))
    rotated = run_idp(tmp_path, "clients", "rotate-secret", "billing")
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.startswith("client_secret: idpcs_")
    assert rotated.stdout.strip() != first
    unknown = run_idp(tmp_path, "clients", "rotate-secret", "nobody")
    assert (unknown.returncode, "not_found" in unknown.stderr) == (1, True)
