"""README.md's admin API example, copied as an operator would: register an admin client with
the CLI, get a client_credentials token with curl, list accounts with curl, against a live
``idp serve`` sharing the CLI's database."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.server import CHEAP_ARGON2, run_server

ROOT = Path(__file__).resolve().parents[1]


def admin_block() -> str:
    section = (ROOT / "README.md").read_text().split("## Admin API", 1)[1].split("\n## ", 1)[0]
    blocks: list[str] = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1
    return blocks[0]


def test_admin_example_runs_top_to_bottom(tmp_path: Path) -> None:
    """The block's last call prints the account signed up before it (and only it: the prefix
    filter applies), with no error and nothing unset."""
    for tool in ("bash", "curl", "python3", "sed"):
        assert shutil.which(tool), f"the example needs {tool} on the PATH"
    block = admin_block()
    with run_server(tmp_path) as server:
        for email in ("ada@example.com", "bob@example.com"):
            signup = subprocess.run(
                [
                    "curl",
                    "-s",
                    "-H",
                    "content-type: application/json",
                    "-d",
                    json.dumps({"email": email, "password": "correct horse battery"}),
                    f"{server.url}/v1/signup",
                ],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            )
            assert "user" in json.loads(signup.stdout)
        script = block.replace("localhost:8000", server.url.removeprefix("http://")).replace(
            "uv run idp", f"{shlex.quote(sys.executable)} -m service"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")} | CHEAP_ARGON2
        result = subprocess.run(
            ["bash", "-eu", "-o", "pipefail"],
            input=script,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=tmp_path,
            env=env,
        )
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout.strip().splitlines()[-1])
    assert [user["email"] for user in listing["users"]] == ["ada@example.com"]
    assert listing["next_cursor"] is None
