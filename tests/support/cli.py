"""Run the ``idp`` command line as a real process in a folder of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.support.server import CHEAP_ARGON2

__all__ = ["run_idp"]


def run_idp(
    workdir: Path, *args: str, stdin: str = "", env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m service ARGS`` in ``workdir`` with no ``IDP_*`` from the caller but ``env``."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    child_env.update(CHEAP_ARGON2)
    child_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=workdir,
        env=child_env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
