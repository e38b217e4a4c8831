"""The second factor of a sign-in, and the account's own management of its factors.

A password sign-in of an account with a factor ends in :class:`MfaRequired` carrying a ticket
(``mfa_token``: the account, ``amr=["pwd"]``, five minutes, single-use); ``complete`` takes the
ticket and a TOTP or recovery code, spends both, and opens the session with
``amr=["pwd", "otp", "mfa"]``. Failed codes spend the account's budget
(``IDP_RATELIMIT_MFA_ACCOUNT``); once it is spent every attempt is 429 until it refills.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec

from service.abuse import RateLimited
from service.audit import audit
from service.clock import Clock
from service.errors import NotFound
from service.keys.secrets import SealBroken, SecretBox
from service.limits import RateLimiter
from service.mfa import recovery, totp
from service.mfa.errors import (
    FactorExists,
    FreshFactorRequired,
    InvalidCode,
    InvalidMfaToken,
    InvalidPasskey,
    MfaEnrollmentRequired,
    MfaRequired,
    NothingToConfirm,
)
from service.mfa.notices import notice
from service.mfa.passkeys import Passkeys, PasskeyView, amr_method
from service.mfa.settings import MfaSettings
from service.mfa.tickets import Ticket, Tickets
from service.sessions import Sessions, TokenResponse
from service.store.base import User, UserStore
from service.store.mail import MailOutbox
from service.store.mfa import FactorSummary, MfaStore

__all__ = ["SIGN_IN", "Mfa", "PasskeyAssertion", "TotpEnrolment"]

SIGN_IN = "signin"


class PasskeyAssertion(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A passkey assertion proving a fresh second factor: the ``state`` of
    ``POST /v1/mfa/passkeys/assertion-options`` and ``PublicKeyCredential.toJSON()``."""

    state: Annotated[str, msgspec.Meta(max_length=2048)]
    credential: dict[str, Any]


class TotpEnrolment(msgspec.Struct, frozen=True):
    secret: str
    otpauth_uri: str
    qr_svg: str


