"""Mail fixtures: the outbox and token stores on each backend, and two independent connections
to one database (two processes) for the claim races."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from service.mail.message import new_message_id
from service.store.base import Database, NewUser, User
from service.store.mail import AccountTokenStore, MailOutbox, NewMail
from service.store.postgres import PostgresDatabase
from service.store.postgres_mail import PostgresAccountTokens, PostgresOutbox
from service.store.sqlite import SqliteDatabase
from service.store.sqlite_mail import SqliteAccountTokens, SqliteOutbox
from tests.conftest import BACKENDS, START, empty_postgres


class MailStores(msgspec.Struct):
    database: Database
    outbox: MailOutbox
    tokens: AccountTokenStore


def stores_for(db: Database) -> MailStores:
    if isinstance(db, PostgresDatabase):
        return MailStores(db, PostgresOutbox(db), PostgresAccountTokens(db))
    assert isinstance(db, SqliteDatabase)
    return MailStores(db, SqliteOutbox(db), SqliteAccountTokens(db))


@pytest.fixture
def mail(database: Database) -> MailStores:
    """The outbox and token stores on every backend (migrated, empty)."""
    return stores_for(database)


@pytest.fixture(params=BACKENDS)
async def two_instances(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_server: str
) -> AsyncIterator[tuple[MailStores, MailStores]]:
    """Two connections (pools) to one database, as two instances of the service would have."""
    databases: list[Database] = []
    for _ in range(2):
        if request.param == "postgresql":
            databases.append(await PostgresDatabase.open(postgres_server, pool_size=5))
        else:
            databases.append(await SqliteDatabase.open(tmp_path / "idp.sqlite3"))
    await databases[0].migrate()
    try:
        yield stores_for(databases[0]), stores_for(databases[1])
    finally:
        for db in databases:
            await db.close()
        if request.param == "postgresql":
            await empty_postgres(postgres_server)


def mail_for(recipient: str = "ada@example.com", *, at: float = START, kind: str = "test") -> NewMail:
    row_id = uuid.uuid4()
    return NewMail(
        id=row_id,
        message_id=new_message_id(row_id, "idp.test"),
        kind=kind,
        recipient=recipient,
        subject="Hello",
        text_body="plain body",
        html_body="<p>html body</p>",
        created_at=at,
    )


async def a_user(db: Database, email: str = "ada@example.com") -> User:
    return await db.create_user(
        NewUser(
            id=uuid.uuid4(),
            email=email,
            email_normalized=email.lower(),
            password_hash="old-hash",
            name=None,
            created_at=START,
        )
    )
