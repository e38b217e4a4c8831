"""Accounts: signup, login, profile and the admin operations behind the CLI.

Login spends the same argon2 work whatever happens (unknown email → decoy hash; disabled
account → real hash), and every failure is the same :class:`InvalidCredentials`, so status,
body and timing do not reveal whether an email is registered.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence

from service.abuse import AbuseGuard
from service.audit import audit
from service.clock import Clock
from service.emails import normalize_email
from service.errors import EmailTaken, InvalidCredentials, InvalidEmail, InvalidGrant, InvalidToken, NotFound
from service.lifecycle.verification import EmailVerification
from service.mfa.errors import MfaRequired
from service.mfa.service import Mfa
from service.passwords import Match, PasswordService, check_password_policy
from service.sessions import Sessions, TokenResponse
from service.store.base import NewUser, StorageUnavailable, User, UserStore
from service.store.mfa import FactorSummary
from service.tokens.access import AccessClaims

__all__ = ["Accounts"]


class Accounts:
    def __init__(
        self,
        *,
        users: UserStore,
        passwords: PasswordService,
        sessions: Sessions,
        guard: AbuseGuard,
        clock: Clock,
        mfa: Mfa | None = None,
        verification: EmailVerification | None = None,
    ) -> None:
        self._verification = verification
        self._users = users
        self._passwords = passwords
        self._sessions = sessions
        self._guard = guard
        self._clock = clock
        self._mfa = mfa

    async def create_user(
        self,
        email: str,
        password: str,
        name: str | None = None,
        roles: Sequence[str] = (),
        *,
        register: Callable[[NewUser], Awaitable[User]] | None = None,
    ) -> User:
        """Validate and store a new account; raises the specific 4xx error on bad input."""
        typed, normalized = normalize_email(email)
        cleaned = check_password_policy(password)
        if await self._users.get_user_by_email(normalized) is not None:
            raise EmailTaken  # cheap early answer; the unique index still decides races
        password_hash = await self._passwords.hash(cleaned)
        return await (register or self._users.create_user)(
            NewUser(
                id=uuid.uuid4(),
                email=typed,
                email_normalized=normalized,
                password_hash=password_hash,
                name=(name or "").strip() or None,
                roles=tuple(roles),
                created_at=self._clock(),
            )
        )

    async def signup(
        self,
        email: str,
        password: str,
        name: str | None,
        user_agent: str | None,
        ip: str,
        *,
        origin: str = "signup",
    ) -> tuple[User, TokenResponse | None]:
        """A new account, mailed its verification link; signed in (a session of ``origin``:
        ``signup`` for the JSON API, ``browser`` for the hosted sign-up page) unless
        verification is required."""
        await self._guard.before_signup(ip)
        verification = self._verification
        register = verification.register if verification is not None else None
        user = await self.create_user(email, password, name, register=register)
        if verification is not None and verification.required:
            audit("signup", user_id=user.id)
            return user, None
        try:
            tokens = await self._sessions.start(user, origin=origin, user_agent=user_agent, amr=("pwd",))
        except StorageUnavailable:
            # Nothing half-written: without a session the caller retries, and must not meet 409.
            await self._users.delete_user(user.id)
            raise
        audit("signup", user_id=user.id)
        return user, tokens

    async def login(
        self,
        email: str,
        password: str,
        user_agent: str | None,
        ip: str,
        *,
        origin: str = "password",
        require_mfa: bool = False,
    ) -> tuple[User, TokenResponse]:
        """``origin``: ``password`` for the JSON API, ``browser`` for the hosted sign-in page;
        both under the same rate limits, progressive delay and argon2 load shedding (checked
        first: a shed attempt costs no limiter decision and no account read).
        ``require_mfa``: the client asks for a second factor even when the account has none."""
        self._passwords.refuse_if_busy()
        await self._guard.before_login(ip, email)
        user, factors = await self._sign_in_account(email)
        match = await self._verify(user, password)
        failure = self._failure(user, match)
        if failure is not None:
            audit("login", outcome=failure, user_id=user.id if user else None, ip=ip)
            await self._guard.login_failed(email)
            raise InvalidCredentials
        assert user is not None
        assert user.password_hash is not None
        if self._verification is not None:
            self._verification.check_sign_in(user)
        if match is Match.LEGACY or self._passwords.needs_rehash(user.password_hash):
            new_hash = await self._passwords.hash(password)
            await self._users.set_password_hash(user.id, new_hash, self._clock())
        if self._mfa is not None:
            try:
                await self._mfa.gate(user, ("pwd",), required=require_mfa, summary=factors)
            except MfaRequired as required:
                audit("login", outcome=required.error, user_id=user.id, ip=ip)
                raise
        try:
            tokens = await self._sessions.start(user, origin=origin, user_agent=user_agent, amr=("pwd",))
        except InvalidGrant:  # disabled while this login was under way
            audit("login", outcome="account_disabled", user_id=user.id, ip=ip)
            raise InvalidCredentials from None
        audit("login", user_id=user.id, ip=ip)
        return user, tokens

    async def _verify(self, user: User | None, password: str) -> Match:
        """The same argon2 work whether or not the account exists (a decoy hash otherwise)."""
        if user is None or user.password_hash is None:
            await self._passwords.verify_decoy(password)
            return Match.NONE
        return await self._passwords.verify(user.password_hash, password)

    @staticmethod
    def _failure(user: User | None, match: Match) -> str | None:
        """Why a login fails (None if it succeeds)."""
        if user is None or user.password_hash is None:
            return "unknown_account"
        if match is Match.NONE:
            return "wrong_password"
        return "account_disabled" if user.disabled else None

    async def change_password(self, claims: AccessClaims, current: str, new: str) -> None:
        """Verify the current password, store the new one, end every other session."""
        user = await self.profile(claims)
        stored = user.password_hash
        if stored is None or await self._passwords.verify(stored, current) is Match.NONE:
            audit("password_change", outcome="wrong_password", user_id=user.id)
            raise InvalidCredentials("The current password is incorrect.")
        new_hash = await self._passwords.hash(check_password_policy(new))
        await self._users.set_password_hash(user.id, new_hash, self._clock())
        await self._sessions.end_all(user.id, "password_change", keep=claims.sid)

    async def profile(self, claims: AccessClaims) -> User:
        """The account behind a verified token; gone or disabled accounts make the token invalid."""
        try:
            user_id = uuid.UUID(claims.sub)
        except ValueError as exc:
            raise InvalidToken from exc
        user = await self._users.get_user(user_id)
        if user is None or user.disabled:
            raise InvalidToken
        return user

    async def set_disabled(self, email: str, disabled: bool) -> User:
        return await self.set_user_disabled(await self._require(email), disabled)

    async def set_user_disabled(self, user: User, disabled: bool) -> User:
        """Disabling ends every session of the account."""
        updated = await self._users.set_disabled(user.id, disabled, self._clock())
        if updated is None:
            raise NotFound("No account with this email address.")
        if disabled:
            await self._sessions.end_all(user.id, "user_disabled")
        return updated

    async def set_roles(self, email: str, roles: Sequence[str]) -> User:
        return await self.set_user_roles(await self._require(email), roles)

    async def set_user_roles(self, user: User, roles: Sequence[str]) -> User:
        """Every session's claims snapshot follows, so refreshed tokens carry the new roles."""
        updated = await self._users.set_roles(user.id, sorted(set(roles)), self._clock())
        if updated is None:
            raise NotFound("No account with this email address.")
        await self._sessions.update_claims(updated)
        return updated

    async def get_by_email(self, email: str) -> User:
        return await self._require(email)

    async def _sign_in_account(self, email: str) -> tuple[User | None, FactorSummary | None]:
        """The account a sign-in names and, with MFA on, its second factors, in one read."""
        if self._mfa is None:
            return await self._find_by_email(email), None
        try:
            _, normalized = normalize_email(email)
        except InvalidEmail:
            return None, None
        found = await self._mfa.sign_in_account(normalized)
        return (None, None) if found is None else found

    async def _find_by_email(self, email: str) -> User | None:
        try:
            _, normalized = normalize_email(email)
        except InvalidEmail:
            return None
        return await self._users.get_user_by_email(normalized)

    async def _require(self, email: str) -> User:
        user = await self._find_by_email(email)
        if user is None:
            raise NotFound("No account with this email address.")
        return user
