"""Open the backend a :class:`~service.config.Settings` names."""

from __future__ import annotations

from service.config import Settings
from service.store.base import Database
from service.store.postgres import PostgresDatabase
from service.store.sqlite import SqliteDatabase

__all__ = ["open_database"]


async def open_database(settings: Settings) -> Database:
    if settings.database_kind == "postgresql":
        return await PostgresDatabase.open(settings.database_url, pool_size=settings.db_pool_size)
    return await SqliteDatabase.open(settings.sqlite_path)
