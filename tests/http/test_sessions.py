"""Refresh-token rotation, reuse detection, sessions, logout and password change over HTTP,
on both deployments (embedded SQLite; PostgreSQL + Redis)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import pytest
from litestar import Litestar

from service.clock import FrozenClock
from service.errors import InvalidGrant
from service.runtime import Runtime

PASSWORD = "correct horse battery"
FORM = {"content-type": "application/x-www-form-urlencoded"}


async def signup(client: httpx.AsyncClient, email: str = "ada@example.com") -> dict[str, Any]:
    response = await client.post("/v1/signup", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    tokens: dict[str, Any] = response.json()["tokens"]
    return tokens


async def login(
    client: httpx.AsyncClient, email: str = "ada@example.com", agent: str = "curl/8.5"
) -> dict[str, Any]:
    response = await client.post(
        "/v1/login", json={"email": email, "password": PASSWORD}, headers={"user-agent": agent}
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


async def refresh(client: httpx.AsyncClient, token: str, **extra: str) -> httpx.Response:
    return await client.post(
        "/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": token, **extra}
    )


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def test_signup_and_login_start_sessions(client: httpx.AsyncClient) -> None:
    """Both return an opaque refresh token whose family is the access token's sid."""
    tokens = await signup(client)
    assert tokens["refresh_token"].startswith("idprt_")
    assert len(tokens["refresh_token"]) == 71
    me = await client.get("/v1/me", headers=bearer(tokens))
    assert me.status_code == 200
    sessions = (await client.get("/v1/sessions", headers=bearer(tokens))).json()
    assert [s["current"] for s in sessions] == [True]
    assert tokens["refresh_token"][6:28] == sessions[0]["id"]


async def test_refresh_rotates_and_grace_is_idempotent(client: httpx.AsyncClient, clock: FrozenClock) -> None:
    """New pair on refresh; a retry within the grace window returns the very same pair."""
    tokens = await signup(client)
    first = await refresh(client, tokens["refresh_token"])
    assert first.status_code == 200, first.text
    assert (first.headers["cache-control"], first.headers["pragma"]) == ("no-store", "no-cache")
    body = first.json()
    assert body["refresh_token"] != tokens["refresh_token"]
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 900)
    clock.advance(9)
    again = await refresh(client, tokens["refresh_token"])
    assert (again.status_code, again.json()) == (200, body)
    assert (await client.get("/v1/me", headers=bearer(body))).status_code == 200


async def test_reuse_after_grace_revokes_the_family(client: httpx.AsyncClient, clock: FrozenClock) -> None:
    """Replaying a rotated token late: 400 invalid_grant, and the newest token dies too."""
    tokens = await signup(client)
    newest = (await refresh(client, tokens["refresh_token"])).json()
    clock.advance(11)
    replay = await refresh(client, tokens["refresh_token"])
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_grant")
    assert replay.headers["cache-control"] == "no-store"
    dead = await refresh(client, newest["refresh_token"])
    assert (dead.status_code, dead.json()["error"]) == (400, "invalid_grant")
    assert (await client.get("/v1/me", headers=bearer(newest))).status_code == 401


