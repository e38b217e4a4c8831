"""``/admin/v1``: the admin API. Each handler names the scope it needs (``opt["scope"]``); the
controller's guard lets through only a client_credentials token holding it
(:class:`service.admin.access.AdminAccess`), after the client's rate limit, and audits the call.
The handlers call the same domain operations as ``idp users`` / ``idp clients``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, delete, get, post, put
from litestar.connection import ASGIConnection
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from service.admin.access import (
    AUDIT_READ,
    CLIENTS_WRITE,
    SESSIONS_WRITE,
    USERS_READ,
    USERS_WRITE,
    AdminCaller,
)
from service.errors import InvalidRequest
from service.http.accounts import SessionView, require_json
from service.http.auth import bearer_token, request_ip
from service.http.openapi import errors
from service.runtime import Runtime
from service.store.admin import AuditQuery, StoredAuditEvent
from service.store.base import User
from service.store.mfa import FactorSummary
from service.store.sessions import Client

__all__ = ["AdminController"]

Email = Annotated[str, msgspec.Meta(max_length=320)]
Short = Annotated[str, msgspec.Meta(max_length=200)]
Names = Annotated[list[Annotated[str, msgspec.Meta(max_length=512)]], msgspec.Meta(max_length=32)]
Limit = Annotated[int, QueryParameter(ge=1, le=200)]


async def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """A client_credentials token with the handler's scope (401 / 403 / 429 otherwise)."""
    runtime: Runtime = connection.app.state.runtime
    caller = await runtime.admin_access.authorize(
        bearer_token(connection),  # type: ignore[arg-type]
        handler.opt["scope"],
        handler.handler_name,
        request_ip(connection, runtime.guard),  # type: ignore[arg-type]
    )
    connection.state.admin = caller


def _caller(request: Request[Any, Any, Any]) -> AdminCaller:
    caller: AdminCaller = request.state.admin
    return caller


def _account(raw: str) -> UUID:
    """An account id from the path: a UUID, else 400 (never a lookup by anything else)."""
    try:
        return UUID(raw)
    except ValueError:
        raise InvalidRequest("user_id: not an account id.") from None


def _epoch(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class AdminUserView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    email: str
    name: str | None
    roles: tuple[str, ...]
    disabled: bool
    has_password: bool
    created_at: float
    updated_at: float

    @classmethod
    def of(cls, user: User) -> AdminUserView:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            roles=user.roles,
            disabled=user.disabled,
            has_password=user.password_hash is not None,
            created_at=user.created_at,
            updated_at=user.updated_at,
        )


class UserList(msgspec.Struct, frozen=True):
    users: list[AdminUserView]
    next_cursor: str | None
    """Pass as ``cursor`` for the next page; null on the last page."""


