"""The admin API's authorization matrix, on both deployments: every operation against a token
for each admin scope, a user's token (also one that carries every admin scope), a token for
another audience, and none. Only the scope that names an operation opens it."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar

from service.admin.access import (
    ADMIN_SCOPES,
    AUDIT_READ,
    CLIENTS_WRITE,
    SESSIONS_WRITE,
    USERS_READ,
    USERS_WRITE,
)
from service.clock import FrozenClock
from service.runtime import Runtime
from service.tokens.access import AccessTokens
from tests.support.admin import admin_token, bearer

PASSWORD = "correct horse battery"


class Op(msgspec.Struct, frozen=True):
    name: str
    method: str
    path: str
    """``{user}``, ``{sid}`` and ``{client}`` are filled from fresh targets."""
    scope: str
    success: int
    body: dict[str, Any] | None = None


OPERATIONS = [
    Op("list_users", "GET", "/admin/v1/users", USERS_READ, 200),
    Op("get_user", "GET", "/admin/v1/users/{user}", USERS_READ, 200),
    Op("list_sessions", "GET", "/admin/v1/users/{user}/sessions", USERS_READ, 200),
    Op("create_user", "POST", "/admin/v1/users", USERS_WRITE, 201, {"email": "new-{n}@example.com"}),
    Op("disable_user", "POST", "/admin/v1/users/{user}/disable", USERS_WRITE, 200),
    Op("enable_user", "POST", "/admin/v1/users/{user}/enable", USERS_WRITE, 200),
    Op("set_roles", "PUT", "/admin/v1/users/{user}/roles", USERS_WRITE, 200, {"roles": ["support"]}),
    Op("reset_mfa", "POST", "/admin/v1/users/{user}/mfa/reset", USERS_WRITE, 200),
    Op("delete_user", "DELETE", "/admin/v1/users/{user}", USERS_WRITE, 204),
    Op("end_sessions", "DELETE", "/admin/v1/users/{user}/sessions", SESSIONS_WRITE, 200),
    Op("end_session", "DELETE", "/admin/v1/users/{user}/sessions/{sid}", SESSIONS_WRITE, 204),
    Op("audit_events", "GET", "/admin/v1/audit", AUDIT_READ, 200),
    Op("list_clients", "GET", "/admin/v1/clients", CLIENTS_WRITE, 200),
    Op("add_client", "POST", "/admin/v1/clients", CLIENTS_WRITE, 201, {"name": "App {n}"}),
    Op("remove_client", "DELETE", "/admin/v1/clients/{client}", CLIENTS_WRITE, 204),
    Op("rotate_secret", "POST", "/admin/v1/clients/{client}/secret", CLIENTS_WRITE, 200),
]
CALLERS = [*ADMIN_SCOPES, "user", "user-with-admin-scopes", "foreign-audience", "no-token"]


def test_every_admin_route_is_in_the_matrix(app: Litestar) -> None:
    """A new admin route cannot ship without a row here (and a scope of its own)."""
    routes = {
        (method, route.path)
        for route in app.routes
        if route.path.startswith("/admin/")
        for method in getattr(route, "methods", ())
        if method not in {"HEAD", "OPTIONS"}
    }

    def shape(path: str) -> str:
        return (
            path.replace("{user}", "{user_id:str}")
            .replace("{sid}", "{session_id:str}")
            .replace("{client}", "{client_id:str}")
        )

    assert routes == {(op.method, shape(op.path)) for op in OPERATIONS}


Tokens = dict[str, str | None]


async def caller_tokens(client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock) -> Tokens:
    tokens: Tokens = {}
    for scope in ADMIN_SCOPES:
        tokens[scope] = await admin_token(
            client, runtime, "adm-" + scope.split(":", 1)[1].replace(":", "-"), [scope]
        )
    signup = await client.post("/v1/signup", json={"email": "staff@example.com", "password": PASSWORD})
    assert signup.status_code == 201, signup.text
    tokens["user"] = signup.json()["tokens"]["access_token"]
    staff = runtime.access_tokens.verify(signup.json()["tokens"]["access_token"])
    await admin_token(client, runtime, "adm-all", ADMIN_SCOPES)
    tokens["user-with-admin-scopes"] = runtime.access_tokens.issue(
        subject=staff.sub,
        email="staff@example.com",
        roles=(),
        sid=staff.sid,
        client_id="adm-all",
        scope=" ".join(ADMIN_SCOPES),
    ).token
    foreign = AccessTokens(
        keyring=runtime.keyring,
        issuer=runtime.settings.issuer,
        audience="https://api.elsewhere.example",
        ttl=900,
        clock=clock,
    )
    tokens["foreign-audience"] = foreign.issue(
        subject="adm-all", email=None, roles=(), client_id="adm-all", scope=" ".join(ADMIN_SCOPES)
    ).token
    tokens["no-token"] = None
    return tokens


async def fresh_targets(client: httpx.AsyncClient, runtime: Runtime, n: int) -> dict[str, str]:
    email = f"target-{n}@example.com"
    signup = await client.post("/v1/signup", json={"email": email, "password": PASSWORD})
    assert signup.status_code == 201, signup.text
    sid = runtime.access_tokens.verify(signup.json()["tokens"]["access_token"]).sid
    assert sid is not None
    user = await runtime.user_admin.get(email)
    await runtime.clients.register(f"victim {n}", f"victim-{n}")
    return {"user": str(user.id), "sid": sid, "client": f"victim-{n}", "n": str(n)}


def fill(template: Any, values: dict[str, str]) -> Any:
    if isinstance(template, str):
        return template.format(**values)
    if isinstance(template, list):
        return [fill(item, values) for item in template]
    if isinstance(template, dict):
        return {key: fill(value, values) for key, value in template.items()}
    return template


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.name for op in OPERATIONS])
async def test_authorization_matrix(
    app: Litestar, client: httpx.AsyncClient, clock: FrozenClock, operation: Op
) -> None:
    """For this operation, each caller: its own scope succeeds; every other admin scope and a
    user's token (even one carrying every admin scope) get 403 insufficient_scope; a token for
    another audience and a missing token get 401 invalid_token."""
    runtime: Runtime = app.state.runtime
    tokens = await caller_tokens(client, runtime, clock)
    outcomes = {}
    for n, caller in enumerate(CALLERS):
        values = await fresh_targets(client, runtime, n)
        token = tokens[caller]
        response = await client.request(
            operation.method,
            fill(operation.path, values),
            json=fill(operation.body, values) if operation.body is not None else None,
            headers=bearer(token) if token else {},
        )
        body = response.json() if response.content else None
        outcomes[caller] = (response.status_code, body.get("error") if isinstance(body, dict) else None)
    expected = {
        caller: (operation.success, None)
        if caller == operation.scope
        else (401, "invalid_token")
        if caller in {"foreign-audience", "no-token"}
        else (403, "insufficient_scope")
        for caller in CALLERS
    }
    assert outcomes == expected
