"""``idp keys generate`` never bypasses the staged rotation: at any instant ``keys list`` shows
at most one key of each algorithm that signs, and a key replacing another signs only after the
JWKS cache window (unless ``--force``, the emergency replacement)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.cli import run_idp


def listing(workdir: Path) -> list[dict[str, Any]]:
    result = run_idp(workdir, "keys", "list", "--json")
    assert result.returncode == 0, result.stderr
    keys: list[dict[str, Any]] = json.loads(result.stdout)
    return keys


def states(workdir: Path) -> list[str]:
    return [key["state"] for key in listing(workdir)]


def test_generate_refuses_when_a_key_already_signs(tmp_path: Path) -> None:
    """A second ``generate`` of the algorithm is refused and points to ``rotate``; the folder
    keeps its one signing key."""
    assert run_idp(tmp_path, "keys", "generate").returncode == 0
    for extra in ([], ["--alg", "EdDSA"]):
        refused = run_idp(tmp_path, "keys", "generate", *extra)
        assert refused.returncode == 1, refused.stderr
        assert ("idp keys rotate" in refused.stderr, "--force" in refused.stderr) == (True, True)
    assert states(tmp_path) == ["signing"]


def test_generate_refuses_while_a_rotation_is_staged(tmp_path: Path) -> None:
    """With a rotated-in key waiting for caches, ``generate`` would jump the queue: refused."""
    assert run_idp(tmp_path, "keys", "generate").returncode == 0
    assert run_idp(tmp_path, "keys", "rotate").returncode == 0
    assert run_idp(tmp_path, "keys", "generate").returncode == 1
    assert states(tmp_path) == ["signing", "pending"]


def test_forced_generate_replaces_every_key_at_once(tmp_path: Path) -> None:
    """``--force`` (a compromised key): the new key signs now, the signing and the staged key
    retire now and stay published for the tokens they signed. Still one signing key."""
    assert run_idp(tmp_path, "keys", "generate").returncode == 0
    assert run_idp(tmp_path, "keys", "rotate").returncode == 0
    forced = run_idp(tmp_path, "keys", "generate", "--force", "--alg", "EdDSA")
    assert forced.returncode == 0, forced.stderr
    assert "verifiers" in forced.stderr, "the forced replacement warns about cached JWKS"
    keys = listing(tmp_path)
    assert sorted((key["alg"], key["state"]) for key in keys) == [
        ("EdDSA", "retired"),
        ("EdDSA", "retired"),
        ("EdDSA", "signing"),
    ]
    assert len(list((tmp_path / "keys").glob("*.json"))) == 3


def test_generate_into_an_empty_folder_signs_at_once(tmp_path: Path) -> None:
    """The first key has no predecessor to wait for: it signs at once, as before."""
    result = run_idp(tmp_path, "keys", "generate", "--alg", "RS256")
    assert result.returncode == 0, result.stderr
    assert [(key["alg"], key["state"]) for key in listing(tmp_path)] == [("RS256", "signing")]
