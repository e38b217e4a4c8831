"""grant_type=client_credentials: a confidential client's own access token, on both backends."""

from __future__ import annotations

import base64

import httpx
import jwt
from litestar import Litestar

from service.runtime import Runtime


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def register(app: Litestar) -> tuple[Runtime, str]:
    runtime: Runtime = app.state.runtime
    _, secret = await runtime.clients.register(
        "Billing", "billing", scopes=["invoices:read", "invoices:write"]
    )
    assert secret is not None
    return runtime, secret


async def test_client_gets_a_token_for_itself(app: Litestar, client: httpx.AsyncClient) -> None:
    """sub = client_id = the client, requested scopes only, no refresh token, no-store."""
    runtime, secret = await register(app)
    form = {"grant_type": "client_credentials", "scope": "invoices:read"}
    response = await client.post("/oauth2/token", data=form, headers=basic("billing", secret))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert (body["token_type"], body["scope"]) == ("Bearer", "invoices:read")
    key = runtime.keyring.verification_key(jwt.get_unverified_header(body["access_token"])["kid"])
    assert key is not None
    claims = jwt.decode(
        body["access_token"],
        jwt.PyJWK(key.key.as_dict(private=False)).key,
        algorithms=[key.stored.alg],
        audience=runtime.settings.audience,
        issuer=runtime.settings.issuer,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert (claims["sub"], claims["client_id"], claims["scope"]) == ("billing", "billing", "invoices:read")
    assert "sid" not in claims


async def test_default_scope_is_every_registered_scope(app: Litestar, client: httpx.AsyncClient) -> None:
    """Without a scope parameter the token carries the client's registered scopes (post auth)."""
    _, secret = await register(app)
    form = {"grant_type": "client_credentials", "client_id": "billing", "client_secret": secret}
    response = await client.post("/oauth2/token", data=form)
    assert (response.status_code, response.json()["scope"]) == (200, "invoices:read invoices:write")


async def test_refusals(app: Litestar, client: httpx.AsyncClient) -> None:
    """Unregistered scope → invalid_scope; no credentials → invalid_client; a client without the
    grant → unauthorized_client; a public client (with or without a secret) → invalid_client."""
    runtime, secret = await register(app)
    await runtime.clients.register("SPA", "spa", redirect_uris=["https://spa.example.com/cb"], public=True)
    _, web_secret = await runtime.clients.register("Web", "web", redirect_uris=["https://app.example.com/cb"])
    assert web_secret is not None
    cases = [
        ({"scope": "admin"}, basic("billing", secret), 400, "invalid_scope"),
        ({"scope": "invoices:read admin"}, basic("billing", secret), 400, "invalid_scope"),
        ({}, {}, 401, "invalid_client"),
        ({"client_id": "billing"}, {}, 401, "invalid_client"),
        ({}, basic("billing", secret + "x"), 401, "invalid_client"),
        ({}, basic("web", web_secret), 400, "unauthorized_client"),
        ({"client_id": "spa"}, {}, 401, "invalid_client"),
        ({}, basic("spa", "guess"), 401, "invalid_client"),
    ]
    for extra, headers, status, error in cases:
        response = await client.post(
            "/oauth2/token", data={"grant_type": "client_credentials", **extra}, headers=headers
        )
        assert (response.status_code, response.json()["error"]) == (status, error), (extra, response.text)


async def test_client_token_is_not_a_user_token(app: Litestar, client: httpx.AsyncClient) -> None:
    """/v1/me refuses it; introspection says active (while the client exists) with sub = client."""
    runtime, secret = await register(app)
    token = (
        await client.post(
            "/oauth2/token", data={"grant_type": "client_credentials"}, headers=basic("billing", secret)
        )
    ).json()["access_token"]
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert (me.status_code, me.json()["error"]) == (401, "invalid_token")
    _, rs_secret = await runtime.clients.register("Resource server", "rs")
    assert rs_secret is not None
    introspected = await client.post(
        "/oauth2/introspect", data={"token": token}, headers=basic("rs", rs_secret)
    )
    body = introspected.json()
    assert (body["active"], body["sub"], body["client_id"]) == (True, "billing", "billing")
    await runtime.clients.remove("billing")
    introspected = await client.post(
        "/oauth2/introspect", data={"token": token}, headers=basic("rs", rs_secret)
    )
    assert introspected.json() == {"active": False}
