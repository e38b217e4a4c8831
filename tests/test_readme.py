"""README.md's quick start, copied as a new user would copy it: the shell block runs top to
bottom with bash against a live ``idp serve`` and every call in it succeeds."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import run_server

ROOT = Path(__file__).resolve().parents[1]
README_HOST = "localhost:8000"


def quick_start_blocks() -> list[str]:
    """The ``sh`` blocks of the README's "Quick start" section, in order."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)


def json_values(output: str) -> list[Any]:
    """Every JSON document the block printed, in order (one per line)."""
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_readme_keeps_its_headline_commands() -> None:
    """The section starts with the two commands CI and newcomers rely on."""
    blocks = [block.strip() for block in quick_start_blocks()]
    assert blocks[0] == "uv run idp serve"
    assert "bash scripts/test.sh" in blocks
    assert "### Run the tests\n\n```sh\nbash scripts/test.sh\n```" in (ROOT / "README.md").read_text()


def test_quick_start_block_runs_top_to_bottom(tmp_path: Path) -> None:
    """Signup, login with the tokens captured, ``/v1/me`` with the access token, a refresh with
    the refresh token and ``/v1/me`` with its new access token, then the JWKS: nothing unset,
    no error body."""
    for tool in ("bash", "curl", "python3"):
        assert shutil.which(tool), f"the quick start needs {tool} on the PATH"
    (block,) = [block for block in quick_start_blocks() if "/v1/signup" in block]
    assert "$ACCESS_TOKEN" in block
    with run_server(tmp_path) as server:
        script = block.replace(README_HOST, server.url.removeprefix("http://"))
        assert README_HOST not in script
        result = subprocess.run(
            ["bash", "-eu", "-o", "pipefail"],  # an unset variable or failed step stops the run
            input=script,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=tmp_path,
        )
    assert (result.returncode, result.stderr) == (0, ""), result.stdout
    signup, me, me_after_refresh, jwks = json_values(result.stdout)
    assert signup["user"]["email"] == "ada@example.com"
    assert me["email"] == me_after_refresh["email"] == "ada@example.com"
    assert me["id"] == me_after_refresh["id"] == signup["user"]["id"]
    assert jwks["keys"], "the development server published its signing keys"
    assert {key["use"] for key in jwks["keys"]} == {"sig"}


@pytest.mark.parametrize("variable", ["ACCESS_TOKEN", "REFRESH_TOKEN"])
def test_every_variable_the_block_uses_it_sets(variable: str) -> None:
    """``$ACCESS_TOKEN`` and ``$REFRESH_TOKEN`` are assigned before their first use."""
    (block,) = [block for block in quick_start_blocks() if "/v1/signup" in block]
    assert block.index(f"{variable}=") < block.index(f"${variable}")
