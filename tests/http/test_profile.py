"""``PATCH /v1/me``, ``DELETE /v1/me`` and RFC 3339 times in ``/v1/me`` and ``/v1/sessions``,
on both deployments."""

from __future__ import annotations

import logging
import re
from typing import Any

import httpx
import pytest
from litestar import Litestar

from service.runtime import Runtime

Client = httpx.AsyncClient
PASSWORD = "correct horse battery"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
async def ada(client: Client) -> dict[str, Any]:
    response = await client.post(
        "/v1/signup", json={"email": "Ada@Example.com", "password": PASSWORD, "name": "Ada"}
    )
    assert response.status_code == 201, response.text
    tokens: dict[str, Any] = response.json()["tokens"]
    return tokens


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def test_times_are_rfc3339_strings(client: Client, ada: dict[str, Any]) -> None:
    """/v1/me and /v1/sessions give whole-second UTC RFC 3339 times, not float epochs."""
    me = (await client.get("/v1/me", headers=bearer(ada))).json()
    [session] = (await client.get("/v1/sessions", headers=bearer(ada))).json()
    times = [me["created_at"], me["updated_at"], session["created_at"], session["last_used_at"]]
    assert all(RFC3339.match(value) for value in [*times, session["expires_at"]]), (me, session)
    assert me["created_at"] == "2027-01-15T08:00:00Z"  # the frozen clock's START
    assert me["email_verified"] is False


@pytest.mark.parametrize(
    ("sent", "stored"),
    [("  Grace   Hopper ", "Grace Hopper"), ("", None), (None, None)],
    ids=["trimmed", "blank", "null"],
)
async def test_patch_me_sets_the_name(
    client: Client, ada: dict[str, Any], sent: str | None, stored: str | None
) -> None:
    """The name is trimmed and whitespace-collapsed; blank or null clears it; GET agrees."""
    response = await client.patch("/v1/me", json={"name": sent}, headers=bearer(ada))
    assert (response.status_code, response.json()["name"]) == (200, stored)
    assert (await client.get("/v1/me", headers=bearer(ada))).json()["name"] == stored


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        ({"email": "x@example.com", "name": "x"}, True, 400),
        ({"name": "x" * 201}, True, 400),
        ({"name": "x"}, False, 401),
    ],
    ids=["unknown-field", "too-long", "no-token"],
)
async def test_patch_me_refusals(
    client: Client, ada: dict[str, Any], body: dict[str, str], headers: bool, status: int
) -> None:
    """Only the name can change, within 200 characters, and only with a token."""
    response = await client.patch("/v1/me", json=body, headers=bearer(ada) if headers else {})
    assert response.status_code == status
    assert "error" in response.json()


async def test_delete_me_needs_the_current_password(client: Client, ada: dict[str, Any]) -> None:
    """A wrong password is 401 and the account stays."""
    response = await client.request(
        "DELETE", "/v1/me", json={"current_password": "not it at all"}, headers=bearer(ada)
    )
    assert (response.status_code, response.json()["error"]) == (401, "invalid_credentials")
    assert (await client.get("/v1/me", headers=bearer(ada))).status_code == 200


async def test_delete_me_erases_the_account(
    client: Client, app: Litestar, ada: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """204; the access and refresh tokens die, the password no longer logs in, the address is
    free again, the outbox keeps nothing about the account, the audit line has no address."""
    runtime: Runtime = app.state.runtime
    await client.post("/v1/password/reset", json={"email": "ada@example.com"})
    await runtime.background.settle()
    assert len(await runtime.outbox.list_mail(None, 10)) == 2  # verification and reset links
    caplog.set_level(logging.INFO, logger="idp.audit")
    response = await client.request(
        "DELETE", "/v1/me", json={"current_password": PASSWORD}, headers=bearer(ada)
    )
    assert response.status_code == 204, response.text
    assert (await client.get("/v1/me", headers=bearer(ada))).status_code == 401
    refreshed = await client.post(
        "/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": ada["refresh_token"]}
    )
    assert refreshed.status_code == 400
    login = await client.post("/v1/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert login.status_code == 401
    assert await runtime.outbox.list_mail(None, 10) == []
    deleted = [r.getMessage() for r in caplog.records if '"account_deleted"' in r.getMessage()]
    assert len(deleted) == 1
    assert "example.com" not in deleted[0]
    again = await client.post("/v1/signup", json={"email": "ada@example.com", "password": PASSWORD})
    assert again.status_code == 201
