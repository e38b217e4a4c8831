"""The user-store contract: every backend (SQLite, PostgreSQL) must pass each test here."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from service.errors import EmailTaken
from service.store.base import Database, NewUser

NOW = 1_800_000_000.0


def new_user(email: str = "Ada@Example.com", normalized: str = "ada@example.com") -> NewUser:
    return NewUser(
        id=uuid.uuid4(),
        email=email,
        email_normalized=normalized,
        password_hash="$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
        name="Ada",
        roles=("admin",),
        created_at=NOW,
    )


async def test_create_then_read_back(database: Database) -> None:
    """A created user reads back identically by id and by normalised email."""
    created = await database.create_user(new_user())
    by_id = await database.get_user(created.id)
    by_email = await database.get_user_by_email("ada@example.com")
    assert by_id == created
    assert by_email == created
    assert (created.email, created.roles, created.disabled) == ("Ada@Example.com", ("admin",), False)
    assert created.created_at == pytest.approx(NOW)


async def test_unknown_user_is_none(database: Database) -> None:
    """Lookups of absent users return None rather than raising."""
    assert await database.get_user(uuid.uuid4()) is None
    assert await database.get_user_by_email("nobody@example.com") is None


async def test_duplicate_normalised_email_is_refused(database: Database) -> None:
    """The normalised key is unique whatever the typed form."""
    await database.create_user(new_user("ada@example.com"))
    with pytest.raises(EmailTaken):
        await database.create_user(new_user("ADA@EXAMPLE.COM"))


async def test_concurrent_duplicates_create_exactly_one(database: Database) -> None:
    """Twenty racing inserts of one email: one wins, nineteen get EmailTaken, none crash."""
    results = await asyncio.gather(
        *(database.create_user(new_user()) for _ in range(20)), return_exceptions=True
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, EmailTaken)]
    assert (len(winners), len(losers)) == (1, 19)


async def test_updates_change_only_their_field(database: Database) -> None:
    """Disable, roles and password updates persist and bump updated_at."""
    user = await database.create_user(new_user())
    disabled = await database.set_disabled(user.id, True, NOW + 10)
    assert disabled is not None
    assert (disabled.disabled, disabled.roles) == (True, ("admin",))
    assert disabled.updated_at == pytest.approx(NOW + 10)
    reroled = await database.set_roles(user.id, ["reader", "writer"], NOW + 20)
    assert reroled is not None
    assert (reroled.roles, reroled.disabled) == (("reader", "writer"), True)
    await database.set_password_hash(user.id, "new-hash", NOW + 30)
    reread = await database.get_user(user.id)
    assert reread is not None
    assert (reread.password_hash, reread.email) == ("new-hash", user.email)


async def test_updates_of_unknown_user_return_none(database: Database) -> None:
    """Updating a user that does not exist reports None, not an error."""
    assert await database.set_disabled(uuid.uuid4(), True, NOW) is None
    assert await database.set_roles(uuid.uuid4(), ["x"], NOW) is None


async def test_migrate_is_idempotent(database: Database) -> None:
    """A second migrate applies nothing (the fixture already migrated)."""
    assert await database.migrate() == []


async def test_ping_succeeds(database: Database) -> None:
    """A reachable backend answers the readiness ping."""
    await database.ping()


async def test_user_without_password_hash(database: Database) -> None:
    """Accounts provisioned without a password (federated) are representable."""
    user = await database.create_user(
        NewUser(
            id=uuid.uuid4(),
            email="fed@example.com",
            email_normalized="fed@example.com",
            password_hash=None,
            name=None,
            created_at=NOW,
        )
    )
    assert (user.password_hash, user.name, user.roles) == (None, None, ())


async def test_delete_user(database: Database) -> None:
    """A deleted user is gone and its email is free again."""
    user = await database.create_user(new_user())
    assert await database.delete_user(user.id)
    assert await database.get_user(user.id) is None
    assert not await database.delete_user(user.id)
    await database.create_user(new_user())
