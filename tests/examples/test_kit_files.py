"""The node kit's dependency: pinned exactly, locked, installed, and the same jose as the interop
tests, so the kit teams copy is the one our interop suite vouches for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.examples.kits import NODE_DIR, require_node_kit

INTEROP_NODE_DIR = Path(__file__).resolve().parents[1] / "interop" / "node"


def _json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def test_node_kit_pins_the_interop_jose_version() -> None:
    """``jose`` in examples/node-api is an exact version, equal to tests/interop/node's, and the
    committed lock file resolves it to that version with the same integrity hash."""
    wanted = _json(INTEROP_NODE_DIR / "package.json")["dependencies"]["jose"]
    manifest = _json(NODE_DIR / "package.json")
    assert manifest["type"] == "module"
    assert manifest["dependencies"] == {"jose": wanted}, "jose must be pinned exactly to the interop version"
    assert wanted[0].isdigit(), f"the interop jose pin {wanted!r} is not an exact version"

    locked = _json(NODE_DIR / "package-lock.json")["packages"]
    interop_locked = _json(INTEROP_NODE_DIR / "package-lock.json")["packages"]
    assert locked[""]["dependencies"] == {"jose": wanted}, "package-lock.json is stale: run npm install"
    assert locked["node_modules/jose"]["version"] == wanted
    assert locked["node_modules/jose"]["integrity"] == interop_locked["node_modules/jose"]["integrity"]


def test_node_kit_dependencies_are_installed() -> None:
    """``npm ci --prefix examples/node-api`` has run: the installed jose is the pinned one
    (fails, never skips, with the command to run)."""
    require_node_kit()
    installed = _json(NODE_DIR / "node_modules" / "jose" / "package.json")["version"]
    pinned = _json(NODE_DIR / "package.json")["dependencies"]["jose"]
    assert installed == pinned, (
        f"jose {installed} installed, {pinned} pinned: run `npm ci --prefix examples/node-api`"
    )
