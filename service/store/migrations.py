"""Forward-only SQL migrations read from ``migrations/<backend>/NNNN_name.sql``."""

from __future__ import annotations

from pathlib import Path

__all__ = ["MIGRATIONS_DIR", "Migration", "load_migrations"]

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"

Migration = tuple[str, str]


def load_migrations(backend: str, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """``(version, sql)`` pairs in order; the version is the file name without ``.sql``."""
    folder = directory / backend
    if not folder.is_dir():
        raise FileNotFoundError(f"no migrations folder at {folder}")
    return [(path.stem, path.read_text(encoding="utf-8")) for path in sorted(folder.glob("*.sql"))]
