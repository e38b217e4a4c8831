"""Open the backends the storage settings name: part of the composition root, so the stores
themselves never see the settings."""

from __future__ import annotations

import msgspec

from service.config import StorageSettings
from service.limits import RateLimiter
from service.ratelimit import MemoryRateLimiter
from service.store.admin import AdminStore
from service.store.base import Database
from service.store.exchange import ReplayCache
from service.store.mail import AccountTokenStore, MailOutbox
from service.store.mfa import MfaStore
from service.store.oidc import OidcStore
from service.store.postgres import PostgresClientStore, PostgresDatabase
from service.store.postgres_admin import PostgresAdminStore
from service.store.postgres_mail import PostgresAccountTokens, PostgresOutbox
from service.store.postgres_mfa import PostgresMfaStore
from service.store.redis import RedisFamilyStore, RedisReplayCache, connect_redis
from service.store.redis_limits import RedisRateLimiter
from service.store.sessions import ClientStore, FamilyStore
from service.store.sql_oidc import PostgresOidcStore, SqliteOidcStore
from service.store.sqlite import SqliteDatabase
from service.store.sqlite_admin import SqliteAdminStore
from service.store.sqlite_mail import SqliteAccountTokens, SqliteOutbox
from service.store.sqlite_mfa import SqliteMfaStore
from service.store.sqlite_sessions import SqliteClientStore, SqliteFamilyStore, SqliteReplayCache

__all__ = ["Stores", "open_stores"]


class Stores(msgspec.Struct, frozen=True):
    database: Database
    families: FamilyStore
    clients: ClientStore
    replay: ReplayCache
    limiter: RateLimiter
    outbox: MailOutbox
    account_tokens: AccountTokenStore

    async def close(self) -> None:
        """Sessions first (on Redis: the link the replay cache and limiter share), then SQL."""
        await self.families.close()
        await self.database.close()

    mfa: MfaStore
    oidc: OidcStore
    admin: AdminStore


async def open_stores(settings: StorageSettings) -> Stores:
    """Accounts and clients in SQL; sessions, replay cache and rate limits in Redis when
    configured, else in SQLite and in this process (the embedded mode is one instance;
    :class:`StorageSettings` refuses PostgreSQL without Redis)."""
    if settings.redis_url is None:
        sqlite = await SqliteDatabase.open(settings.sqlite_path)
        return Stores(
            sqlite,
            SqliteFamilyStore(sqlite),
            SqliteClientStore(sqlite),
            SqliteReplayCache(sqlite),
            MemoryRateLimiter(),
            SqliteOutbox(sqlite),
            SqliteAccountTokens(sqlite),
            SqliteMfaStore(sqlite),
            SqliteOidcStore(sqlite),
            SqliteAdminStore(sqlite),
        )
    database: Database
    clients: ClientStore
    outbox: MailOutbox
    tokens: AccountTokenStore
    mfa: MfaStore
    admin: AdminStore
    if settings.database_kind == "postgresql":
        postgres = await PostgresDatabase.open(settings.database_url, pool_size=settings.db_pool_size)
        database, clients = postgres, PostgresClientStore(postgres)
        outbox, tokens = PostgresOutbox(postgres), PostgresAccountTokens(postgres)
        mfa = PostgresMfaStore(postgres)
        oidc: OidcStore = PostgresOidcStore(postgres)
        admin = PostgresAdminStore(postgres)
    else:
        sqlite = await SqliteDatabase.open(settings.sqlite_path)
        database, clients = sqlite, SqliteClientStore(sqlite)
        outbox, tokens = SqliteOutbox(sqlite), SqliteAccountTokens(sqlite)
        mfa = SqliteMfaStore(sqlite)
        oidc = SqliteOidcStore(sqlite)
        admin = SqliteAdminStore(sqlite)
    redis = await connect_redis(settings.redis_url, cluster=settings.redis_cluster)
    families = RedisFamilyStore(redis, prefix=settings.redis_prefix)
    replay = RedisReplayCache(redis, prefix=settings.redis_prefix)
    limiter = RedisRateLimiter(redis, prefix=settings.redis_prefix)
    return Stores(database, families, clients, replay, limiter, outbox, tokens, mfa, oidc, admin)
