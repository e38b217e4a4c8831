"""ClientStore contract: every registration field round-trips on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from service.clients import Clients
from service.clock import FrozenClock
from service.errors import ClientExists, InvalidClient, InvalidRequest
from service.store.base import Database
from service.store.postgres import PostgresClientStore, PostgresDatabase
from service.store.sessions import Client, ClientStore
from service.store.sqlite import SqliteDatabase
from service.store.sqlite_sessions import SqliteClientStore
from tests.conftest import START


@pytest.fixture
def clients(database: Database) -> ClientStore:
    if isinstance(database, PostgresDatabase):
        return PostgresClientStore(database)
    assert isinstance(database, SqliteDatabase)
    return SqliteClientStore(database)


FULL = Client(
    id="web",
    name="Web app",
    secret_hash="ab" * 32,
    created_at=START,
    redirect_uris=("https://app.example.com/cb", "http://127.0.0.1:3000/cb"),
    post_logout_redirect_uris=("https://app.example.com/",),
    grant_types=("authorization_code", "refresh_token"),
    scopes=("api:read", "api:write"),
    first_party=True,
    id_token_signed_response_alg="EdDSA",
    token_endpoint_auth_method="client_secret_post",
    require_mfa=True,
)
PUBLIC = Client(
    id="spa",
    name="SPA",
    secret_hash=None,
    created_at=START,
    redirect_uris=("https://spa.example.com/cb",),
    grant_types=("authorization_code",),
    token_endpoint_auth_method="none",
)


@pytest.mark.parametrize("client", [FULL, PUBLIC], ids=["confidential", "public"])
async def test_registration_round_trips(clients: ClientStore, client: Client) -> None:
    """What is stored is what is read back, field for field, by id and in the list."""
    await clients.create_client(client)
    assert await clients.get_client(client.id) == client
    assert await clients.list_clients() == [client]


async def test_require_mfa_defaults_to_false_and_is_stored(clients: ClientStore) -> None:
    """A registration that does not ask for MFA reads back require_mfa False; one that does, True."""
    await clients.create_client(PUBLIC)
    await clients.create_client(msgspec.structs.replace(FULL, id="strict"))
    assert [(c.id, c.require_mfa) for c in await clients.list_clients()] == [("spa", False), ("strict", True)]


async def test_duplicate_id_is_refused_once(clients: ClientStore) -> None:
    """Two concurrent registrations of one id: exactly one wins, the other is ClientExists."""
    results = await asyncio.gather(
        clients.create_client(FULL), clients.create_client(FULL), return_exceptions=True
    )
    assert sorted(type(result).__name__ for result in results) == ["ClientExists", "NoneType"]
    with pytest.raises(ClientExists):
        await clients.create_client(FULL)


async def test_delete(clients: ClientStore) -> None:
    """Deleting reports whether a row went away."""
    await clients.create_client(PUBLIC)
    assert await clients.delete_client("spa") is True
    assert await clients.delete_client("spa") is False
    assert await clients.get_client("spa") is None


async def test_public_client_registration_and_authentication(clients: ClientStore) -> None:
    """A public client gets no secret, is identified by id only, and a secret it sends is refused."""
    registry = Clients(clients, FrozenClock(START))
    spa, secret = await registry.register(
        "SPA", "spa", redirect_uris=["https://spa.example.com/cb"], public=True
    )
    assert (secret, spa.grant_types, spa.token_endpoint_auth_method) == (
        None,
        ("authorization_code",),
        "none",
    )
    assert await registry.identify_public("spa") == spa
    with pytest.raises(InvalidClient):
        await registry.authenticate("spa", "anything")
    confidential, secret = await registry.register("API", "api")
    assert secret is not None
    assert await registry.authenticate("api", secret) == confidential
    with pytest.raises(InvalidClient):
        await registry.identify_public("api")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"redirect_uris": ["https://app.example.com/*"]}, "wildcard"),
        ({"redirect_uris": ["https://app.example.com/cb#frag"]}, "fragment"),
        ({"redirect_uris": ["http://app.example.com/cb"]}, "loopback"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "private-use"),
        ({"redirect_uris": ["com.example.app:/cb"], "public": True}, ""),
        ({"grant_types": ["authorization_code"]}, "redirect URI"),
        ({"grant_types": ["password"]}, "unsupported"),
        ({"grant_types": ["client_credentials"], "public": True}, "public client"),
        ({"scopes": ['bad"scope']}, "scope token"),
        ({"id_token_signed_response_alg": "HS256"}, "RS256"),
    ],
    ids=[
        "wildcard",
        "fragment",
        "plain-http",
        "javascript",
        "native-ok",
        "code-no-uri",
        "password",
        "public-cc",
        "scope",
        "hs256",
    ],
)
async def test_registration_is_validated(
    clients: ClientStore, changes: dict[str, object], message: str
) -> None:
    """Unsafe redirect URIs, unknown grants, bad scopes and algorithms are refused at registration."""
    registry = Clients(clients, FrozenClock(START))
    if not message:
        client, _ = await registry.register("native", "native", **changes)  # type: ignore[arg-type]
        assert client.redirect_uris == ("com.example.app:/cb",)
        return
    with pytest.raises(InvalidRequest, match=message):
        await registry.register("bad", "bad", **changes)  # type: ignore[arg-type]
    assert await clients.get_client("bad") is None


async def test_client_ids_shaped_like_accounts_are_refused(clients: ClientStore) -> None:
    """A client's own tokens carry sub = its id, so a UUID-shaped id could pass for a user."""
    registry = Clients(clients, FrozenClock(START))
    with pytest.raises(InvalidRequest, match="UUID"):
        await registry.register("evil", "3f2504e0-4f89-11d3-9a0c-0305e82c3301")
