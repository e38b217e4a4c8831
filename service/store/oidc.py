"""Storage for the OpenID Connect provider: authorization codes and remembered consents.

A code is stored under the SHA-256 of its value with an opaque record. Redeeming is atomic:
the first redemption marks the code with the session (family) it is about to open and gets the
record; any later one gets that family id back, so the caller can revoke what the code issued
(RFC 6749 §4.1.2). Codes stay readable until ``purge_at`` (well past their expiry) for that.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable
from uuid import UUID

import msgspec

__all__ = ["CodeStore", "ConsentStore", "OidcStore", "Redemption"]


class Redemption(msgspec.Struct, frozen=True):
    record: bytes
    reused_by: str | None
    """None the first time; afterwards the family the first redemption opened."""


@runtime_checkable
class CodeStore(Protocol):
    async def save_code(self, code_hash: str, record: bytes, *, expires_at: float, purge_at: float) -> None:
        """Store a new code (and drop codes whose ``purge_at`` passed)."""
        ...

    async def redeem_code(self, code_hash: str, family_id: str) -> Redemption | None:
        """Atomically: unknown → None; first call → the record, marked with ``family_id``;
        later calls → the record with the first call's family id."""
        ...


@runtime_checkable
class ConsentStore(Protocol):
    async def granted_scopes(self, user_id: UUID, client_id: str) -> frozenset[str]: ...

    async def grant_scopes(self, user_id: UUID, client_id: str, scopes: frozenset[str], now: float) -> None:
        """Remember these scopes in addition to those already granted."""
        ...

    async def revoke_consent(self, user_id: UUID, client_id: str) -> None: ...


@runtime_checkable
class OidcStore(CodeStore, ConsentStore, Protocol):
    """Both, as each SQL backend implements them."""
