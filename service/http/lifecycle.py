"""Lifecycle by mail: ``/v1/password/reset`` (+ ``/confirm``), ``/v1/email/verify`` (+ ``/resend``),
``/v1/me/email`` and ``/v1/email/change/confirm``."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, post
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from service.http.accounts import require_json
from service.http.auth import request_ip
from service.http.openapi import errors
from service.runtime import Runtime
from service.tokens.access import AccessClaims

__all__ = ["RESET_ACCEPTED", "LifecycleController"]

Email = Annotated[str, msgspec.Meta(max_length=320)]
Password = Annotated[str, msgspec.Meta(max_length=4096)]
LinkToken = Annotated[str, msgspec.Meta(max_length=512)]


class ResetRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    email: Email


class ResetConfirm(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    token: LinkToken
    new_password: Password


class EmailChangeRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    new_email: Email
    current_password: Password


class LinkConfirm(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    token: LinkToken


class Accepted(msgspec.Struct, frozen=True):
    status: str
    message: str


RESET_ACCEPTED = Accepted(
    status="accepted",
    message="If an account uses this address, a link to reset its password is on its way.",
)


VERIFY_ACCEPTED = Accepted(
    status="accepted",
    message="If this address has an account waiting for verification, a new link is on its way.",
)


CHANGE_ACCEPTED = Accepted(
    status="accepted",
    message="A confirmation link is on its way to the new address; the current one was told.",
)


class LifecycleController(Controller):
    path = "/v1"
    cache_control = CacheControlHeader(no_store=True)
    tags = ["account lifecycle"]  # noqa: RUF012

    @post(
        "/password/reset",
        status_code=HTTP_202_ACCEPTED,
        guards=[require_json],
        responses=errors(400, 413, 415, 429),
    )
    async def request_reset(
        self, request: Request[Any, Any, Any], data: JSONBody[ResetRequest], runtime: NamedDependency[Runtime]
    ) -> Accepted:
        """Mail a reset link if an account uses the address. The answer is the same either way."""
        await runtime.recovery.request(data.email, request_ip(request, runtime.guard))
        return RESET_ACCEPTED

    @post(
        "/password/reset/confirm",
        status_code=HTTP_204_NO_CONTENT,
        guards=[require_json],
        responses=errors(400, 413, 415, 422),
    )
    async def confirm_reset(self, data: JSONBody[ResetConfirm], runtime: NamedDependency[Runtime]) -> None:
        """Set a new password with the mailed token; every session of the account ends."""
        await runtime.recovery.confirm(data.token, data.new_password)

    @post(
        "/email/verify/resend",
        status_code=HTTP_202_ACCEPTED,
        guards=[require_json],
        responses=errors(400, 413, 415, 429),
    )
    async def resend_verification(
        self, request: Request[Any, Any, Any], data: JSONBody[ResetRequest], runtime: NamedDependency[Runtime]
    ) -> Accepted:
        """Mail a new verification link if the address has an unverified account (same answer either way)."""
        await runtime.verification.resend(data.email, request_ip(request, runtime.guard))
        return VERIFY_ACCEPTED

    @post(
        "/email/verify",
        status_code=HTTP_204_NO_CONTENT,
        guards=[require_json],
        responses=errors(400, 413, 415),
    )
    async def verify_email(self, data: JSONBody[LinkConfirm], runtime: NamedDependency[Runtime]) -> None:
        """Confirm the address with the mailed token."""
        await runtime.verification.confirm(data.token)

    @post(
        "/me/email",
        status_code=HTTP_202_ACCEPTED,
        guards=[require_json],
        responses=errors(400, 401, 413, 415, 422),
    )
    async def request_email_change(
        self,
        data: JSONBody[EmailChangeRequest],
        claims: NamedDependency[AccessClaims],
        runtime: NamedDependency[Runtime],
    ) -> Accepted:
        """Mail a confirmation link to the new address and a notice to the current one."""
        user = await runtime.accounts.profile(claims)
        await runtime.email_change.request(user, data.new_email, data.current_password)
        return CHANGE_ACCEPTED

    @post(
        "/email/change/confirm",
        status_code=HTTP_204_NO_CONTENT,
        guards=[require_json],
        responses=errors(400, 409, 413, 415),
    )
    async def confirm_email_change(
        self, data: JSONBody[LinkConfirm], runtime: NamedDependency[Runtime]
    ) -> None:
        """Apply the change with the token mailed to the new address (409 if it was taken since)."""
        await runtime.email_change.confirm(data.token)
