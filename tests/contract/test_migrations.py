"""Migrations run forward once, even when several instances start at the same moment."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg

from service.store.migrations import load_migrations
from service.store.postgres import PostgresDatabase
from service.store.sqlite import SqliteDatabase
from tests.conftest import ADMIN_URL


async def test_postgres_concurrent_startups_apply_each_migration_once(postgres_server: str) -> None:
    """Four instances migrating an empty database at once: the advisory lock lets one apply."""
    name = f"idp_mig_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        databases = [await PostgresDatabase.open(url, pool_size=2) for _ in range(4)]
        try:
            applied = await asyncio.gather(*(db.migrate() for db in databases))
        finally:
            for db in databases:
                await db.close()
        expected = [version for version, _ in load_migrations("postgresql")]
        assert sorted(v for batch in applied for v in batch) == sorted(expected)
        conn = await asyncpg.connect(url)
        rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        await conn.close()
        assert [row["version"] for row in rows] == expected
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_sqlite_concurrent_startups_apply_each_migration_once(tmp_path: Path) -> None:
    """Two connections to one file (two worker processes) migrate it exactly once."""
    path = tmp_path / "idp.sqlite3"
    first, second = await SqliteDatabase.open(path), await SqliteDatabase.open(path)
    try:
        applied = await asyncio.gather(first.migrate(), second.migrate())
    finally:
        await first.close()
        await second.close()
    expected = [version for version, _ in load_migrations("sqlite")]
    assert sorted(v for batch in applied for v in batch) == sorted(expected)


def test_both_backends_have_the_same_migration_versions() -> None:
    """Every schema change ships for both backends under the same version name."""
    assert [v for v, _ in load_migrations("sqlite")] == [v for v, _ in load_migrations("postgresql")]
