"""The admin API's operations on both deployments: paging while accounts are created,
search, invitations through the outbox, disable / roles / delete, sessions, clients, the stored
audit trail (each admin call recorded with its client and scope) and the per-client limit."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from litestar import Litestar

from service.admin.access import ADMIN_SCOPES, AUDIT_READ, USERS_READ
from service.app import create_app, serving
from service.clock import FrozenClock
from service.config import Settings
from service.runtime import Runtime
from tests.support.admin import admin_token, bearer

PASSWORD = "correct horse battery"


@pytest.fixture
async def root(app: Litestar, client: httpx.AsyncClient) -> dict[str, str]:
    """Headers of an admin client holding every admin scope."""
    return bearer(await admin_token(client, app.state.runtime, "backoffice", ADMIN_SCOPES))


async def signup(client: httpx.AsyncClient, email: str) -> dict[str, Any]:
    response = await client.post("/v1/signup", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_paging_is_exact_while_accounts_are_created(
    app: Litestar, client: httpx.AsyncClient, clock: FrozenClock, root: dict[str, str]
) -> None:
    """40 accounts exist; while a client pages through them 5 at a time, other tasks create
    accounts concurrently (before, between and during page requests). Every account that
    existed is returned exactly once, nothing is returned twice, and the order is creation
    order: keyset paging, where an offset would skip or repeat rows."""
    runtime: Runtime = app.state.runtime
    existing = []
    for i in range(40):
        clock.advance(0.001)
        existing.append((await runtime.accounts.create_user(f"old{i}@example.com", PASSWORD)).id)
    stop = asyncio.Event()

    async def insert_forever(writer: int) -> int:
        n = 0
        while not stop.is_set():
            clock.advance(0.001)
            await runtime.accounts.create_user(f"new{writer}-{n}@example.com", PASSWORD)
            n += 1
            await asyncio.sleep(0)
        return n

    writers = [asyncio.create_task(insert_forever(writer)) for writer in range(2)]
    seen: list[dict[str, Any]] = []
    cursor = None
    try:
        while True:
            params = {"limit": "5"} | ({"cursor": cursor} if cursor else {})
            page = await client.get("/admin/v1/users", params=params, headers=root)
            assert page.status_code == 200, page.text
            seen.extend(page.json()["users"])
            cursor = page.json()["next_cursor"]
            if cursor is None or len(seen) > 200:
                break
    finally:
        stop.set()
        inserted = sum(await asyncio.gather(*writers))
    ids = [user["id"] for user in seen]
    assert len(ids) == len(set(ids)), "an account was returned twice"
    assert {str(user_id) for user_id in existing} <= set(ids), "an existing account was skipped"
    assert [(u["created_at"], u["id"]) for u in seen] == sorted((u["created_at"], u["id"]) for u in seen)
    assert inserted > 0


async def test_search_by_prefix_and_creation_range(
    app: Litestar, client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """The prefix is matched like the stored key (case-folded); the range is [from, until) in
    ISO 8601; a malformed cursor or limit is a 400, never a 500."""
    runtime: Runtime = app.state.runtime
    for email in ("Ada@Example.com", "adam@example.com", "bob@example.com"):
        clock.advance(3600)
        await runtime.accounts.create_user(email, PASSWORD)
    root = bearer(await admin_token(client, runtime, "backoffice", ADMIN_SCOPES))
    found = await client.get("/admin/v1/users", params={"email_prefix": "ADA"}, headers=root)
    assert sorted(user["email"] for user in found.json()["users"]) == ["Ada@Example.com", "adam@example.com"]
    # START is 2027-01-15T08:00:00Z: the accounts were created at 09:00, 10:00 and 11:00.
    window = {"created_from": "2027-01-15T10:00:00Z", "created_until": "2027-01-15T11:00:00Z"}
    found = await client.get("/admin/v1/users", params=window, headers=root)
    assert found.status_code == 200, found.text
    assert [user["email"] for user in found.json()["users"]] == ["adam@example.com"]
    for params in ({"cursor": "not-a-cursor"}, {"limit": "0"}, {"limit": "x"}, {"created_from": "yesterday"}):
        bad = await client.get("/admin/v1/users", params=params, headers=root)
        assert (bad.status_code, bad.json()["error"]) == (400, "invalid_request"), params


async def test_invitation_mails_a_single_use_set_password_link(
    app: Litestar, client: httpx.AsyncClient, root: dict[str, str]
) -> None:
    """Creating an account without a password stores it password-less and queues one mail to it
    whose link's token is stored (hashed) as a set-password token; the response holds no link.
    A second invitation to the same address is 409 and queues nothing. The link sets the first
    password through the password-reset confirmation, once; then the account signs in."""
    runtime: Runtime = app.state.runtime
    created = await client.post(
        "/admin/v1/users", json={"email": "new@example.com", "roles": ["support"]}, headers=root
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["has_password"], body["roles"]) == (False, ["support"])
    assert "link" not in created.text
    assert "token" not in created.text
    mails = await runtime.outbox.list_mail("pending", 10)
    assert [(mail.kind, mail.recipient) for mail in mails] == [("invitation", "new@example.com")]
    assert mails[0].text_body is not None
    link = next(word for word in mails[0].text_body.split() if word.startswith("http"))
    assert urlsplit(link).path == "/account/reset"
    token = parse_qs(urlsplit(link).query)["token"][0]
    stored = await runtime.account_tokens.find_token(
        hashlib.sha256(token.encode()).hexdigest(), "password_reset", runtime.clock()
    )
    assert stored is not None
    assert str(stored.user_id) == body["id"]
    again = await client.post("/admin/v1/users", json={"email": "NEW@example.com"}, headers=root)
    assert (again.status_code, again.json()["error"]) == (409, "email_taken")
    assert len(await runtime.outbox.list_mail(None, 10)) == 1
    confirm = {"token": token, "new_password": PASSWORD}
    assert (await client.post("/v1/password/reset/confirm", json=confirm)).status_code == 204
    login = await client.post("/v1/login", json={"email": "new@example.com", "password": PASSWORD})
    assert login.status_code == 200, login.text
    assert (await client.post("/v1/password/reset/confirm", json=confirm)).status_code == 400


async def test_disable_roles_sessions_and_delete(
    app: Litestar, client: httpx.AsyncClient, root: dict[str, str]
) -> None:
    """Disable ends the account's sessions and refuses its token; roles reach the next refresh;
    sessions can be listed and ended; delete removes the account for good (404 after) while its
    audit events stay, without the email."""
    runtime: Runtime = app.state.runtime
    tokens = (await signup(client, "ada@example.com"))["tokens"]
    user_id = runtime.access_tokens.verify(tokens["access_token"]).sub
    reset = await client.post(f"/admin/v1/users/{user_id}/mfa/reset", headers=root)
    assert reset.json() == {"totp": False, "passkeys": 0, "recovery_codes": 0}
    sessions = await client.get(f"/admin/v1/users/{user_id}/sessions", headers=root)
    assert [s["id"] for s in sessions.json()] == [runtime.access_tokens.verify(tokens["access_token"]).sid]
    roles = await client.put(
        f"/admin/v1/users/{user_id}/roles", json={"roles": ["b", "a", "a"]}, headers=root
    )
    assert roles.json()["roles"] == ["a", "b"]
    refreshed = await client.post(
        "/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert runtime.access_tokens.verify(refreshed.json()["access_token"]).roles == ["a", "b"]
    disabled = await client.post(f"/admin/v1/users/{user_id}/disable", headers=root)
    assert disabled.json()["disabled"] is True
    assert (await client.get(f"/admin/v1/users/{user_id}/sessions", headers=root)).json() == []
    me = await client.get("/v1/me", headers=bearer(refreshed.json()["access_token"]))
    assert me.status_code == 401
    assert (await client.post(f"/admin/v1/users/{user_id}/enable", headers=root)).json()["disabled"] is False
    second = (await signup(client, "bob@example.com"))["tokens"]
    bob = runtime.access_tokens.verify(second["access_token"])
    ended = await client.delete(f"/admin/v1/users/{bob.sub}/sessions", headers=root)
    assert ended.json() == {"ended": 1}
    deleted = await client.delete(f"/admin/v1/users/{user_id}", headers=root)
    assert deleted.status_code == 204
    assert (await client.get(f"/admin/v1/users/{user_id}", headers=root)).status_code == 404
    assert (await client.delete(f"/admin/v1/users/{user_id}", headers=root)).status_code == 404
    login = await client.post("/v1/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert login.status_code == 401
    events = await client.get(
        "/admin/v1/audit", params={"user_id": user_id, "event": "account_deleted"}, headers=root
    )
    (event,) = events.json()["events"]
    assert (event["user_id"], event["details"]["by"]) == (user_id, "client:backoffice")
    everything = await client.get(
        "/admin/v1/audit", params={"user_id": user_id, "limit": "200"}, headers=root
    )
    assert "ada@example.com" not in everything.text


async def test_a_client_added_over_the_api_can_require_mfa(
    app: Litestar, client: httpx.AsyncClient, root: dict[str, str]
) -> None:
    """``require_mfa`` in the creation body is stored (the list shows it); it defaults to false."""
    strict = await client.post(
        "/admin/v1/clients",
        json={
            "name": "Payroll",
            "id": "payroll",
            "redirect_uris": ["https://pay.example.com/cb"],
            "require_mfa": True,
        },
        headers=root,
    )
    assert strict.status_code == 201, strict.text
    plain = await client.post("/admin/v1/clients", json={"name": "Plain", "id": "plain"}, headers=root)
    assert plain.status_code == 201, plain.text
    listed = {c["id"]: c["require_mfa"] for c in (await client.get("/admin/v1/clients", headers=root)).json()}
    assert (listed["payroll"], listed["plain"]) == (True, False)


async def test_clients_add_rotate_remove(
    app: Litestar, client: httpx.AsyncClient, root: dict[str, str]
) -> None:
    """A client added over the API gets a secret once and can use it; rotating makes the old
    secret fail and the new one work; removing it ends its access to the admin API at once."""
    added = await client.post(
        "/admin/v1/clients",
        json={"name": "Support tool", "id": "support", "scopes": [USERS_READ]},
        headers=root,
    )
    assert added.status_code == 201, added.text
    secret = added.json()["client_secret"]
    assert added.json()["client"]["grant_types"] == ["client_credentials"]

    async def token(secret: str) -> httpx.Response:
        basic = base64.b64encode(f"support:{secret}".encode()).decode()
        return await client.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}"},
        )

    support = (await token(secret)).json()["access_token"]
    assert (await client.get("/admin/v1/users", headers=bearer(support))).status_code == 200
    rotated = await client.post("/admin/v1/clients/support/secret", headers=root)
    new_secret = rotated.json()["client_secret"]
    assert (await token(secret)).status_code == 401
    assert (await token(new_secret)).status_code == 200
    listed = await client.get("/admin/v1/clients", headers=root)
    assert "support" in [c["id"] for c in listed.json()]
    assert secret not in listed.text
    assert new_secret not in listed.text
    assert "idpcs_" not in listed.text
    assert (await client.delete("/admin/v1/clients/support", headers=root)).status_code == 204
    gone = await client.get("/admin/v1/users", headers=bearer(support))
    assert (gone.status_code, gone.json()["error"]) == (401, "invalid_token")


async def test_every_admin_call_is_audited_with_client_and_scope(
    app: Litestar, client: httpx.AsyncClient, clock: FrozenClock, root: dict[str, str]
) -> None:
    """Allowed and refused calls both leave an admin_call event naming the client, the scope
    and the operation; the time range [since, until) selects by when they happened."""
    runtime: Runtime = app.state.runtime
    reader = bearer(await admin_token(client, runtime, "reader", [USERS_READ]))
    clock.advance(60)
    await client.get("/admin/v1/users", headers=reader)
    await client.get("/admin/v1/audit", headers=reader)  # refused: no admin:audit:read
    clock.advance(60)
    events = await client.get(
        "/admin/v1/audit",
        params={"event": "admin_call", "since": "2027-01-15T08:01:00Z", "until": "2027-01-15T08:02:00Z"},
        headers=root,
    )
    calls = [
        (e["client_id"], e["scope"], e["outcome"], e["details"]["operation"]) for e in events.json()["events"]
    ]
    assert calls == [
        ("reader", AUDIT_READ, "insufficient_scope", "audit_events"),
        ("reader", USERS_READ, "success", "list_users"),
    ]


async def test_withdrawn_scope_closes_the_door_at_once(app: Litestar, client: httpx.AsyncClient) -> None:
    """A token minted while the client held the scope stops working when the registration no
    longer holds it (here: the client is re-registered without it)."""
    runtime: Runtime = app.state.runtime
    token = bearer(await admin_token(client, runtime, "ops", [USERS_READ]))
    assert (await client.get("/admin/v1/users", headers=token)).status_code == 200
    await runtime.clients.remove("ops")
    await runtime.clients.register("ops", "ops", scopes=["other"])
    refused = await client.get("/admin/v1/users", headers=token)
    assert (refused.status_code, refused.json()["error"]) == (403, "insufficient_scope")


@pytest.fixture
async def limited(
    make_settings: Callable[..., Settings], backend_env: dict[str, str], clock: FrozenClock
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    app = create_app(make_settings(**backend_env, IDP_RATELIMIT_ADMIN_CLIENT="3/60"), clock=clock)
    async with serving(app) as runtime:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
            yield runtime, http


async def test_rate_limit_per_admin_client(limited: tuple[Runtime, httpx.AsyncClient]) -> None:
    """IDP_RATELIMIT_ADMIN_CLIENT=3/60: a client's fourth call within the minute is 429 with
    Retry-After, while another admin client is unaffected."""
    runtime, http = limited
    first = bearer(await admin_token(http, runtime, "first", [USERS_READ]))
    second = bearer(await admin_token(http, runtime, "second", [USERS_READ]))
    statuses = [(await http.get("/admin/v1/users", headers=first)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = await http.get("/admin/v1/users", headers=first)
    assert refused.json()["error"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    assert (await http.get("/admin/v1/users", headers=second)).status_code == 200
