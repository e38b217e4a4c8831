"""Storage for token exchange: external identities and the subject-token replay cache."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from service.store.base import NewUser, User

__all__ = ["IdentityStore", "ReplayCache"]


@runtime_checkable
class IdentityStore(Protocol):
    async def user_for_identity(self, issuer: str, subject: str) -> User | None: ...

    async def get_user_by_email(self, email_normalized: str) -> User | None: ...

    async def provision(self, issuer: str, subject: str, user: NewUser, *, link_existing: bool) -> User:
        """In one transaction: return the user already linked to (issuer, subject) if a racing
        request linked it; else link the account with ``user.email_normalized`` when
        ``link_existing``; else create ``user`` and link it. Raises
        :class:`service.errors.EmailTaken` when the email belongs to an account that may not be
        linked."""
        ...


@runtime_checkable
class ReplayCache(Protocol):
    async def remember(self, fingerprint: str, *, expires_at: float, now: float) -> bool:
        """True the first time a fingerprint is seen (until ``expires_at``), False after."""
        ...

    async def forget(self, fingerprint: str) -> None:
        """Undo :meth:`remember` for an exchange that could not complete (storage unavailable),
        so that the client's retry with the same subject token is not taken for a replay."""
        ...
