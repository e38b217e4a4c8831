"""Shared fixtures: real PostgreSQL and SQLite backends, an in-process app, a frozen clock.

PostgreSQL is required: when it cannot be reached the tests fail, they never skip.
Set ``IDP_TEST_POSTGRES_URL`` to point at another server (default: local, user postgres).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from litestar import Litestar
from redis.exceptions import RedisError

from service.app import create_app, serving
from service.clock import FrozenClock
from service.config import Settings, load_settings
from service.limits import RateLimiter
from service.ratelimit import MemoryRateLimiter
from service.store.base import Database
from service.store.exchange import ReplayCache
from service.store.postgres import PostgresDatabase
from service.store.redis import RedisFamilyStore, RedisReplayCache, connect_redis
from service.store.redis_limits import RedisRateLimiter
from service.store.redis_link import RedisLink
from service.store.sessions import FamilyStore
from service.store.sqlite import SqliteDatabase
from service.store.sqlite_sessions import SqliteFamilyStore, SqliteReplayCache
from service.tokens.access import quiet_eddsa_deprecation
from tests.support.own_redis import OwnRedis
from tests.support.redis_cluster import run_redis_cluster
from tests.support.server import CHEAP_ARGON2, GENEROUS_LIMITS

ADMIN_URL = os.environ.get("IDP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("IDP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BACKENDS = ["sqlite", "postgresql"]
START = 1_800_000_000.0


@pytest.fixture(autouse=True)
def _quiet_eddsa() -> None:
    """joserfc's RFC 9864 notice is silenced in the service; pytest resets filters per test."""
    quiet_eddsa_deprecation()


def database_url_for(name: str) -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="session")
async def postgres_server() -> AsyncIterator[str]:
    """A fresh database on the real server for this test session, dropped afterwards."""
    name = f"idp_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is required at {ADMIN_URL} (IDP_TEST_POSTGRES_URL): {exc}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield database_url_for(name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def empty_postgres(url: str) -> None:
    """Truncate every table but the migrations record, so the next test starts empty."""
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
        )
        if tables:
            names = ", ".join(f'"{row["tablename"]}"' for row in tables)
            await conn.execute(f"TRUNCATE {names} CASCADE")
    finally:
        await conn.close()


