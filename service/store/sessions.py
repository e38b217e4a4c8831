"""Refresh-token families (sessions) and OAuth clients: records and storage Protocols.

A family is one signed-in session. It holds the hash of its one current refresh token and
remembers the hashes of the tokens it already rotated, each with the time of rotation and the
successor response sealed under a key derived from that (used) token. Presenting:

- the current token → ``rotated``: the successor becomes current;
- a used token within the grace window → ``grace``: the sealed successor is returned, so
  concurrent refreshes (two tabs, a lost response) all get the same pair;
- a used token after the window → ``reuse``: the family is deleted at once;
- anything else, or an expired family → ``invalid``.

A family also keeps a snapshot of the account claims its access tokens carry (email and
roles), so that a refresh needs only the session store. Changing the roles updates the
snapshots of every family of the account (:meth:`FamilyStore.update_claims`); disabling an
account deletes its families.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable
from uuid import UUID

import msgspec

__all__ = [
    "AccountClaims",
    "AuthMethod",
    "Client",
    "ClientStore",
    "Family",
    "FamilyStore",
    "NewFamily",
    "RotateResult",
]


class AccountClaims(msgspec.Struct, frozen=True, array_like=True):
    """What access tokens say about the account, as of the last sign-in or role change."""

    email: str
    roles: tuple[str, ...]


class NewFamily(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    user_id: UUID
    client_id: str | None
    scope: str | None
    origin: str
    user_agent: str | None
    token_hash: str
    created_at: float
    absolute_expires_at: float
    idle_ttl: float
    claims: AccountClaims
    amr: tuple[str, ...] = ()
    """RFC 8176 methods of the sign-in that opened the session; every token it issues says so."""
    auth_time: float | None = None
    """When the user authenticated, for a session a client opened with an authorization code
    (OpenID Connect ``auth_time``: a refresh's new ID token repeats it); None otherwise."""


class Family(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    user_id: UUID
    client_id: str | None
    scope: str | None
    origin: str
    user_agent: str | None
    created_at: float
    last_used_at: float
    absolute_expires_at: float
    idle_ttl: float
    claims: AccountClaims
    amr: tuple[str, ...] = ()
    auth_time: float | None = None

    @property
    def expires_at(self) -> float:
        return min(self.absolute_expires_at, self.last_used_at + self.idle_ttl)


class RotateResult(msgspec.Struct, frozen=True):
    outcome: Literal["rotated", "grace", "reuse", "invalid"]
    sealed: bytes | None = None
    """The stored successor, for ``grace``."""


@runtime_checkable
class FamilyStore(Protocol):
    async def create_family(self, family: NewFamily) -> None: ...

    async def get_family(self, family_id: str, now: float) -> Family | None:
        """The live family, or None when unknown, revoked or expired."""
        ...

    async def rotate(
        self,
        family_id: str,
        *,
        presented_hash: str,
        successor_hash: str,
        sealed_successor: bytes,
        now: float,
        grace: float,
    ) -> RotateResult:
        """Atomically apply the rules in this module's docstring."""
        ...

    async def owns_token(
        self, family_id: str, token_hash: str, now: float, *, current_only: bool = False
    ) -> bool:
        """True when the hash is the live family's current token or (unless ``current_only``)
        one it already rotated: proof of possession."""
        ...

    async def revoke_family(self, family_id: str) -> Family | None:
        """Delete the family; return what it was (None if it was already gone)."""
        ...

    async def list_families(self, user_id: UUID, now: float) -> list[Family]: ...

    async def update_claims(self, user_id: UUID, claims: AccountClaims) -> int:
        """Replace the snapshot in every live family of the user; return how many changed."""
        ...

    async def revoke_user_families(self, user_id: UUID, keep: str | None = None) -> list[Family]:
        """Delete every family of the user except ``keep``; return the deleted ones."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


AuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]


class Client(msgspec.Struct, frozen=True, kw_only=True):
    """An OAuth client registration (field names as in OIDC Dynamic Client Registration)."""

    id: str
    name: str
    secret_hash: str | None
    """SHA-256 hex of the secret; None for public clients and ``private_key_jwt`` clients."""
    created_at: float
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    grant_types: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    """Scopes beyond the OpenID Connect ones (``openid profile email offline_access``)."""
    first_party: bool = False
    """Ours: the consent screen is skipped."""
    id_token_signed_response_alg: str = "RS256"
    token_endpoint_auth_method: AuthMethod = "client_secret_basic"
    jwks: str | None = None
    """The client's public keys (a JWKS document) for ``private_key_jwt``."""
    require_mfa: bool = False
    """Sign-ins for this client need a second factor (``amr`` contains ``mfa``), as
    ``IDP_MFA_REQUIRED`` demands for every client."""

    @property
    def public(self) -> bool:
        return self.token_endpoint_auth_method == "none"


@runtime_checkable
class ClientStore(Protocol):
    async def create_client(self, client: Client) -> None:
        """Insert; raise :class:`service.errors.ClientExists` when the id is taken."""
        ...

    async def get_client(self, client_id: str) -> Client | None: ...

    async def list_clients(self) -> list[Client]: ...

    async def delete_client(self, client_id: str) -> bool: ...

    async def set_client_secret(self, client_id: str, secret_hash: str) -> bool:
        """Replace a confidential client's secret hash; False when unknown or without a secret."""
        ...