class CreateUser(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    email: Email
    name: Short | None = None
    roles: Names = msgspec.field(default_factory=list)
    password: Annotated[str, msgspec.Meta(max_length=4096)] | None = None
    """Without a password the account is invited: a set-password link is mailed to it."""


class SetRoles(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    roles: Names


class SessionsEnded(msgspec.Struct, frozen=True):
    ended: int


class ClientView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    grant_types: tuple[str, ...]
    scopes: tuple[str, ...]
    redirect_uris: tuple[str, ...]
    public: bool
    first_party: bool
    require_mfa: bool
    token_endpoint_auth_method: str
    created_at: float

    @classmethod
    def of(cls, client: Client) -> ClientView:
        return cls(
            id=client.id,
            name=client.name,
            grant_types=client.grant_types,
            scopes=client.scopes,
            redirect_uris=client.redirect_uris,
            public=client.public,
            first_party=client.first_party,
            require_mfa=client.require_mfa,
            token_endpoint_auth_method=client.token_endpoint_auth_method,
            created_at=client.created_at,
        )


class CreateClient(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Short
    id: Short | None = None
    redirect_uris: Names = msgspec.field(default_factory=list)
    post_logout_redirect_uris: Names = msgspec.field(default_factory=list)
    public: bool = False
    grant_types: Names | None = None
    scopes: Names = msgspec.field(default_factory=list)
    first_party: bool = False
    require_mfa: bool = False
    id_token_signed_response_alg: Short = "RS256"


class ClientCreated(msgspec.Struct, frozen=True):
    client: ClientView
    client_secret: str | None
    """Shown this once; null for a public client."""


class ClientSecret(msgspec.Struct, frozen=True):
    client_secret: str


class AuditEventList(msgspec.Struct, frozen=True):
    events: list[StoredAuditEvent]
    next_cursor: str | None


class AdminController(Controller):
    path = "/admin/v1"
    cache_control = CacheControlHeader(no_store=True)
    tags = ["admin"]  # noqa: RUF012
    guards = [admin_guard]  # noqa: RUF012
    security = [{"adminClientToken": []}]  # noqa: RUF012

    @get("/users", opt={"scope": USERS_READ}, responses=errors(400, 401, 403, 429))
    async def list_users(
        self,
        runtime: NamedDependency[Runtime],
        email_prefix: Annotated[str | None, QueryParameter(max_length=320)] = None,
        created_from: FromQuery[datetime | None] = None,
        created_until: FromQuery[datetime | None] = None,
        cursor: Annotated[str | None, QueryParameter(max_length=200)] = None,
        limit: Limit = 50,
    ) -> UserList:
        """Accounts in creation order (``admin:users:read``), optionally by email prefix and a
        creation range ``[created_from, created_until)``; page with ``next_cursor``."""
        page = await runtime.user_admin.search(
            email_prefix=email_prefix,
            created_from=_epoch(created_from),
            created_until=_epoch(created_until),
            cursor=cursor,
            limit=limit,
        )
        return UserList([AdminUserView.of(user) for user in page.users], page.next_cursor)

    @get("/users/{user_id:str}", opt={"scope": USERS_READ}, responses=errors(400, 401, 403, 404, 429))
    async def get_user(self, user_id: FromPath[str], runtime: NamedDependency[Runtime]) -> AdminUserView:
        """One account (``admin:users:read``)."""
        return AdminUserView.of(await runtime.user_admin.get(_account(user_id)))

    @post(
        "/users",
        opt={"scope": USERS_WRITE},
        status_code=HTTP_201_CREATED,
        guards=[require_json],
        responses=errors(400, 401, 403, 409, 413, 415, 422, 429),
    )
    async def create_user(
        self, request: Request[Any, Any, Any], data: JSONBody[CreateUser], runtime: NamedDependency[Runtime]
    ) -> AdminUserView:
        """Create an account (``admin:users:write``); without ``password``, invite it by mail."""
        user = await runtime.user_admin.create(
            _caller(request), data.email, password=data.password, name=data.name, roles=data.roles
        )
        return AdminUserView.of(user)

    @post(
        "/users/{user_id:str}/disable",
        opt={"scope": USERS_WRITE},
        status_code=HTTP_200_OK,
        responses=errors(400, 401, 403, 404, 429),
    )
    async def disable_user(
        self, request: Request[Any, Any, Any], user_id: FromPath[str], runtime: NamedDependency[Runtime]
    ) -> AdminUserView:
        """Disable an account and end its sessions (``admin:users:write``)."""
        return AdminUserView.of(
            await runtime.user_admin.set_disabled(_caller(request), _account(user_id), True)
        )

    @post(
        "/users/{user_id:str}/enable",
        opt={"scope": USERS_WRITE},
        status_code=HTTP_200_OK,
        responses=errors(400, 401, 403, 404, 429),
    )
    async def enable_user(
        self, request: Request[Any, Any, Any], user_id: FromPath[str], runtime: NamedDependency[Runtime]
    ) -> AdminUserView:
        """Enable an account (``admin:users:write``)."""
        return AdminUserView.of(
            await runtime.user_admin.set_disabled(_caller(request), _account(user_id), False)
        )

    @put(
        "/users/{user_id:str}/roles",
        opt={"scope": USERS_WRITE},
        guards=[require_json],
        responses=errors(400, 401, 403, 404, 413, 415, 429),
    )
    async def set_roles(
        self,
        request: Request[Any, Any, Any],
        user_id: FromPath[str],
        data: JSONBody[SetRoles],
        runtime: NamedDependency[Runtime],
    ) -> AdminUserView:
        """Replace an account's roles; its sessions' next tokens carry them (``admin:users:write``)."""
        return AdminUserView.of(
            await runtime.user_admin.set_roles(_caller(request), _account(user_id), data.roles)
        )

    @delete(
        "/users/{user_id:str}",
        opt={"scope": USERS_WRITE},
        status_code=HTTP_204_NO_CONTENT,
        responses=errors(400, 401, 403, 404, 429),
    )
    async def delete_user(
        self, request: Request[Any, Any, Any], user_id: FromPath[str], runtime: NamedDependency[Runtime]
    ) -> None:
        """Delete an account: sessions end, identities, links and mail go (``admin:users:write``)."""
        await runtime.user_admin.delete(_caller(request), _account(user_id))

    @post(
        "/users/{user_id:str}/mfa/reset",
        opt={"scope": USERS_WRITE},
        status_code=HTTP_200_OK,
        responses=errors(400, 401, 403, 404, 429),
    )
    async def reset_mfa(
        self, request: Request[Any, Any, Any], user_id: FromPath[str], runtime: NamedDependency[Runtime]
    ) -> FactorSummary:
        """Remove every second factor and recovery code of an account, which is told by mail;
        the answer says what it had (``admin:users:write``)."""
        return await runtime.user_admin.reset_mfa(_caller(request), _account(user_id))

    @get(
        "/users/{user_id:str}/sessions", opt={"scope": USERS_READ}, responses=errors(400, 401, 403, 404, 429)
    )
    async def list_sessions(
        self, user_id: FromPath[str], runtime: NamedDependency[Runtime]
    ) -> list[SessionView]:
        """An account's live sessions (``admin:users:read``)."""
        return [
            SessionView.of(family, None) for family in await runtime.user_admin.sessions(_account(user_id))
        ]

    @delete(
        "/users/{user_id:str}/sessions",
        opt={"scope": SESSIONS_WRITE},
        status_code=HTTP_200_OK,
        responses=errors(400, 401, 403, 404, 429),
    )
    async def end_sessions(
        self, request: Request[Any, Any, Any], user_id: FromPath[str], runtime: NamedDependency[Runtime]
    ) -> SessionsEnded:
        """End every session of an account (``admin:sessions:write``)."""
        return SessionsEnded(await runtime.user_admin.end_sessions(_caller(request), _account(user_id)))

    @delete(
        "/users/{user_id:str}/sessions/{session_id:str}",
        opt={"scope": SESSIONS_WRITE},
        status_code=HTTP_204_NO_CONTENT,
        responses=errors(400, 401, 403, 404, 429),
    )
    async def end_session(
        self,
        request: Request[Any, Any, Any],
        user_id: FromPath[str],
        session_id: FromPath[str],
        runtime: NamedDependency[Runtime],
    ) -> None:
        """End one session of an account (``admin:sessions:write``)."""
        await runtime.user_admin.end_session(_caller(request), _account(user_id), session_id)

    @get("/clients", opt={"scope": CLIENTS_WRITE}, responses=errors(401, 403, 429))
    async def list_clients(self, runtime: NamedDependency[Runtime]) -> list[ClientView]:
        """Every client registration (``admin:clients:write``)."""
        return [ClientView.of(client) for client in await runtime.clients.list()]

    @post(
        "/clients",
        opt={"scope": CLIENTS_WRITE},
        status_code=HTTP_201_CREATED,
        guards=[require_json],
        responses=errors(400, 401, 403, 409, 413, 415, 429),
    )
    async def add_client(
        self, request: Request[Any, Any, Any], data: JSONBody[CreateClient], runtime: NamedDependency[Runtime]
    ) -> ClientCreated:
        """Register a client; its secret is in this response only (``admin:clients:write``).
        A client holding this scope can register clients with any scope: grant it like root."""
        client, secret = await runtime.clients.register(
            data.name,
            data.id,
            redirect_uris=data.redirect_uris,
            post_logout_redirect_uris=data.post_logout_redirect_uris,
            public=data.public,
            grant_types=data.grant_types,
            scopes=data.scopes,
            first_party=data.first_party,
            require_mfa=data.require_mfa,
            id_token_signed_response_alg=data.id_token_signed_response_alg,
            actor=_caller(request).actor,
        )
        return ClientCreated(ClientView.of(client), secret)

    @delete(
        "/clients/{client_id:str}",
        opt={"scope": CLIENTS_WRITE},
        status_code=HTTP_204_NO_CONTENT,
        responses=errors(400, 401, 403, 404, 429),
    )
    async def remove_client(
        self, request: Request[Any, Any, Any], client_id: FromPath[str], runtime: NamedDependency[Runtime]
    ) -> None:
        """Delete a client; its tokens stop opening the admin API at once (``admin:clients:write``)."""
        await runtime.clients.remove(client_id, actor=_caller(request).actor)

    @post(
        "/clients/{client_id:str}/secret",
        opt={"scope": CLIENTS_WRITE},
        status_code=HTTP_200_OK,
        responses=errors(400, 401, 403, 404, 429),
    )
    async def rotate_secret(
        self, request: Request[Any, Any, Any], client_id: FromPath[str], runtime: NamedDependency[Runtime]
    ) -> ClientSecret:
        """A new secret, shown once; the old one stops working (``admin:clients:write``)."""
        return ClientSecret(await runtime.clients.rotate_secret(client_id, actor=_caller(request).actor))

    @get("/audit", opt={"scope": AUDIT_READ}, responses=errors(400, 401, 403, 429))
    async def audit_events(
        self,
        runtime: NamedDependency[Runtime],
        user_id: FromQuery[UUID | None] = None,
        event: Annotated[str | None, QueryParameter(max_length=64)] = None,
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
        cursor: Annotated[int | None, QueryParameter(ge=1)] = None,
        limit: Limit = 100,
    ) -> AuditEventList:
        """Audit events, newest first, by account, event and time range ``[since, until)``
        (``admin:audit:read``); page with ``next_cursor``."""
        query = AuditQuery(
            user_id=user_id,
            event=event,
            since=_epoch(since),
            until=_epoch(until),
            before_id=cursor,
            limit=limit + 1,
        )
        found = await runtime.audit_log.query(query)
        page = found[:limit]
        return AuditEventList(page, str(page[-1].id) if len(found) > limit else None)
