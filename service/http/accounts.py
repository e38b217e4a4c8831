"""``/v1/signup``, ``/v1/login``, ``/v1/me`` (GET, PATCH: name, DELETE: the account),
``/v1/password``, ``/v1/logout``, ``/v1/sessions``."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.connection import ASGIConnection
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler
from litestar.params import JSONBody, PathParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from service import bounded_json
from service.clock import rfc3339
from service.errors import UnsupportedMediaType
from service.http.auth import request_ip
from service.http.openapi import errors
from service.runtime import Runtime
from service.sessions import TokenResponse
from service.store.base import User
from service.store.sessions import Family
from service.tokens.access import AccessClaims

__all__ = ["LOGIN_PATH", "AccountsController", "require_json"]

Email = Annotated[str, msgspec.Meta(max_length=320)]
Password = Annotated[str, msgspec.Meta(max_length=4096)]
Name = Annotated[str, msgspec.Meta(max_length=200)]


async def require_json(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: a body we parse as JSON must say so. (Guards are coroutines: Litestar runs a
    plain function guard in a worker thread, two thread hand-offs per request.)"""
    media_type = connection.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType


async def require_json_if_body(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Guard for optional bodies: when one is sent, it must be JSON."""
    if connection.headers.get("content-length", "0") != "0" or "transfer-encoding" in connection.headers:
        await require_json(connection, handler)


LOGIN_PATH = "/v1/login"
"""Also answered before routing (service.http.fast.LoginEndpointFast)."""

# Session ids are 22 base64url characters; anything else is malformed (400), not unknown (404).
SESSION_ID = r"^[A-Za-z0-9_-]{1,64}$"


class SignupRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    email: Email
    password: Password
    name: Name | None = None


class LoginRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    email: Email
    password: Password


class PasswordChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    current_password: Password
    new_password: Password


class ProfileUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Name | None


class AccountDeletion(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    current_password: Password


class LogoutRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    all: bool = False


class UserView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    email: str
    email_verified: bool
    name: str | None
    roles: tuple[str, ...]
    created_at: str
    """RFC 3339, whole seconds, UTC."""
    updated_at: str

    @classmethod
    def of(cls, user: User) -> UserView:
        return cls(
            id=user.id,
            email=user.email,
            email_verified=user.email_verified,
            name=user.name,
            roles=user.roles,
            created_at=rfc3339(user.created_at),
            updated_at=rfc3339(user.updated_at),
        )


class SignupResponse(msgspec.Struct, frozen=True):
    user: UserView
    tokens: TokenResponse | None
    """None when ``IDP_EMAIL_VERIFICATION=required``: sign in after following the mailed link."""


class SignupAccepted(msgspec.Struct, frozen=True):
    status: str
    message: str


SIGNUP_ACCEPTED = SignupAccepted(
    status="accepted", message="Check your mail to finish creating your account, then sign in."
)


class SessionView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    current: bool
    created_at: str
    """RFC 3339, whole seconds, UTC (as the other times)."""
    last_used_at: str
    expires_at: str
    user_agent: str | None
    client_id: str | None
    origin: str

    @classmethod
    def of(cls, family: Family, current_sid: str | None) -> SessionView:
        return cls(
            id=family.id,
            current=family.id == current_sid,
            created_at=rfc3339(family.created_at),
            last_used_at=rfc3339(family.last_used_at),
            expires_at=rfc3339(family.expires_at),
            user_agent=family.user_agent,
            client_id=family.client_id,
            origin=family.origin,
        )


class AccountsController(Controller):
    path = "/v1"
    cache_control = CacheControlHeader(no_store=True)
    tags = ["accounts"]  # noqa: RUF012

    @post(
        "/signup",
        status_code=HTTP_201_CREATED,
        guards=[require_json],
        responses=errors(400, 409, 413, 415, 422, 429),
    )
    async def signup(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[SignupRequest],
        runtime: NamedDependency[Runtime],
    ) -> Response[SignupResponse | SignupAccepted]:
        """Create an account and sign it in (a new session). With
        ``IDP_SIGNUP_ENUMERATION_SAFE=true``: 202 alike for new and existing addresses."""
        ip = request_ip(request, runtime.guard)
        if runtime.settings.mail.signup_enumeration_safe:
            await runtime.quiet_signup.request(data.email, data.password, data.name, ip)
            return Response(SIGNUP_ACCEPTED, status_code=HTTP_202_ACCEPTED)
        user, tokens = await runtime.accounts.signup(
            data.email,
            data.password,
            data.name,
            request.headers.get("user-agent"),
            ip,
        )
        return Response(SignupResponse(UserView.of(user), tokens), status_code=HTTP_201_CREATED)

    @post(
        LOGIN_PATH.removeprefix("/v1"),
        status_code=HTTP_200_OK,
        guards=[require_json],
        responses=errors(400, 401, 403, 413, 415, 429),
    )
    async def login(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[LoginRequest],
        runtime: NamedDependency[Runtime],
    ) -> TokenResponse:
        """Exchange email + password for tokens (a new session)."""
        _, tokens = await runtime.accounts.login(
            data.email, data.password, request.headers.get("user-agent"), request_ip(request, runtime.guard)
        )
        return tokens

    @get("/me", responses=errors(401))
    async def me(self, claims: NamedDependency[AccessClaims], runtime: NamedDependency[Runtime]) -> UserView:
        """The profile of the account the Bearer token was issued to."""
        return UserView.of(await runtime.accounts.profile(claims))

    @patch("/me", guards=[require_json], responses=errors(400, 401, 413, 415))
    async def update_me(
        self,
        data: JSONBody[ProfileUpdate],
        claims: NamedDependency[AccessClaims],
        runtime: NamedDependency[Runtime],
    ) -> UserView:
        """Change the display name (``null`` or blank clears it)."""
        user = await runtime.accounts.profile(claims)
        return UserView.of(await runtime.profiles.rename(user, data.name))

    @delete(
        "/me", status_code=HTTP_204_NO_CONTENT, guards=[require_json], responses=errors(400, 401, 413, 415)
    )
    async def delete_me(
        self,
        data: JSONBody[AccountDeletion],
        claims: NamedDependency[AccessClaims],
        runtime: NamedDependency[Runtime],
    ) -> None:
        """Delete the account (current password required): every session ends, identities,
        pending mail and personal data are erased."""
        user = await runtime.accounts.profile(claims)
        await runtime.profiles.delete_own(user, data.current_password)

    @post(
        "/password",
        status_code=HTTP_204_NO_CONTENT,
        guards=[require_json],
        responses=errors(400, 401, 413, 415, 422),
    )
    async def change_password(
        self,
        data: JSONBody[PasswordChange],
        claims: NamedDependency[AccessClaims],
        runtime: NamedDependency[Runtime],
    ) -> None:
        """Change the password; every other session ends."""
        await runtime.accounts.change_password(claims, data.current_password, data.new_password)

    @post(
        "/logout",
        status_code=HTTP_204_NO_CONTENT,
        guards=[require_json_if_body],
        responses=errors(400, 401, 413, 415),
    )
    async def logout(
        self,
        request: Request[Any, Any, Any],
        claims: NamedDependency[AccessClaims],
        runtime: NamedDependency[Runtime],
    ) -> None:
        """End this session, or with ``{"all": true}`` every session of the account."""
        sessions = runtime.sessions
        body = await request.body()
        options = bounded_json.decode(body, type=LogoutRequest) if body else LogoutRequest()
        user_id = UUID(claims.sub)
        if options.all or claims.sid is None:
            await sessions.end_all(user_id, "logout")
        else:
            await sessions.end(user_id, claims.sid, "logout")

    @get("/sessions", responses=errors(401))
    async def list_sessions(
        self, claims: NamedDependency[AccessClaims], runtime: NamedDependency[Runtime]
    ) -> list[SessionView]:
        """The account's active sessions."""
        families = await runtime.sessions.list(UUID(claims.sub))
        return [SessionView.of(family, claims.sid) for family in families]

    @delete("/sessions/{session_id:str}", status_code=HTTP_204_NO_CONTENT, responses=errors(400, 401, 404))
    async def end_session(
        self,
        session_id: Annotated[str, PathParameter(pattern=SESSION_ID, description="A session id (`sid`).")],
        claims: NamedDependency[AccessClaims],
        runtime: NamedDependency[Runtime],
    ) -> None:
        """End one of the account's sessions."""
        await runtime.sessions.end(UUID(claims.sub), session_id, "session_ended")