async def test_fifty_concurrent_refreshes_share_one_successor(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """The race: every 200 carries the same successor; no second valid successor exists;
    after the window the old token is refused and the family is dead."""
    tokens = await signup(client)
    responses = await asyncio.gather(*(refresh(client, tokens["refresh_token"]) for _ in range(50)))
    assert {r.status_code for r in responses} == {200}
    successors = {r.json()["refresh_token"] for r in responses}
    assert len(successors) == 1
    (successor,) = successors
    assert len({r.json()["access_token"] for r in responses}) == 1
    clock.advance(1)
    assert (await refresh(client, successor)).status_code == 200
    clock.advance(30)
    assert (await refresh(client, tokens["refresh_token"])).json()["error"] == "invalid_grant"
    assert (await refresh(client, successor)).status_code == 400


async def test_idle_and_absolute_expiry(app: Litestar, client: httpx.AsyncClient, clock: FrozenClock) -> None:
    """Seven idle days end a session; thirty days end it however often it is used."""
    idle = await signup(client, "idle@example.com")
    busy = await signup(client, "busy@example.com")
    token = busy["refresh_token"]
    for _ in range(5):
        clock.advance(5 * 86_400)
        response = await refresh(client, token)
        assert response.status_code == 200
        token = response.json()["refresh_token"]
    assert (await refresh(client, idle["refresh_token"])).json()["error"] == "invalid_grant"
    clock.advance(5 * 86_400)
    assert (await refresh(client, token)).json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("data", "headers", "error"),
    [
        ({"refresh_token": "x"}, FORM, "invalid_request"),
        ({"grant_type": "password", "username": "a", "password": "b"}, FORM, "unsupported_grant_type"),
        ({"grant_type": "refresh_token"}, FORM, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "idprt_short"}, FORM, "invalid_grant"),
        ({"grant_type": "refresh_token", "refresh_token": "idprt_" + "A" * 65}, FORM, "invalid_grant"),
        ("grant_type=refresh_token&grant_type=refresh_token&refresh_token=x", FORM, "invalid_request"),
        ("grant_type=refresh_token", {"content-type": "text/plain"}, "invalid_request"),
        ("{bad json", {"content-type": "application/json"}, "invalid_request"),
        ('{"grant_type": 1}', {"content-type": "application/json"}, "invalid_request"),
        (b"grant_type=\xff", FORM, "invalid_request"),
    ],
    ids=["no-grant", "unsupported", "no-token", "short-token", "unknown-token", "repeated", "text",
         "bad-json", "json-number", "non-utf8"],
)  # fmt: skip
async def test_token_endpoint_errors(
    client: httpx.AsyncClient, data: dict[str, str] | str | bytes, headers: dict[str, str], error: str
) -> None:
    """RFC 6749 §5.2 errors, 400, with no-store."""
    if isinstance(data, dict):
        response = await client.post("/oauth2/token", data=data)
    else:
        response = await client.post("/oauth2/token", content=data, headers=headers)
    assert (response.status_code, response.json()["error"]) == (400, error)
    assert response.headers["cache-control"] == "no-store"


