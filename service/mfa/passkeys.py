"""Passkeys (WebAuthn Level 2/3) with py_webauthn: registration, and assertions as a second
factor or as a passwordless first factor (discoverable credentials).

Every ceremony requires user verification; the RP id and the accepted origins come from the
settings. A ceremony's challenge travels sealed in a ticket (see :mod:`service.mfa.tickets`)
that names the account it was issued for and is spent on first use, so a challenge is
single-use, short-lived and cannot be answered for another account. The signature counter
must grow when the authenticator keeps one (a regression suggests a cloned authenticator and
the assertion is refused); it is stored by compare-and-set.
"""

from __future__ import annotations

import binascii
import secrets
import uuid
from typing import Any

import msgspec
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import options_to_json
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from service.audit import audit
from service.clock import Clock
from service.mfa.errors import InvalidPasskey
from service.mfa.settings import MfaSettings
from service.mfa.tickets import Ticket, Tickets, b64url_decode, b64url_encode
from service.store.base import User, UserStore
from service.store.mfa import MfaStore, Passkey, PasskeyExists

__all__ = ["Ceremony", "PasskeyView", "Passkeys", "amr_method"]

REGISTER = "webauthn-register"
AUTHENTICATE = "webauthn-authenticate"
_TRANSPORTS = {transport.value for transport in AuthenticatorTransport}


class Ceremony(msgspec.Struct, frozen=True):
    """What the browser needs: the options for ``navigator.credentials`` (JSON, base64url
    members) and the sealed state to send back with the response."""

    options: dict[str, Any]
    state: str


class PasskeyView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    device_type: str
    backed_up: bool
    created_at: float
    last_used_at: float | None

    @classmethod
    def of(cls, passkey: Passkey) -> PasskeyView:
        return cls(
            id=b64url_encode(passkey.credential_id),
            name=passkey.name,
            device_type=passkey.device_type,
            backed_up=passkey.backed_up,
            created_at=passkey.created_at,
            last_used_at=passkey.last_used_at,
        )


def amr_method(passkey: Passkey) -> str:
    """RFC 8176: ``hwk`` for a device-bound key, ``swk`` for a synced (backup-eligible) one."""
    return "hwk" if passkey.device_type == "single_device" else "swk"


def _raw_id(credential: dict[str, Any]) -> bytes:
    raw = credential.get("rawId") or credential.get("id")
    if not isinstance(raw, str) or len(raw) > 1400:
        raise InvalidPasskey
    try:
        return b64url_decode(raw)
    except (ValueError, binascii.Error) as exc:
        raise InvalidPasskey from exc


