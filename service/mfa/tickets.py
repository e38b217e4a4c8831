"""Short-lived, single-use tickets sealed under the secrets-at-rest key: nothing to store
until one is used, valid on every instance.

- the ``mfa_token`` a password sign-in answers with when a second factor is needed (who, how
  they proved it so far, until when);
- the state of a WebAuthn ceremony (the challenge, for whom, what for), handed to the browser
  with the options and returned with the response.

A ticket is AES-256-GCM sealed with its purpose as associated data (a ticket of one kind is
never accepted as another), and spent through the replay cache (Redis ``SET NX PXAT`` or the
SQLite table): the first use wins, on any instance.
"""

from __future__ import annotations

import base64
import binascii
import secrets

import msgspec

from service.clock import Clock
from service.keys.secrets import SealBroken, SecretBox
from service.store.exchange import ReplayCache

__all__ = ["Ticket", "Tickets", "b64url_decode", "b64url_encode"]

MAX_TICKET_CHARS = 2048


class Ticket(msgspec.Struct, frozen=True, kw_only=True):
    purpose: str
    user_id: str | None
    """None for a passwordless ceremony, whose user is named by the credential."""
    amr: tuple[str, ...] = ()
    expires_at: float
    nonce: str
    challenge: bytes = b""


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Tickets:
    def __init__(self, box: SecretBox, replay: ReplayCache, clock: Clock, ttl: int) -> None:
        self._box = box
        self._replay = replay
        self._clock = clock
        self.ttl = ttl

    def issue(
        self, purpose: str, user_id: str | None, *, amr: tuple[str, ...] = (), challenge: bytes = b""
    ) -> tuple[str, Ticket]:
        ticket = Ticket(
            purpose=purpose,
            user_id=user_id,
            amr=amr,
            expires_at=self._clock() + self.ttl,
            nonce=secrets.token_urlsafe(16),
            challenge=challenge,
        )
        sealed = self._box.seal("ticket", msgspec.msgpack.encode(ticket), purpose.encode())
        return b64url_encode(sealed), ticket

    def read(self, token: str, purpose: str) -> Ticket | None:
        """The unexpired ticket of this purpose (not spent by reading), else None."""
        if not token or len(token) > MAX_TICKET_CHARS:
            return None
        try:
            plain = self._box.unseal("ticket", b64url_decode(token), purpose.encode())
            ticket = msgspec.msgpack.decode(plain, type=Ticket)
        except (SealBroken, ValueError, binascii.Error, msgspec.DecodeError):
            return None
        if ticket.purpose != purpose or ticket.expires_at <= self._clock():
            return None
        return ticket

    async def spend(self, ticket: Ticket) -> bool:
        """True the first time, on whichever instance; False for every later use."""
        fingerprint = self._box.mac("ticket-spent", f"{ticket.purpose} {ticket.nonce}".encode())
        return await self._replay.remember(fingerprint, expires_at=ticket.expires_at, now=self._clock())
