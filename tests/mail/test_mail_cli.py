"""``idp mail work --once`` and ``idp mail list [--failed] [--json]`` as real processes on a
SQLite file the test filled through the outbox store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from service.store.sqlite import SqliteDatabase
from service.store.sqlite_mail import SqliteOutbox
from tests.mail.conftest import mail_for
from tests.support.server import CHEAP_ARGON2


def idp(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    child_env.update(CHEAP_ARGON2, **env)
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=cwd,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_work_once_delivers_to_files_and_list_shows_it(tmp_path: Path) -> None:
    """With no SMTP configured the worker writes data/mail/*.eml next to the SQLite default;
    the listing masks the recipient, --json is machine-readable, --failed shows only dead rows."""
    db = await SqliteDatabase.open(tmp_path / "data" / "idp.sqlite3")
    await db.migrate()
    queued = mail_for("grace.hopper@example.com", at=1_000.0)
    await SqliteOutbox(db).enqueue(queued)
    await db.close()

    worked = idp(tmp_path, "mail", "work", "--once")
    assert worked.returncode == 0, worked.stderr
    assert worked.stdout.strip() == "handled 1 message(s)"
    assert [p.name for p in (tmp_path / "data" / "mail").iterdir()] == [f"{queued.id.hex}.eml"]
    assert "written to data/mail/" in worked.stderr
    assert "grace.hopper" not in worked.stderr

    listed = idp(tmp_path, "mail", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    expected = (str(queued.id), "sent", "g***@example.com", 1)
    assert (row["id"], row["state"], row["recipient"], row["attempts"]) == expected
    assert row["created_at"] == "1970-01-01T00:16:40+00:00"
    failed = idp(tmp_path, "mail", "list", "--failed")
    assert (failed.returncode, failed.stdout.strip()) == (0, "no dead mail")
    table = idp(tmp_path, "mail", "list")
    assert str(queued.id) in table.stdout
