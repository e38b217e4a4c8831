"""``/v1/login/mfa`` (the second step of a sign-in) and ``/v1/mfa/…`` (the account's factors)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from service.http.accounts import require_json
from service.http.auth import bearer_claims
from service.http.openapi import errors
from service.mfa.service import PasskeyAssertion, TotpEnrolment
from service.mfa.tickets import Ticket
from service.runtime import Runtime
from service.sessions import TokenResponse
from service.store.base import User
from service.tokens.access import AccessClaims

__all__ = ["MfaController"]

Code = Annotated[str, msgspec.Meta(max_length=64)]
MfaToken = Annotated[str, msgspec.Meta(max_length=2048)]


class SecondFactor(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    mfa_token: MfaToken
    code: Code


class CodeBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    code: Code


class FreshCode(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The fresh second factor of a sensitive change: a TOTP or recovery code, or a passkey
    assertion."""

    code: Code | None = None
    passkey: PasskeyAssertion | None = None


class RecoveryCodes(msgspec.Struct, frozen=True):
    recovery_codes: list[str]


class Confirmed(msgspec.Struct, frozen=True, omit_defaults=True):
    recovery_codes: list[str]
    tokens: TokenResponse | None = None
    """When enrolling during a sign-in (``X-MFA-Token``): the sign-in's tokens."""


async def _enrolling_account(request: Request[Any, Any, Any], runtime: Runtime) -> tuple[User, Ticket | None]:
    """The account a TOTP enrolment is for: a signed-in one (Bearer), or one in the middle of a
    sign-in that must enrol first (``IDP_MFA_REQUIRED``; its ``mfa_token`` in ``X-MFA-Token``)."""
    ticket_text = request.headers.get("x-mfa-token")
    if ticket_text:
        ticket, user = await runtime.mfa.enrolment_ticket_user(ticket_text)
        return user, ticket
    return await runtime.accounts.profile(await bearer_claims(request, runtime)), None


class FactorsView(msgspec.Struct, frozen=True):
    totp: bool
    passkeys: int
    recovery_codes_left: int
    methods: list[str]


class MfaController(Controller):
    path = "/v1"
    cache_control = CacheControlHeader(no_store=True)
    tags = ["mfa"]  # noqa: RUF012

    @post(
        "/login/mfa",
        status_code=HTTP_200_OK,
        guards=[require_json],
        responses=errors(400, 401, 413, 415, 429),
    )
    async def complete_login(
        self, request: Request[Any, Any, Any], data: JSONBody[SecondFactor], runtime: NamedDependency[Runtime]
    ) -> TokenResponse:
        """Second step of a sign-in: the ``mfa_token`` from ``/v1/login`` and a TOTP or recovery code."""
        return await runtime.mfa.complete(data.mfa_token, data.code, request.headers.get("user-agent"))

    @get("/mfa", responses=errors(401))
    async def factors(
        self, claims: NamedDependency[AccessClaims], runtime: NamedDependency[Runtime]
    ) -> FactorsView:
        """The account's second factors."""
        summary = await runtime.mfa.summary(await runtime.accounts.profile(claims))
        return FactorsView(
            summary.totp, summary.passkeys, summary.recovery_codes, runtime.mfa.methods(summary)
        )

    @post("/mfa/totp", status_code=HTTP_201_CREATED, responses=errors(401, 409))
    async def enrol_totp(
        self, request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]
    ) -> TotpEnrolment:
        """Start enrolling an authenticator app: the secret, its ``otpauth://`` URI and a QR code
        (SVG). It is not active until confirmed with a first code. Bearer token, or the
        ``mfa_token`` of a sign-in answered ``mfa_enrollment_required`` in ``X-MFA-Token``."""
        user, _ = await _enrolling_account(request, runtime)
        return await runtime.mfa.enrol_totp(user)

    @post(
        "/mfa/totp/confirm",
        status_code=HTTP_200_OK,
        guards=[require_json],
        responses=errors(400, 401, 409, 413, 415),
    )
    async def confirm_totp(
        self, request: Request[Any, Any, Any], data: JSONBody[CodeBody], runtime: NamedDependency[Runtime]
    ) -> Confirmed:
        """Activate the authenticator with its first code; the first time, the recovery codes
        (shown only in this response). With ``X-MFA-Token``, the sign-in completes too."""
        user, ticket = await _enrolling_account(request, runtime)
        codes = await runtime.mfa.confirm_totp(user, data.code)
        if ticket is None:
            return Confirmed(codes)
        tokens = await runtime.mfa.finish(ticket, user, ("otp",), request.headers.get("user-agent"))
        return Confirmed(codes, tokens)

    @delete(
        "/mfa/totp",
        status_code=HTTP_204_NO_CONTENT,
        guards=[require_json],
        responses=errors(400, 401, 403, 409, 413, 415, 429),
    )
    async def remove_totp(
        self,
        data: JSONBody[FreshCode],
        claims: NamedDependency[AccessClaims],
        runtime: NamedDependency[Runtime],
    ) -> None:
        """Remove the authenticator app; needs a current TOTP or recovery code in ``code``, or a
        passkey assertion in ``passkey``."""
        await runtime.mfa.remove_totp(await runtime.accounts.profile(claims), data.code, data.passkey)

    @post(
        "/mfa/recovery-codes",
        status_code=HTTP_200_OK,
        guards=[require_json],
        responses=errors(400, 401, 403, 413, 415, 429),
    )
    async def regenerate_codes(
        self,
        data: JSONBody[FreshCode],
        claims: NamedDependency[AccessClaims],
        runtime: NamedDependency[Runtime],
    ) -> RecoveryCodes:
        """Ten new recovery codes (the old ones stop working); needs a current TOTP or recovery
        code, or a passkey assertion."""
        user = await runtime.accounts.profile(claims)
        return RecoveryCodes(await runtime.mfa.regenerate_recovery_codes(user, data.code, data.passkey))
