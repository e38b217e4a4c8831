"""``/v1/signup``, ``/v1/login`` and ``/v1/me`` over HTTP, on both backends."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from argon2 import PasswordHasher, Type
from litestar import Litestar

from service.runtime import Runtime

Client = httpx.AsyncClient
PASSWORD = "correct horse battery"


async def signup(
    client: Client, email: str = "ada@example.com", password: str = PASSWORD
) -> dict[str, object]:
    response = await client.post("/v1/signup", json={"email": email, "password": password, "name": "Ada"})
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def test_signup_returns_user_and_tokens(client: Client) -> None:
    """201 with the user (no hash) and a Bearer token response, not cacheable."""
    response = await client.post(
        "/v1/signup", json={"email": "Ada@Example.com", "password": PASSWORD, "name": " Ada "}
    )
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"user", "tokens"}
    assert (body["user"]["email"], body["user"]["name"], body["user"]["roles"]) == (
        "Ada@Example.com",
        "Ada",
        [],
    )
    uuid.UUID(body["user"]["id"])
    assert "password_hash" not in body["user"]
    assert (body["tokens"]["token_type"], body["tokens"]["expires_in"]) == ("Bearer", 900)


async def test_duplicate_signup_is_409_case_insensitively(client: Client) -> None:
    """The same address in another case is taken."""
    await signup(client, "ada@example.com")
    response = await client.post("/v1/signup", json={"email": "ADA@example.COM", "password": PASSWORD})
    assert (response.status_code, response.json()["error"]) == (409, "email_taken")


async def test_concurrent_signups_give_one_201_and_the_rest_409(client: Client) -> None:
    """Ten racing signups of one address: exactly one account, no 500."""
    responses = await asyncio.gather(
        *(
            client.post("/v1/signup", json={"email": "Race@example.com", "password": PASSWORD})
            for _ in range(10)
        )
    )
    assert sorted(r.status_code for r in responses) == [201] + [409] * 9


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"email": "not-an-email", "password": PASSWORD}, "invalid_email"),
        ({"email": "a@example.com", "password": "short"}, "password_too_short"),
        ({"email": "a@example.com", "password": "x" * 129}, "password_too_long"),
        ({"email": "a@example.com", "password": "password123"}, "password_too_common"),
        ({"email": "a@example.com", "password": " " * 20}, "password_blank"),
        ({"email": "a@example.com", "password": "correct\x00horse"}, "password_invalid_characters"),
    ],
    ids=["email", "short", "long", "common", "20-spaces", "nul"],
)
async def test_signup_validation_errors_are_422_with_specific_codes(
    client: Client, body: dict[str, str], code: str
) -> None:
    """Invalid email and weak passwords say exactly what is wrong."""
    response = await client.post("/v1/signup", json=body)
    assert (response.status_code, response.json()["error"]) == (422, code)
    assert response.json()["error_description"]


async def test_login_returns_tokens_that_open_me(client: Client) -> None:
    """Login gives a token; /v1/me answers with that user's profile."""
    created = await signup(client)
    login = await client.post("/v1/login", json={"email": "ADA@example.com", "password": PASSWORD})
    assert login.status_code == 200
    assert login.headers["cache-control"] == "no-store"
    token = login.json()["access_token"]
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json() == created["user"]


async def test_login_failures_are_identical(client: Client, app: Litestar) -> None:
    """Unknown email, wrong password and disabled account: same status, headers and bytes."""
    await signup(client, "ada@example.com")
    await signup(client, "bob@example.com")
    runtime: Runtime = app.state.runtime
    await runtime.accounts.set_disabled("bob@example.com", True)
    attempts = [
        {"email": "nobody@example.com", "password": PASSWORD},
        {"email": "ada@example.com", "password": PASSWORD + "!"},
        {"email": "bob@example.com", "password": PASSWORD},
        {"email": "not an email", "password": PASSWORD},
    ]
    responses = [await client.post("/v1/login", json=attempt) for attempt in attempts]
    assert {r.status_code for r in responses} == {401}
    assert len({r.content for r in responses}) == 1
    assert responses[0].json()["error"] == "invalid_credentials"
    varying = {"date", "x-request-id"}
    header_sets = {tuple(sorted((k, v) for k, v in r.headers.items() if k not in varying)) for r in responses}
    assert len(header_sets) == 1


async def test_disabled_user_token_stops_working(client: Client, app: Litestar) -> None:
    """A token issued before the account was disabled no longer opens /v1/me."""
    created = await signup(client)
    token = created["tokens"]["access_token"]  # type: ignore[index]
    runtime: Runtime = app.state.runtime
    await runtime.accounts.set_disabled("ada@example.com", True)
    response = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic abc", "Bearer not.a.jwt", "Bearer a.b.c"],
    ids=["missing", "empty", "scheme-only", "scheme-space", "basic", "garbage", "three-parts"],
)
async def test_me_without_valid_token_is_401_with_rfc6750_header(
    client: Client, authorization: str | None
) -> None:
    """Missing or bad tokens: 401, invalid_token, WWW-Authenticate: Bearer error=..."""
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.get("/v1/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.json()["error"] == "invalid_token"


async def test_rehash_on_login_when_parameters_changed(client: Client, app: Litestar) -> None:
    """A hash made with old parameters is replaced by one with current parameters on login."""
    runtime: Runtime = app.state.runtime
    user = await runtime.accounts.create_user("old@example.com", PASSWORD)
    old_hash = PasswordHasher(time_cost=1, memory_cost=32, parallelism=1, type=Type.ID).hash(PASSWORD)
    await runtime.database.set_password_hash(user.id, old_hash, 0)
    response = await client.post("/v1/login", json={"email": "old@example.com", "password": PASSWORD})
    assert response.status_code == 200
    stored = await runtime.database.get_user(user.id)
    assert stored is not None
    assert stored.password_hash is not None
    assert stored.password_hash.startswith("$argon2id$v=19$m=64,t=1,p=1$")
    relogin = await client.post("/v1/login", json={"email": "old@example.com", "password": PASSWORD})
    assert relogin.status_code == 200


async def test_a_hash_of_the_old_nfkc_form_is_rehashed_in_nfc_on_login(client: Client, app: Litestar) -> None:
    """Upgrade path: an account whose hash was made of the NFKC form (before issue 17) still signs
    in with its password, and that login stores an NFC hash (the NFKC spelling then no longer
    matches: compatibility forms are distinct from now on)."""
    runtime: Runtime = app.state.runtime
    typed = "\ufb01sh and chips forever"  # starts with the ligature "fi"
    user = await runtime.accounts.create_user("legacy@example.com", typed)
    legacy_hash = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1, type=Type.ID).hash(
        "fish and chips forever"
    )
    await runtime.database.set_password_hash(user.id, legacy_hash, 0)
    login = await client.post("/v1/login", json={"email": "legacy@example.com", "password": typed})
    assert login.status_code == 200
    stored = await runtime.database.get_user(user.id)
    assert stored is not None
    assert stored.password_hash is not None
    assert stored.password_hash != legacy_hash
    assert PasswordHasher().verify(stored.password_hash, typed)
    again = await client.post("/v1/login", json={"email": "legacy@example.com", "password": typed})
    assert again.status_code == 200
    folded = await client.post(
        "/v1/login", json={"email": "legacy@example.com", "password": "fish and chips forever"}
    )
    assert folded.status_code == 401