class Passkeys:
    def __init__(
        self, *, store: MfaStore, users: UserStore, tickets: Tickets, settings: MfaSettings, clock: Clock
    ) -> None:
        self._store = store
        self._users = users
        self._tickets = tickets
        self._settings = settings
        self._clock = clock

    def _timeout_ms(self) -> int:
        return self._tickets.ttl * 1000

    async def registration(self, user: User) -> Ceremony:
        existing = await self._store.list_passkeys(user.id)
        options = generate_registration_options(
            rp_id=self._settings.rp_id,
            rp_name=self._settings.rp_name,
            user_name=user.email,
            user_id=user.id.bytes,
            user_display_name=user.name or user.email,
            challenge=secrets.token_bytes(32),
            timeout=self._timeout_ms(),
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=[PublicKeyCredentialDescriptor(id=p.credential_id) for p in existing],
        )
        state, _ = self._tickets.issue(REGISTER, str(user.id), challenge=options.challenge)
        return Ceremony(msgspec.json.decode(options_to_json(options)), state)

    async def register(self, user: User, state: str, credential: dict[str, Any], name: str) -> Passkey:
        ticket = await self._spend(state, REGISTER, user)
        try:
            verified = verify_registration_response(
                credential=credential,
                expected_challenge=ticket.challenge,
                expected_rp_id=self._settings.rp_id,
                expected_origin=list(self._settings.origins),
                require_user_verification=True,
            )
        except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
            audit("passkey_registration", outcome="invalid_response", user_id=user.id)
            raise InvalidPasskey from exc
        response = credential.get("response")
        transports = response.get("transports") if isinstance(response, dict) else None
        passkey = Passkey(
            credential_id=verified.credential_id,
            user_id=user.id,
            name=name.strip()[:100] or "Passkey",
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            transports=tuple(t for t in transports or () if t in _TRANSPORTS),
            device_type=verified.credential_device_type.value,
            backed_up=verified.credential_backed_up,
            created_at=self._clock(),
            last_used_at=None,
        )
        try:
            await self._store.add_passkey(passkey)
        except PasskeyExists:
            audit("passkey_registration", outcome="already_registered", user_id=user.id)
            raise InvalidPasskey("This passkey is already registered.") from None
        audit("passkey_registration", user_id=user.id, device_type=passkey.device_type)
        return passkey

    async def authentication(self, user: User | None) -> Ceremony:
        """Options for an assertion: the account's passkeys (second factor), or none at all so
        the browser offers its discoverable ones (passwordless, conditional UI)."""
        allowed = await self._store.list_passkeys(user.id) if user is not None else []
        options = generate_authentication_options(
            rp_id=self._settings.rp_id,
            challenge=secrets.token_bytes(32),
            timeout=self._timeout_ms(),
            allow_credentials=[
                PublicKeyCredentialDescriptor(id=p.credential_id, transports=None) for p in allowed
            ],
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        state, _ = self._tickets.issue(
            AUTHENTICATE, None if user is None else str(user.id), challenge=options.challenge
        )
        return Ceremony(msgspec.json.decode(options_to_json(options)), state)

    async def authenticate(
        self, state: str, credential: dict[str, Any], expected: User | None
    ) -> tuple[User, Passkey]:
        """Verify an assertion; ``expected``: the account signing in (second factor), None for
        passwordless (the credential names the account)."""
        ticket = await self._spend(state, AUTHENTICATE, expected)
        passkey = await self._store.get_passkey(_raw_id(credential))
        if passkey is None:
            audit("passkey_assertion", outcome="unknown_credential")
            raise InvalidPasskey
        owner = str(passkey.user_id)
        if (ticket.user_id is not None and ticket.user_id != owner) or (
            expected is not None and expected.id != passkey.user_id
        ):
            audit("passkey_assertion", outcome="other_account", user_id=passkey.user_id)
            raise InvalidPasskey
        self._check_user_handle(credential, passkey)
        try:
            verified = verify_authentication_response(
                credential=credential,
                expected_challenge=ticket.challenge,
                expected_rp_id=self._settings.rp_id,
                expected_origin=list(self._settings.origins),
                credential_public_key=passkey.public_key,
                credential_current_sign_count=passkey.sign_count,
                require_user_verification=True,
            )
        except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
            outcome = "sign_count_regression" if "sign count" in str(exc) else "invalid_response"
            audit("passkey_assertion", outcome=outcome, user_id=passkey.user_id)
            raise InvalidPasskey from exc
        if not await self._store.record_passkey_use(
            passkey.credential_id,
            seen_count=passkey.sign_count,
            new_count=verified.new_sign_count,
            backed_up=verified.credential_backed_up,
            now=self._clock(),
        ):
            audit("passkey_assertion", outcome="concurrent_use", user_id=passkey.user_id)
            raise InvalidPasskey
        user = await self._users.get_user(passkey.user_id)
        if user is None or user.disabled:
            raise InvalidPasskey
        audit("passkey_assertion", user_id=user.id)
        return user, passkey

    @staticmethod
    def _check_user_handle(credential: dict[str, Any], passkey: Passkey) -> None:
        """A discoverable credential returns the user handle we registered: it must match."""
        response = credential.get("response")
        handle = response.get("userHandle") if isinstance(response, dict) else None
        if handle is None:
            return
        try:
            matches = isinstance(handle, str) and uuid.UUID(bytes=b64url_decode(handle)) == passkey.user_id
        except (ValueError, binascii.Error):
            matches = False
        if not matches:
            audit("passkey_assertion", outcome="user_handle_mismatch", user_id=passkey.user_id)
            raise InvalidPasskey

    async def _spend(self, state: str, purpose: str, user: User | None) -> Ticket:
        ticket = self._tickets.read(state, purpose)
        if ticket is None or (user is not None and ticket.user_id not in (None, str(user.id))):
            raise InvalidPasskey("The challenge is invalid, expired or for another account.")
        if not await self._tickets.spend(ticket):
            raise InvalidPasskey("The challenge was already used.")
        return ticket

    async def list(self, user: User) -> list[PasskeyView]:
        return [PasskeyView.of(p) for p in await self._store.list_passkeys(user.id)]

    async def remove(self, user: User, passkey_id: str) -> bool:
        try:
            credential_id = b64url_decode(passkey_id)
        except (ValueError, binascii.Error):
            return False
        removed = await self._store.delete_passkey(user.id, credential_id)
        if removed:
            audit("passkey_removed", user_id=user.id)
        return removed