async def test_json_body_is_accepted(client: httpx.AsyncClient) -> None:
    """The token endpoint also takes a JSON object."""
    tokens = await signup(client)
    response = await client.post(
        "/oauth2/token", json={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert response.status_code == 200


async def test_sessions_list_and_end(client: httpx.AsyncClient) -> None:
    """A user sees each session with a user-agent summary and can end another one."""
    await signup(client)
    firefox = await login(
        client, agent="Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"
    )
    phone = await login(client, agent="curl/8.5.0")
    listed = (await client.get("/v1/sessions", headers=bearer(firefox))).json()
    assert len(listed) == 3
    assert {s["user_agent"] for s in listed} >= {"Firefox on Linux", "curl/8.5.0"}
    assert [s["current"] for s in listed].count(True) == 1
    phone_sid = phone["refresh_token"][6:28]
    ended = await client.delete(f"/v1/sessions/{phone_sid}", headers=bearer(firefox))
    assert ended.status_code == 204
    assert (await refresh(client, phone["refresh_token"])).json()["error"] == "invalid_grant"
    assert (await client.get("/v1/me", headers=bearer(phone))).status_code == 401
    again = await client.delete(f"/v1/sessions/{phone_sid}", headers=bearer(firefox))
    assert (again.status_code, again.json()["error"]) == (404, "not_found")


async def test_cannot_end_someone_elses_session(client: httpx.AsyncClient) -> None:
    """Session ids of other accounts are 404, and the session survives."""
    ada = await signup(client, "ada@example.com")
    bob = await signup(client, "bob@example.com")
    response = await client.delete(f"/v1/sessions/{bob['refresh_token'][6:28]}", headers=bearer(ada))
    assert response.status_code == 404
    assert (await refresh(client, bob["refresh_token"])).status_code == 200


async def test_logout_current_and_all(client: httpx.AsyncClient) -> None:
    """Logout ends this session only; {"all": true} ends every one."""
    first = await signup(client)
    second = await login(client)
    third = await login(client)
    assert (await client.post("/v1/logout", headers=bearer(first))).status_code == 204
    assert (await client.get("/v1/me", headers=bearer(first))).status_code == 401
    assert (await refresh(client, first["refresh_token"])).status_code == 400
    assert (await client.get("/v1/me", headers=bearer(second))).status_code == 200
    everything = await client.post("/v1/logout", headers=bearer(second), json={"all": True})
    assert everything.status_code == 204
    for tokens in (second, third):
        assert (await refresh(client, tokens["refresh_token"])).status_code == 400
    bad = await client.post(
        "/v1/logout", headers={**bearer(third), "content-type": "application/json"}, content=b"["
    )
    assert bad.status_code == 401


async def test_password_change_ends_other_sessions(client: httpx.AsyncClient) -> None:
    """The current session survives a password change; the others end; the old password fails."""
    current = await signup(client)
    other = await login(client)
    wrong = await client.post(
        "/v1/password",
        headers=bearer(current),
        json={"current_password": "nope nope", "new_password": "new pass phrase"},
    )
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_credentials")
    weak = await client.post(
        "/v1/password",
        headers=bearer(current),
        json={"current_password": PASSWORD, "new_password": "password"},
    )
    assert (weak.status_code, weak.json()["error"]) == (422, "password_too_common")
    changed = await client.post(
        "/v1/password",
        headers=bearer(current),
        json={"current_password": PASSWORD, "new_password": "new pass phrase"},
    )
    assert changed.status_code == 204
    assert (await refresh(client, other["refresh_token"])).status_code == 400
    assert (await refresh(client, current["refresh_token"])).status_code == 200
    old = await client.post("/v1/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert old.status_code == 401
    new = await client.post("/v1/login", json={"email": "ada@example.com", "password": "new pass phrase"})
    assert new.status_code == 200


async def test_disabling_a_user_ends_every_session(app: Litestar, client: httpx.AsyncClient) -> None:
    """After disable, no refresh token of the user works."""
    tokens = [await signup(client), await login(client)]
    runtime: Runtime = app.state.runtime
    await runtime.accounts.set_disabled("ada@example.com", True)
    for pair in tokens:
        assert (await refresh(client, pair["refresh_token"])).status_code == 400


async def test_revocation_endpoint(client: httpx.AsyncClient) -> None:
    """RFC 7009: 200 for any well-formed request; the refresh token's session ends."""
    tokens = await signup(client)
    for garbage in ("nonsense", "idprt_" + "A" * 65, tokens["access_token"] + "x"):
        assert (await client.post("/oauth2/revoke", data={"token": garbage})).status_code == 200
    assert (await refresh(client, tokens["refresh_token"])).status_code == 200
    rotated = (await refresh(client, tokens["refresh_token"])).json()
    response = await client.post("/oauth2/revoke", data={"token": rotated["refresh_token"]})
    assert (response.status_code, response.content) == (200, b"")
    assert (await refresh(client, rotated["refresh_token"])).status_code == 400
    missing = await client.post("/oauth2/revoke", data={})
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")


async def test_revoking_an_access_token_ends_its_session(client: httpx.AsyncClient) -> None:
    """Revoking the access token ends its sid, so /v1/me refuses it at once."""
    tokens = await signup(client)
    assert (await client.post("/oauth2/revoke", data={"token": tokens["access_token"]})).status_code == 200
    assert (await client.get("/v1/me", headers=bearer(tokens))).status_code == 401


def _claims(access_token: str) -> dict[str, Any]:
    payload = access_token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


async def test_new_roles_reach_every_session_at_its_next_refresh(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """A refresh reads the session's claims snapshot; changing the roles rewrites it."""
    runtime: Runtime = app.state.runtime
    first, second = await signup(client), await login(client)
    assert _claims(first["access_token"])["roles"] == []
    await runtime.accounts.set_roles("ada@example.com", ["writer", "admin"])
    for tokens in (first, second):
        refreshed = await refresh(client, tokens["refresh_token"])
        assert refreshed.status_code == 200
        assert _claims(refreshed.json()["access_token"])["roles"] == ["admin", "writer"]
    fresh = await login(client)
    assert _claims(fresh["access_token"])["roles"] == ["admin", "writer"]


async def test_an_account_disabled_during_sign_in_keeps_no_session(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """The password was checked while the account was enabled; it is disabled before the
    session is stored: the sign-in is refused and no session is left behind."""
    runtime: Runtime = app.state.runtime
    tokens = await signup(client)
    user = await runtime.accounts.get_by_email("ada@example.com")  # read before the disable
    await runtime.accounts.set_disabled("ada@example.com", True)
    with pytest.raises(InvalidGrant):
        await runtime.sessions.start(user, origin="password")
    await runtime.accounts.set_disabled("ada@example.com", False)
    assert await runtime.families.list_families(user.id, runtime.clock()) == []
    assert (await refresh(client, tokens["refresh_token"])).status_code == 400
