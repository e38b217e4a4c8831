"""Confidential OAuth clients: registration and authentication.

Secrets are 256-bit random strings shown once at registration; only their SHA-256 is stored
(a slow hash adds nothing for a secret with that much entropy) and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from service.clock import Clock
from service.errors import ClientExists, InvalidClient, InvalidRequest, NotFound
from service.store.sessions import Client, ClientStore
from service.tokens.access import FIRST_PARTY_CLIENT

__all__ = ["Clients", "hash_client_secret"]

SECRET_PREFIX = "idpcs_"
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")
# Compared against when the client id is unknown, so both paths cost the same.
_DUMMY_HASH = hashlib.sha256(b"no such client").hexdigest()


def hash_client_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Clients:
    def __init__(
        self, store: ClientStore, clock: Clock, declared: dict[str, tuple[str, str]] | None = None
    ) -> None:
        """``declared``: clients from ``IDP_CONFIG`` (id → (name, secret SHA-256)); they take
        precedence over the database and cannot be changed through it."""
        self._store = store
        self._clock = clock
        self._declared = {
            client_id: Client(id=client_id, name=name, secret_hash=digest, created_at=0.0)
            for client_id, (name, digest) in (declared or {}).items()
        }

    async def register(self, name: str, client_id: str | None = None) -> tuple[Client, str]:
        """Create a client; return it and its secret (the only time the secret is visible)."""
        client_id = client_id or secrets.token_urlsafe(12)
        if not _CLIENT_ID.match(client_id):
            raise InvalidRequest("Client ids are 1-64 characters of A-Z a-z 0-9 . _ ~ -")
        if client_id == FIRST_PARTY_CLIENT:
            raise InvalidRequest(f"{FIRST_PARTY_CLIENT!r} is reserved for the IdP's own sign-ins.")
        if client_id in self._declared:
            raise ClientExists("This client id is declared in IDP_CONFIG.")
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        client = Client(
            id=client_id, name=name, secret_hash=hash_client_secret(secret), created_at=self._clock()
        )
        await self._store.create_client(client)
        return client, secret

    async def authenticate(self, client_id: str, secret: str) -> Client:
        client = self._declared.get(client_id) or await self._store.get_client(client_id)
        expected = client.secret_hash if client else _DUMMY_HASH
        if not hmac.compare_digest(expected, hash_client_secret(secret)) or client is None:
            raise InvalidClient
        return client

    async def list(self) -> list[Client]:
        stored = [client for client in await self._store.list_clients() if client.id not in self._declared]
        return sorted([*self._declared.values(), *stored], key=lambda client: client.id)

    async def remove(self, client_id: str) -> None:
        if not await self._store.delete_client(client_id):
            raise NotFound("No client with this id.")
