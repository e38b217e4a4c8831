"""What the benches print of their machine (``bench/lib/procs.py``): the huge page mode, which
halves or doubles the argon2 figures, read from the kernel's file."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))  # how the benches import it

from lib.procs import huge_pages, machine


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("always [madvise] never\n", "madvise"),
        ("[always] madvise never\n", "always"),
        ("always madvise [never]\n", "never"),
        ("always madvise never\n", "unknown"),
        ("", "unknown"),
    ],
)
def test_the_huge_page_mode_is_the_bracketed_word(tmp_path: Path, text: str, mode: str) -> None:
    path = tmp_path / "enabled"
    path.write_text(text)
    assert huge_pages(path) == mode


def test_a_missing_file_is_unknown(tmp_path: Path) -> None:
    assert huge_pages(tmp_path / "absent") == "unknown"


def test_the_machine_line_names_cpus_and_huge_pages() -> None:
    line = machine()
    assert " CPUs (" in line
    assert "transparent huge pages " in line
