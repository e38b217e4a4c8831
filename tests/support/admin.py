"""Admin API test helpers: admin clients with chosen scopes and their client_credentials tokens."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import httpx

from service.runtime import Runtime

__all__ = ["admin_token", "bearer", "new_admin_client"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def new_admin_client(runtime: Runtime, client_id: str, scopes: Sequence[str]) -> str:
    """Register a machine client holding ``scopes``; return its secret."""
    _, secret = await runtime.clients.register(client_id, client_id, scopes=scopes)
    assert secret is not None
    return secret


async def admin_token(
    http: httpx.AsyncClient, runtime: Runtime, client_id: str, scopes: Sequence[str]
) -> str:
    """A client_credentials access token of a new client holding (and requesting) ``scopes``."""
    secret = await new_admin_client(runtime, client_id, scopes)
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    form = {"grant_type": "client_credentials"} | ({"scope": " ".join(scopes)} if scopes else {})
    response = await http.post("/oauth2/token", data=form, headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token