async def delete_prefix(url: str, prefix: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
async def redis_server() -> str:
    """The real Redis; unreachable means failure, never a skip."""
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        await client.ping()
    except (OSError, RedisError) as exc:
        pytest.fail(f"Redis is required at {REDIS_URL} (IDP_TEST_REDIS_URL): {exc}")
    finally:
        await client.aclose()
    return REDIS_URL


@pytest.fixture
async def redis_prefix(redis_server: str) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"idptest:{uuid.uuid4().hex[:10]}:"
    yield prefix
    await delete_prefix(redis_server, prefix)


@pytest.fixture(params=BACKENDS)
async def database(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_server: str
) -> AsyncIterator[Database]:
    """Every backend, migrated: the contract suite runs once per backend."""
    db: Database
    if request.param == "postgresql":
        db = await PostgresDatabase.open(postgres_server, pool_size=20)
    else:
        db = await SqliteDatabase.open(tmp_path / "idp.sqlite3")
    await db.migrate()
    try:
        yield db
    finally:
        await db.close()
        if request.param == "postgresql":
            await empty_postgres(postgres_server)


@pytest.fixture(params=BACKENDS)
async def backend_env(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_server: str, redis_server: str
) -> AsyncIterator[dict[str, str]]:
    """The two deployments, for HTTP tests that run on both: embedded (SQLite only) and
    production (PostgreSQL + Redis under a prefix of the test's own)."""
    if request.param == "postgresql":
        prefix = f"idptest:{uuid.uuid4().hex[:10]}:"
        yield {"IDP_DATABASE_URL": postgres_server, "IDP_REDIS_URL": redis_server, "IDP_REDIS_PREFIX": prefix}
        await empty_postgres(postgres_server)
        await delete_prefix(redis_server, prefix)
    else:
        yield {"IDP_DATABASE_URL": f"sqlite:///{tmp_path / 'idp.sqlite3'}"}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for an isolated instance: its own keys folder and SQLite file, cheap argon2."""

    def make(**env: str) -> Settings:
        base = {
            "IDP_KEYS_DIR": str(tmp_path / "keys"),
            "IDP_DATABASE_URL": f"sqlite:///{tmp_path / 'idp.sqlite3'}",
            "IDP_KEYS_RELOAD_INTERVAL": "0",
            **CHEAP_ARGON2,
            **GENEROUS_LIMITS,
        }
        base.update(env)
        return load_settings(base)

    return make


@pytest.fixture
def app(make_settings: Callable[..., Settings], backend_env: dict[str, str], clock: FrozenClock) -> Litestar:
    """The app on each backend, on a frozen clock."""
    return create_app(make_settings(**backend_env), clock=clock)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app in the test's own event loop, so tests may also await the
    app's runtime directly. The runtime is started here, as the app's lifespan would."""
    async with serving(app):
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
            yield http


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A redis-server of this test's own, to stop, stall or restart."""
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real three-master Redis Cluster for this test session."""
    with run_redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as url:
        yield url


@contextlib.asynccontextmanager
async def redis_under_test(
    request: pytest.FixtureRequest, redis_server: str
) -> AsyncIterator[tuple[RedisLink, str]]:
    """A link to the shared Redis (``request.param == "redis"``) or to the session's cluster
    (``"redis-cluster"``), with a key prefix of the test's own; keys on the shared Redis are
    deleted afterwards (the cluster is the session's own)."""
    cluster = request.param == "redis-cluster"
    url = request.getfixturevalue("redis_cluster") if cluster else redis_server
    prefix = f"idptest:{uuid.uuid4().hex[:10]}:"
    link = await connect_redis(url, cluster=cluster)
    try:
        yield link, prefix
    finally:
        await link.close()
        if not cluster:
            await delete_prefix(redis_server, prefix)


@pytest.fixture(params=["sqlite", "redis", "redis-cluster"])
async def families(
    request: pytest.FixtureRequest, tmp_path: Path, redis_server: str
) -> AsyncIterator[FamilyStore]:
    """Every session store: SQLite (embedded), Redis, and Redis Cluster (own key prefix)."""
    if request.param.startswith("redis"):
        async with redis_under_test(request, redis_server) as (link, prefix):
            yield RedisFamilyStore(link, prefix=prefix)
    else:
        db = await SqliteDatabase.open(tmp_path / "sessions.sqlite3")
        await db.migrate()
        try:
            yield SqliteFamilyStore(db)
        finally:
            await db.close()


@pytest.fixture(params=["sqlite", "redis", "redis-cluster"])
async def replay(
    request: pytest.FixtureRequest, tmp_path: Path, redis_server: str
) -> AsyncIterator[ReplayCache]:
    """Every exchange replay cache: SQLite (embedded), Redis and Redis Cluster (own key prefix)."""
    if request.param.startswith("redis"):
        async with redis_under_test(request, redis_server) as (link, prefix):
            yield RedisReplayCache(link, prefix=prefix)
    else:
        db = await SqliteDatabase.open(tmp_path / "replay.sqlite3")
        await db.migrate()
        try:
            yield SqliteReplayCache(db)
        finally:
            await db.close()


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def limiter(request: pytest.FixtureRequest, redis_server: str) -> AsyncIterator[RateLimiter]:
    """Every rate limiter: in-process (embedded), Redis and Redis Cluster (shared by instances)."""
    if request.param == "memory":
        yield MemoryRateLimiter()
        return
    async with redis_under_test(request, redis_server) as (link, prefix):
        yield RedisRateLimiter(link, prefix=prefix)