class Mfa:
    def __init__(
        self,
        *,
        store: MfaStore,
        users: UserStore,
        box: SecretBox,
        tickets: Tickets,
        limiter: RateLimiter,
        outbox: MailOutbox,
        sessions: Sessions,
        settings: MfaSettings,
        public_url: str,
        clock: Clock,
    ) -> None:
        self.passkeys = Passkeys(store=store, users=users, tickets=tickets, settings=settings, clock=clock)
        self.store = store
        self._users = users
        self._box = box
        self.tickets = tickets
        self._limiter = limiter
        self._outbox = outbox
        self._sessions = sessions
        self._settings = settings
        self._public_url = public_url
        self._clock = clock

    # -- the sign-in -------------------------------------------------------------------------

    @staticmethod
    def methods(summary: FactorSummary) -> list[str]:
        methods = ["totp"] if summary.totp else []
        if summary.passkeys:
            methods.append("passkey")
        if summary.recovery_codes:
            methods.append("recovery_code")
        return methods

    async def gate(
        self,
        user: User,
        amr: tuple[str, ...],
        *,
        required: bool = False,
        summary: FactorSummary | None = None,
    ) -> None:
        """After a first factor: raise :class:`MfaRequired` (with a ticket) if the account has a
        second factor, :class:`MfaEnrollmentRequired` if it has none and MFA is required (by
        ``IDP_MFA_REQUIRED``, or ``required``: the client's ``require_mfa``). ``summary``: the
        account's factors if the caller read them already (a login reads them during the hash)."""
        if summary is None:
            summary = await self.store.summary(user.id)
        if not summary.any and not (required or self._settings.required):
            return
        token, _ = self.tickets.issue(SIGN_IN, str(user.id), amr=amr)
        ttl = self.tickets.ttl
        if not summary.any:
            raise MfaEnrollmentRequired(token, ["totp", "passkey"], ttl)
        raise MfaRequired(token, self.methods(summary), ttl)

    async def ticket_user(self, token: str) -> tuple[Ticket, User]:
        """The live ticket of a sign-in under way and its (enabled) account."""
        ticket = self.tickets.read(token, SIGN_IN)
        if ticket is None or ticket.user_id is None:
            raise InvalidMfaToken
        user = await self._users.get_user(uuid.UUID(ticket.user_id))
        if user is None or user.disabled:
            raise InvalidMfaToken
        return ticket, user

    async def enrolment_ticket_user(self, token: str) -> tuple[Ticket, User]:
        """A sign-in ticket used to enrol a first factor: only while the account has none (with a
        factor, enrolling through a password-only ticket would skip the second factor)."""
        ticket, user = await self.ticket_user(token)
        if (await self.store.summary(user.id)).any:
            raise InvalidMfaToken("This account has a second factor: complete the sign-in with it.")
        return ticket, user

    async def complete(
        self, token: str, code: str, user_agent: str | None, *, origin: str = "mfa"
    ) -> TokenResponse:
        """Second step of a sign-in with a TOTP or recovery code; ``origin``: ``browser`` for
        the hosted sign-in (the session becomes the browser's)."""
        ticket, user = await self.ticket_user(token)
        method = await self.check_code(user, code)
        return await self.finish(ticket, user, (method,), user_agent, origin=origin)

    async def complete_with_passkey(
        self,
        token: str,
        state: str,
        credential: dict[str, Any],
        user_agent: str | None,
        *,
        origin: str = "mfa",
    ) -> TokenResponse:
        """Second step of a sign-in with a passkey assertion for the ticket's account."""
        ticket, user = await self.ticket_user(token)
        await self._within_budget(user)
        try:
            _, passkey = await self.passkeys.authenticate(state, credential, user)
        except InvalidPasskey:
            await self._limiter.hit(f"mfa|{user.id}", self._settings.attempts, self._clock())
            raise
        return await self.finish(ticket, user, (amr_method(passkey),), user_agent, origin=origin)

    async def passwordless(
        self, state: str, credential: dict[str, Any], user_agent: str | None, *, origin: str = "passkey"
    ) -> TokenResponse:
        """A discoverable passkey as the whole sign-in: possession of the key plus the user
        verification the authenticator performed (PIN or biometrics) make two factors."""
        user, passkey = await self.passkeys.authenticate(state, credential, None)
        amr = (amr_method(passkey), "mfa")
        tokens = await self._sessions.start(user, origin=origin, user_agent=user_agent, amr=amr)
        audit("login", outcome="success", user_id=user.id, amr=" ".join(amr))
        return tokens

    async def register_passkey(
        self, user: User, state: str, credential: dict[str, Any], name: str
    ) -> tuple[PasskeyView, list[str]]:
        """Register a passkey; the recovery codes when it is the account's first factor."""
        passkey = await self.passkeys.register(user, state, credential, name)
        return PasskeyView.of(passkey), await self.first_recovery_codes(user)

    async def remove_passkey(
        self, user: User, passkey_id: str, code: str | None, assertion: PasskeyAssertion | None = None
    ) -> None:
        await self.require_fresh_factor(user, code, assertion)
        if not await self.passkeys.remove(user, passkey_id):
            raise NotFound("No such passkey.")

    async def finish(
        self,
        ticket: Ticket,
        user: User,
        methods: tuple[str, ...],
        user_agent: str | None,
        *,
        origin: str = "mfa",
    ) -> TokenResponse:
        """Spend the ticket and open the session; ``methods``: the second factor's amr."""
        if not await self.tickets.spend(ticket):
            raise InvalidMfaToken
        amr = tuple(dict.fromkeys((*ticket.amr, *methods, "mfa")))
        tokens = await self._sessions.start(user, origin=origin, user_agent=user_agent, amr=amr)
        audit("login", outcome="success", user_id=user.id, amr=" ".join(amr))
        return tokens

    async def check_code(self, user: User, code: str) -> str:
        """Accept a current TOTP code or an unused recovery code (spending it); the amr method.
        Refused attempts count against the account's budget."""
        await self._within_budget(user)
        if await self._totp_accepts(user, code) or await self._recovery_accepts(user, code):
            return "otp"
        await self._limiter.hit(f"mfa|{user.id}", self._settings.attempts, self._clock())
        audit("mfa_verify", outcome="invalid_code", user_id=user.id)
        raise InvalidCode

    async def _within_budget(self, user: User) -> None:
        rule = self._settings.attempts
        budget = await self._limiter.peek(f"mfa|{user.id}", rule, self._clock())
        if not budget.allowed:
            audit("rate_limited", outcome=rule.name, user_id=user.id)
            raise RateLimited(rule, budget)

    async def _totp_accepts(self, user: User, code: str) -> bool:
        factor = await self.store.get_totp(user.id)
        if factor is None or not factor.confirmed:
            return False
        return await self._accept_totp(user, self._open_secret(user, factor.secret), code)

    async def _accept_totp(self, user: User, secret: str, code: str) -> bool:
        now = self._clock()
        step = totp.matching_step(secret, code, now)
        if step is None:
            return False
        # RFC 6238 §5.2: once step N was accepted no code of a step <= N is, on any instance
        # (one conditional UPDATE in the shared database; this replaced a Redis replay cache).
        if not await self.store.accept_totp_step(user.id, step, now):
            audit("mfa_verify", outcome="totp_replayed", user_id=user.id)
            return False
        audit("mfa_verify", outcome="totp", user_id=user.id)
        return True

    async def _recovery_accepts(self, user: User, code: str) -> bool:
        normalized = recovery.normalize_code(code)
        if normalized is None:
            return False
        now = self._clock()
        digest = recovery.code_hash(self._box, user.id, normalized)
        if not await self.store.use_recovery_code(user.id, digest, now):
            return False
        left = (await self.store.summary(user.id)).recovery_codes
        audit("mfa_verify", outcome="recovery_code", user_id=user.id, codes_left=left)
        await self._outbox.enqueue(
            notice("mfa_recovery_code_used", user, public_url=self._public_url, now=now, left=left)
        )
        return True

    def _open_secret(self, user: User, sealed: bytes) -> str:
        try:
            return self._box.unseal("totp-secret", sealed, user.id.bytes).decode("ascii")
        except SealBroken:
            # Another secrets key than the one that sealed it: the factor cannot be used.
            audit("mfa_verify", outcome="totp_secret_unreadable", user_id=user.id)
            raise InvalidCode from None

    # -- the account's own factors -------------------------------------------------------------

    async def enrol_totp(self, user: User) -> TotpEnrolment:
        secret = totp.new_secret()
        sealed = self._box.seal("totp-secret", secret.encode("ascii"), user.id.bytes)
        if not await self.store.begin_totp(user.id, sealed, self._clock()):
            raise FactorExists("An authenticator app is already enrolled; remove it first.")
        uri = totp.provisioning(secret, user.email, self._settings.totp_issuer)
        audit("mfa_totp_enrolment", outcome="started", user_id=user.id)
        return TotpEnrolment(secret, uri, totp.qr_svg(uri))

    async def confirm_totp(self, user: User, code: str) -> list[str]:
        """Activate the pending secret with its first code; the recovery codes when the account
        had none (shown this once), else an empty list."""
        factor = await self.store.get_totp(user.id)
        if factor is None or factor.confirmed:
            raise NothingToConfirm
        if not await self._accept_totp(user, self._open_secret(user, factor.secret), code):
            audit("mfa_totp_enrolment", outcome="invalid_code", user_id=user.id)
            raise InvalidCode
        if not await self.store.confirm_totp(user.id, self._clock()):
            raise NothingToConfirm
        audit("mfa_totp_enrolment", outcome="confirmed", user_id=user.id)
        return await self.first_recovery_codes(user)

    async def first_recovery_codes(self, user: User) -> list[str]:
        if (await self.store.summary(user.id)).recovery_codes:
            return []
        return await self._new_recovery_codes(user)

    async def _new_recovery_codes(self, user: User) -> list[str]:
        codes = recovery.new_codes()
        hashes = [
            recovery.code_hash(self._box, user.id, recovery.normalize_code(code) or "") for code in codes
        ]
        await self.store.replace_recovery_codes(user.id, hashes, self._clock())
        audit("mfa_recovery_codes", outcome="generated", user_id=user.id)
        return codes

    async def require_fresh_factor(
        self, user: User, code: str | None, assertion: PasskeyAssertion | None = None
    ) -> None:
        """Sensitive changes need a second factor proven in the request itself: a TOTP or
        recovery code, or a passkey assertion (``state`` + ``credential``) of this account."""
        if assertion is not None:
            await self._within_budget(user)
            try:
                await self.passkeys.authenticate(assertion.state, assertion.credential, user)
            except InvalidPasskey:
                await self._limiter.hit(f"mfa|{user.id}", self._settings.attempts, self._clock())
                raise
            return
        if not code:
            raise FreshFactorRequired
        await self.check_code(user, code)

    async def regenerate_recovery_codes(
        self, user: User, code: str | None, assertion: PasskeyAssertion | None = None
    ) -> list[str]:
        await self.require_fresh_factor(user, code, assertion)
        return await self._new_recovery_codes(user)

    async def remove_totp(
        self, user: User, code: str | None, assertion: PasskeyAssertion | None = None
    ) -> None:
        await self.require_fresh_factor(user, code, assertion)
        if not await self.store.delete_totp(user.id):
            raise NothingToConfirm("No authenticator app is enrolled.")
        audit("mfa_totp_removed", user_id=user.id)
        await self._outbox.enqueue(
            notice("mfa_totp_removed", user, public_url=self._public_url, now=self._clock())
        )

    async def summary(self, user: User) -> FactorSummary:
        """Confirmed factors only: a pending TOTP does not count."""
        return await self.store.summary(user.id)

    async def sign_in_account(self, email_normalized: str) -> tuple[User, FactorSummary] | None:
        """The account a password sign-in names and its factors (as :meth:`summary`), in one
        read: what :meth:`gate` takes as ``summary``."""
        return await self.store.sign_in_account(email_normalized)

    async def reset(self, user: User, actor: str) -> FactorSummary:
        """The admin escape hatch: every factor and code removed, audited, the owner told."""
        before = await self.store.reset(user.id)
        audit("mfa_reset", user_id=user.id, actor=actor, totp=before.totp, passkeys=before.passkeys)
        await self._outbox.enqueue(notice("mfa_reset", user, public_url=self._public_url, now=self._clock()))
        return before
