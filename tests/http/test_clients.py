"""Confidential clients: client-bound refresh tokens, client authentication, introspection."""

from __future__ import annotations

import base64
from typing import Any

import httpx
from litestar import Litestar

from service.runtime import Runtime

PASSWORD = "correct horse battery"


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def setup(app: Litestar, client: httpx.AsyncClient) -> tuple[Runtime, str, dict[str, Any]]:
    """A user, a confidential client 'api' and a session bound to that client."""
    runtime: Runtime = app.state.runtime
    _, secret = await runtime.clients.register("Billing API", "api")
    assert secret is not None
    response = await client.post("/v1/signup", json={"email": "ada@example.com", "password": PASSWORD})
    user = await runtime.accounts.get_by_email("ada@example.com")
    bound = await runtime.sessions.start(user, origin="test", client_id="api", scope="read write")
    assert response.status_code == 201
    return runtime, secret, {"first_party": response.json()["tokens"], "bound": bound}


async def test_client_bound_refresh_needs_that_client(app: Litestar, client: httpx.AsyncClient) -> None:
    """Without credentials: 401 invalid_client; another client: invalid_grant; basic and post work."""
    runtime, secret, tokens = await setup(app, client)
    _, other_secret = await runtime.clients.register("Other", "other")
    assert other_secret is not None
    form = {"grant_type": "refresh_token", "refresh_token": tokens["bound"].refresh_token}
    anonymous = await client.post("/oauth2/token", data=form)
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "invalid_client")
    assert anonymous.headers["www-authenticate"].startswith("Basic")
    other = await client.post("/oauth2/token", data=form, headers=basic("other", other_secret))
    assert (other.status_code, other.json()["error"]) == (400, "invalid_grant")
    wrong = await client.post("/oauth2/token", data=form, headers=basic("api", secret + "x"))
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    via_basic = await client.post("/oauth2/token", data=form, headers=basic("api", secret))
    assert via_basic.status_code == 200, via_basic.text
    assert via_basic.json()["scope"] == "read write"
    form["refresh_token"] = via_basic.json()["refresh_token"]
    via_post = await client.post("/oauth2/token", data={**form, "client_id": "api", "client_secret": secret})
    assert via_post.status_code == 200


async def test_scope_can_narrow_but_not_widen(app: Litestar, client: httpx.AsyncClient) -> None:
    """A refresh may ask for a subset of the granted scope only."""
    _, secret, tokens = await setup(app, client)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["bound"].refresh_token,
        "scope": "read admin",
    }
    wider = await client.post("/oauth2/token", data=form, headers=basic("api", secret))
    assert (wider.status_code, wider.json()["error"]) == (400, "invalid_scope")
    narrower = await client.post(
        "/oauth2/token", data={**form, "scope": "read"}, headers=basic("api", secret)
    )
    assert (narrower.status_code, narrower.json()["scope"]) == (200, "read")


async def test_two_authentication_methods_at_once_are_refused(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """RFC 6749 §2.3: exactly one client authentication method per request."""
    _, secret, tokens = await setup(app, client)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["bound"].refresh_token,
        "client_secret": secret,
    }
    response = await client.post(
        "/oauth2/token", data={**form, "client_id": "api"}, headers=basic("api", secret)
    )
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


async def test_introspection(app: Litestar, client: httpx.AsyncClient) -> None:
    """Authenticated clients learn whether a token is active; revoked sessions are inactive."""
    _, secret, tokens = await setup(app, client)
    access = tokens["first_party"]["access_token"]
    anonymous = await client.post("/oauth2/introspect", data={"token": access})
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "invalid_client")
    active = await client.post("/oauth2/introspect", data={"token": access}, headers=basic("api", secret))
    body = active.json()
    assert (active.status_code, body["active"], body["token_type"], body["username"]) == (
        200, True, "access_token", "ada@example.com",
    )  # fmt: skip
    assert body["sid"] == tokens["first_party"]["refresh_token"][6:28]
    bound_refresh = tokens["bound"].refresh_token
    own = await client.post("/oauth2/introspect", data={"token": bound_refresh}, headers=basic("api", secret))
    assert (own.json()["active"], own.json()["client_id"], own.json()["scope"]) == (True, "api", "read write")
    foreign = tokens["first_party"]["refresh_token"]
    other = await client.post("/oauth2/introspect", data={"token": foreign}, headers=basic("api", secret))
    assert other.json() == {"active": False}
    await client.post("/v1/logout", headers={"Authorization": f"Bearer {access}"})
    after = await client.post("/oauth2/introspect", data={"token": access}, headers=basic("api", secret))
    assert after.json() == {"active": False}
    junk = await client.post("/oauth2/introspect", data={"token": "junk"}, headers=basic("api", secret))
    assert junk.json() == {"active": False}


async def test_discovery_lists_the_oauth_endpoints(client: httpx.AsyncClient) -> None:
    """Token, revocation and introspection endpoints and auth methods are advertised."""
    metadata = (await client.get("/.well-known/oauth-authorization-server")).json()
    issuer = metadata["issuer"]
    endpoints = [metadata[f"{name}_endpoint"] for name in ("token", "revocation", "introspection")]
    assert endpoints == [f"{issuer}/oauth2/token", f"{issuer}/oauth2/revoke", f"{issuer}/oauth2/introspect"]
    assert "refresh_token" in metadata["grant_types_supported"]
    assert metadata["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "none",
    ]
