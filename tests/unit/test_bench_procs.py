"""What the benches print of their machine (``bench/lib/procs.py``): CPUs, model, and the huge
page mode, which halves or doubles the argon2 figures."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))  # how the benches import it

from lib.procs import CORES, huge_pages, machine

from service.passwords import huge_page_mode


def test_the_machine_line_names_cpus_and_huge_pages() -> None:
    line = machine()
    assert line.startswith(f"{CORES} CPUs (")
    assert line.endswith(f"transparent huge pages {huge_pages()}")
    assert huge_pages() == (huge_page_mode() or "unknown")
