"""The hostile-token suite over HTTP: /v1/me refuses each forged token with 401 and
introspection reports it inactive; no URL named in a token is ever fetched."""

from __future__ import annotations

import httpx
import pytest
from litestar import Litestar

from service.runtime import Runtime
from tests.support.hostile import HOSTILE, Forger, hostile_tokens

ISSUER = "http://127.0.0.1:8000"


async def forged(app: Litestar, client: httpx.AsyncClient) -> dict[str, str]:
    """Forgeries about a real, signed-in user (so only the forgery can make them fail)."""
    runtime: Runtime = app.state.runtime
    signup = await client.post(
        "/v1/signup", json={"email": "ada@example.com", "password": "correct horse battery"}
    )
    user_id = signup.json()["user"]["id"]
    forger = Forger(
        runtime.keyring, runtime.access_tokens, runtime.clock, issuer=ISSUER, audience=ISSUER, subject=user_id
    )
    tokens = hostile_tokens(forger)
    assert set(tokens) == set(HOSTILE)
    return tokens


@pytest.mark.parametrize("case", HOSTILE)
async def test_me_refuses(app: Litestar, client: httpx.AsyncClient, case: str) -> None:
    """401 invalid_token with the RFC 6750 header, for each forgery."""
    token = (await forged(app, client))[case]
    response = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert (response.status_code, response.json()["error"]) == (401, "invalid_token")
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.parametrize("case", HOSTILE)
async def test_introspection_reports_inactive(app: Litestar, client: httpx.AsyncClient, case: str) -> None:
    """An authenticated client learns only {"active": false}."""
    token = (await forged(app, client))[case]
    runtime: Runtime = app.state.runtime
    _, secret = await runtime.clients.register("rs", "rs")
    assert secret is not None
    response = await client.post("/oauth2/introspect", data={"token": token or "x"}, auth=("rs", secret))
    assert (response.status_code, response.json()) == (200, {"active": False})
