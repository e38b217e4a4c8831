"""Authorization codes and consents: one contract on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from service.store.base import Database, NewUser
from service.store.oidc import OidcStore, Redemption
from service.store.postgres import PostgresDatabase
from service.store.sql_oidc import PostgresOidcStore, SqliteOidcStore
from service.store.sqlite import SqliteDatabase
from tests.conftest import START


@pytest.fixture
def store(database: Database) -> OidcStore:
    if isinstance(database, PostgresDatabase):
        return PostgresOidcStore(database)
    assert isinstance(database, SqliteDatabase)
    return SqliteOidcStore(database)


async def test_a_code_is_redeemed_once_and_remembers_its_session(store: OidcStore) -> None:
    """First redemption gets the record; every later one learns the session it opened."""
    await store.save_code("h1", b"record", expires_at=START + 60, purge_at=START + 600)
    assert await store.redeem_code("h1", "fam-a") == Redemption(b"record", None)
    assert await store.redeem_code("h1", "fam-b") == Redemption(b"record", "fam-a")
    assert await store.redeem_code("unknown", "fam-c") is None


async def test_concurrent_redemptions_have_one_winner(store: OidcStore) -> None:
    """Ten parallel redemptions of one code: exactly one first use, the rest see its family."""
    await store.save_code("h2", b"r", expires_at=START + 60, purge_at=START + 600)
    results = await asyncio.gather(*(store.redeem_code("h2", f"fam-{i}") for i in range(10)))
    first = [result for result in results if result is not None and result.reused_by is None]
    assert len(first) == 1
    winner = {f"fam-{i}" for i, result in enumerate(results) if result is first[0]}
    assert {result.reused_by for result in results if result is not None and result.reused_by} == winner


async def test_saving_purges_codes_past_their_purge_time(store: OidcStore) -> None:
    """Old codes are dropped by later saves, so the table does not grow."""
    await store.save_code("old", b"r", expires_at=START, purge_at=START + 10)
    await store.save_code("new", b"r", expires_at=START + 1000, purge_at=START + 2000)
    assert await store.redeem_code("old", "f") is None
    assert await store.redeem_code("new", "f") is not None


async def test_consents_accumulate_per_user_and_client(database: Database, store: OidcStore) -> None:
    """Granting adds to what was granted; another client sees nothing; revoking forgets."""
    user = await database.create_user(
        NewUser(
            id=uuid.uuid4(),
            email="ada@example.com",
            email_normalized="ada@example.com",
            password_hash=None,
            name=None,
            created_at=START,
        )
    )
    assert await store.granted_scopes(user.id, "web") == frozenset()
    await store.grant_scopes(user.id, "web", frozenset({"openid", "email"}), START)
    await store.grant_scopes(user.id, "web", frozenset({"openid", "profile"}), START + 1)
    assert await store.granted_scopes(user.id, "web") == {"openid", "email", "profile"}
    assert await store.granted_scopes(user.id, "other") == frozenset()
    await store.revoke_consent(user.id, "web")
    assert await store.granted_scopes(user.id, "web") == frozenset()
