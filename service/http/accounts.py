"""``/v1/signup``, ``/v1/login``, ``/v1/me``."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from service.accounts import Accounts, TokenResponse
from service.errors import InvalidToken, UnsupportedMediaType
from service.store.base import User
from service.tokens.access import AccessTokens

__all__ = ["AccountsController", "require_json"]

Email = Annotated[str, msgspec.Meta(max_length=320)]
Password = Annotated[str, msgspec.Meta(max_length=4096)]
Name = Annotated[str, msgspec.Meta(max_length=200)]


def require_json(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: a body we parse as JSON must say so."""
    media_type = connection.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType


class SignupRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    email: Email
    password: Password
    name: Name | None = None


class LoginRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    email: Email
    password: Password


class UserView(msgspec.Struct, frozen=True):
    id: UUID
    email: str
    name: str | None
    roles: tuple[str, ...]
    created_at: float

    @classmethod
    def of(cls, user: User) -> UserView:
        return cls(user.id, user.email, user.name, user.roles, user.created_at)


class SignupResponse(msgspec.Struct, frozen=True):
    user: UserView
    tokens: TokenResponse


def bearer_token(request: Request[Any, Any, Any]) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("A Bearer access token is required.")
    return token.strip()


class AccountsController(Controller):
    path = "/v1"
    cache_control = CacheControlHeader(no_store=True)
    tags = ["accounts"]  # noqa: RUF012

    @post("/signup", status_code=HTTP_201_CREATED, guards=[require_json])
    async def signup(
        self, data: JSONBody[SignupRequest], accounts: NamedDependency[Accounts]
    ) -> SignupResponse:
        """Create an account and sign it in."""
        user, tokens = await accounts.signup(data.email, data.password, data.name)
        return SignupResponse(UserView.of(user), tokens)

    @post("/login", status_code=HTTP_200_OK, guards=[require_json])
    async def login(self, data: JSONBody[LoginRequest], accounts: NamedDependency[Accounts]) -> TokenResponse:
        """Exchange email + password for tokens."""
        _, tokens = await accounts.login(data.email, data.password)
        return tokens

    @get("/me")
    async def me(
        self,
        request: Request[Any, Any, Any],
        accounts: NamedDependency[Accounts],
        access_tokens: NamedDependency[AccessTokens],
    ) -> UserView:
        """The profile of the account the Bearer token was issued to."""
        claims = access_tokens.verify(bearer_token(request))
        return UserView.of(await accounts.profile(claims))
