"""Storage of second factors: the TOTP secret (sealed), recovery codes (keyed hashes) and
passkeys (public keys), per account.

Every operation that decides whether a secret may be used once is atomic in the backend:
a recovery code is spent by one conditional ``UPDATE`` (two racing uses: one wins), and a
passkey's signature counter moves forward only from the value the verifier read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable
from uuid import UUID

import msgspec

from service.store.base import User

__all__ = ["FactorSummary", "MfaStore", "Passkey", "PasskeyExists", "TotpFactor"]


class PasskeyExists(Exception):
    """A credential id is already registered (to this or another account)."""


class TotpFactor(msgspec.Struct, frozen=True, kw_only=True):
    user_id: UUID
    secret: bytes
    """The sealed secret (see :mod:`service.mfa.secrets`), never the clear one."""
    confirmed: bool
    created_at: float
    last_used_at: float | None


class Passkey(msgspec.Struct, frozen=True, kw_only=True):
    credential_id: bytes
    user_id: UUID
    name: str
    public_key: bytes
    sign_count: int
    transports: tuple[str, ...]
    device_type: str
    """``single_device`` (hardware-bound) or ``multi_device`` (synced)."""
    backed_up: bool
    created_at: float
    last_used_at: float | None


class FactorSummary(msgspec.Struct, frozen=True):
    totp: bool
    """A confirmed TOTP authenticator."""
    passkeys: int
    recovery_codes: int
    """Unused ones."""

    @property
    def any(self) -> bool:
        return self.totp or self.passkeys > 0


@runtime_checkable
class MfaStore(Protocol):
    async def summary(self, user_id: UUID) -> FactorSummary: ...

    async def sign_in_account(self, email_normalized: str) -> tuple[User, FactorSummary] | None:
        """The account a password sign-in names and its factors (as :meth:`summary`), in one
        read: a login needs both, and a round trip less on every sign-in (issue 16)."""
        ...

    async def get_totp(self, user_id: UUID) -> TotpFactor | None: ...

    async def begin_totp(self, user_id: UUID, sealed_secret: bytes, now: float) -> bool:
        """Store an unconfirmed secret, replacing an earlier unconfirmed one. False (nothing
        changes) when the account already has a confirmed TOTP."""
        ...

    async def confirm_totp(self, user_id: UUID, now: float) -> bool:
        """Mark the pending secret confirmed; False if there is none pending."""
        ...

    async def accept_totp_step(self, user_id: UUID, step: int, now: float) -> bool:
        """Record ``step`` as the last accepted TOTP step: True only if it is later than the
        last one (RFC 6238 §5.2: a code of that step or an earlier one is never accepted again).
        One conditional UPDATE, so of two racing acceptances of the same step one wins."""
        ...

    async def delete_totp(self, user_id: UUID) -> bool: ...

    async def replace_recovery_codes(self, user_id: UUID, code_hashes: Sequence[str], now: float) -> None:
        """Delete the account's codes (used or not) and store these, in one transaction."""
        ...

    async def use_recovery_code(self, user_id: UUID, code_hash: str, now: float) -> bool:
        """Spend an unused code: True exactly once per code, whatever the concurrency."""
        ...

    async def add_passkey(self, passkey: Passkey) -> None:
        """Raise :class:`PasskeyExists` if the credential id is registered already."""
        ...

    async def get_passkey(self, credential_id: bytes) -> Passkey | None: ...

    async def list_passkeys(self, user_id: UUID) -> list[Passkey]:
        """Oldest first."""
        ...

    async def record_passkey_use(
        self, credential_id: bytes, *, seen_count: int, new_count: int, backed_up: bool, now: float
    ) -> bool:
        """Store the new counter and backup state if the counter is still ``seen_count``
        (compare-and-set: two concurrent assertions cannot both move it from the same value)."""
        ...

    async def delete_passkey(self, user_id: UUID, credential_id: bytes) -> bool: ...

    async def reset(self, user_id: UUID) -> FactorSummary:
        """Delete every factor and recovery code of the account; return what there was."""
        ...
