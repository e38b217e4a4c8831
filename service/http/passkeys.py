"""Passkey endpoints: registration and management under ``/v1/mfa/passkeys`` (Bearer), and
sign-in under ``/v1/login/passkey`` (passwordless, or the second step with an ``mfa_token``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from service import bounded_json
from service.http.accounts import require_json, require_json_if_body
from service.http.openapi import errors
from service.mfa.passkeys import Ceremony, PasskeyView
from service.mfa.service import PasskeyAssertion
from service.runtime import Runtime
from service.sessions import TokenResponse
from service.tokens.access import AccessClaims

__all__ = ["PasskeyController", "passkey_script"]

SCRIPT = Path(__file__).resolve().parents[1] / "static" / "passkey.js"

State = Annotated[str, msgspec.Meta(max_length=2048)]
Code = Annotated[str, msgspec.Meta(max_length=64)]
Name = Annotated[str, msgspec.Meta(max_length=100)]


class Registration(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    state: State
    credential: dict[str, Any]
    """``PublicKeyCredential.toJSON()`` of ``navigator.credentials.create``."""
    name: Name = "Passkey"


class Registered(msgspec.Struct, frozen=True):
    passkey: PasskeyView
    recovery_codes: list[str]
    """Only when the passkey is the account's first factor (shown this once); else empty."""


class AssertionOptionsRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    mfa_token: State | None = None


class Assertion(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    state: State
    credential: dict[str, Any]
    """``PublicKeyCredential.toJSON()`` of ``navigator.credentials.get``."""
    mfa_token: State | None = None


class FreshCode(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    code: Code | None = None
    passkey: PasskeyAssertion | None = None


class PasskeyController(Controller):
    path = "/v1"
    cache_control = CacheControlHeader(no_store=True)
    tags = ["mfa"]  # noqa: RUF012

    @post("/mfa/passkeys/options", status_code=HTTP_200_OK, responses=errors(401))
    async def registration_options(
        self, claims: NamedDependency[AccessClaims], runtime: NamedDependency[Runtime]
    ) -> Ceremony:
        """Options for ``navigator.credentials.create`` (resident key and user verification
        required) and the sealed state to return with the new credential."""
        return await runtime.mfa.passkeys.registration(await runtime.accounts.profile(claims))

    @post(
        "/mfa/passkeys",
        status_code=HTTP_201_CREATED,
        guards=[require_json],
        responses=errors(400, 401, 413, 415),
    )
    async def register(
        self,
        data: JSONBody[Registration],
        claims: NamedDependency[AccessClaims],
        runtime: NamedDependency[Runtime],
    ) -> Registered:
        """Verify and store a new passkey."""
        user = await runtime.accounts.profile(claims)
        view, codes = await runtime.mfa.register_passkey(user, data.state, data.credential, data.name)
        return Registered(view, codes)

    @post("/mfa/passkeys/assertion-options", status_code=HTTP_200_OK, responses=errors(401))
    async def fresh_factor_options(
        self, claims: NamedDependency[AccessClaims], runtime: NamedDependency[Runtime]
    ) -> Ceremony:
        """Options for ``navigator.credentials.get`` limited to the account's passkeys, and the
        state: the assertion proves a fresh second factor (``passkey`` of a removal)."""
        return await runtime.mfa.passkeys.authentication(await runtime.accounts.profile(claims))

    @get("/mfa/passkeys", responses=errors(401))
    async def list_passkeys(
        self, claims: NamedDependency[AccessClaims], runtime: NamedDependency[Runtime]
    ) -> list[PasskeyView]:
        """The account's passkeys: name, device type, backup state, created and last used."""
        return await runtime.mfa.passkeys.list(await runtime.accounts.profile(claims))

    @delete(
        "/mfa/passkeys/{passkey_id:str}",
        status_code=HTTP_204_NO_CONTENT,
        guards=[require_json],
        responses=errors(400, 401, 403, 404, 413, 415, 429),
    )
    async def remove(
        self,
        passkey_id: FromPath[str],
        data: JSONBody[FreshCode],
        claims: NamedDependency[AccessClaims],
        runtime: NamedDependency[Runtime],
    ) -> None:
        """Remove a passkey; needs a current TOTP or recovery code in ``code``, or an assertion
        of any of the account's passkeys (this one too) in ``passkey``."""
        user = await runtime.accounts.profile(claims)
        await runtime.mfa.remove_passkey(user, passkey_id, data.code, data.passkey)

    @post(
        "/login/passkey/options",
        status_code=HTTP_200_OK,
        guards=[require_json_if_body],
        responses=errors(400, 401, 413, 415),
    )
    async def assertion_options(
        self, request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]
    ) -> Ceremony:
        """Options for ``navigator.credentials.get``: with ``mfa_token``, the account's passkeys
        (second step); without, none listed, so the browser offers its discoverable ones."""
        body = await request.body()
        wanted = (
            bounded_json.decode(body, type=AssertionOptionsRequest) if body else AssertionOptionsRequest()
        )
        user = None
        if wanted.mfa_token:
            _, user = await runtime.mfa.ticket_user(wanted.mfa_token)
        return await runtime.mfa.passkeys.authentication(user)

    @post(
        "/login/passkey",
        status_code=HTTP_200_OK,
        guards=[require_json],
        responses=errors(400, 401, 413, 415, 429),
    )
    async def sign_in(
        self, request: Request[Any, Any, Any], data: JSONBody[Assertion], runtime: NamedDependency[Runtime]
    ) -> TokenResponse:
        """Sign in with a passkey: passwordless, or the second step of a password sign-in."""
        user_agent = request.headers.get("user-agent")
        if data.mfa_token:
            return await runtime.mfa.complete_with_passkey(
                data.mfa_token, data.state, data.credential, user_agent
            )
        return await runtime.mfa.passwordless(data.state, data.credential, user_agent)


@get("/static/passkey.js", include_in_schema=False, media_type="text/javascript")
async def passkey_script() -> Response[bytes]:
    """The hosted pages' passkey script (a file, so the CSP can forbid inline script)."""
    return Response(SCRIPT.read_bytes(), media_type="text/javascript", headers={"Cache-Control": "no-cache"})
