"""Accounts: signup, login, profile and the admin operations behind the CLI.

Login spends one argon2 verification whatever happens (unknown email → decoy hash; disabled
account → real hash), and every failure is the same :class:`InvalidCredentials`, so status,
body and timing do not reveal whether an email is registered.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import msgspec

from service.clock import Clock
from service.emails import normalize_email
from service.errors import EmailTaken, InvalidCredentials, InvalidEmail, InvalidToken, NotFound
from service.passwords import PasswordService, check_password_policy, normalize_password
from service.store.base import NewUser, User, UserStore
from service.tokens.access import AccessClaims, AccessTokens

__all__ = ["Accounts", "TokenResponse"]

MAX_NAME_LENGTH = 200


class TokenResponse(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """RFC 6749 §5.1 token response; the refresh fields join when sessions exist."""

    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str | None = None
    scope: str | None = None


class Accounts:
    def __init__(
        self,
        *,
        users: UserStore,
        passwords: PasswordService,
        access_tokens: AccessTokens,
        clock: Clock,
    ) -> None:
        self._users = users
        self._passwords = passwords
        self._access_tokens = access_tokens
        self._clock = clock

    async def create_user(
        self, email: str, password: str, name: str | None = None, roles: Sequence[str] = ()
    ) -> User:
        """Validate and store a new account; raises the specific 4xx error on bad input."""
        typed, normalized = normalize_email(email)
        cleaned = check_password_policy(password)
        if await self._users.get_user_by_email(normalized) is not None:
            raise EmailTaken  # cheap early answer; the unique index still decides races
        password_hash = await self._passwords.hash(cleaned)
        return await self._users.create_user(
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

    async def signup(self, email: str, password: str, name: str | None) -> tuple[User, TokenResponse]:
        user = await self.create_user(email, password, name)
        return user, self.issue_tokens(user)

    async def login(self, email: str, password: str) -> tuple[User, TokenResponse]:
        user = await self._find_by_email(email)
        if user is None or user.password_hash is None:
            await self._passwords.verify_decoy(password)
            raise InvalidCredentials
        if not await self._passwords.verify(user.password_hash, password) or user.disabled:
            raise InvalidCredentials
        if self._passwords.needs_rehash(user.password_hash):
            new_hash = await self._passwords.hash(normalize_password(password))
            await self._users.set_password_hash(user.id, new_hash, self._clock())
        return user, self.issue_tokens(user)

    def issue_tokens(self, user: User) -> TokenResponse:
        issued = self._access_tokens.issue(subject=str(user.id), email=user.email, roles=user.roles)
        return TokenResponse(access_token=issued.token, token_type="Bearer", expires_in=issued.expires_in)  # noqa: S106

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
        user = await self._require(email)
        updated = await self._users.set_disabled(user.id, disabled, self._clock())
        if updated is None:
            raise NotFound("No account with this email address.")
        return updated

    async def set_roles(self, email: str, roles: Sequence[str]) -> User:
        user = await self._require(email)
        updated = await self._users.set_roles(user.id, sorted(set(roles)), self._clock())
        if updated is None:
            raise NotFound("No account with this email address.")
        return updated

    async def get_by_email(self, email: str) -> User:
        return await self._require(email)

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
