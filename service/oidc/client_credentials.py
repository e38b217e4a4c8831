"""``grant_type=client_credentials`` (RFC 6749 §4.4): a confidential client's own access token.

The token's ``sub`` and ``client_id`` are the client id (RFC 9068 §2.2), it has no ``sid``
(no session: nothing to refresh or end) and carries only scopes registered for the client.
"""

from __future__ import annotations

from service.audit import audit
from service.errors import InvalidClient, InvalidScope, UnauthorizedClient
from service.sessions import TokenResponse
from service.store.sessions import Client
from service.tokens.access import AccessTokens

__all__ = ["GRANT_TYPE", "client_credentials"]

GRANT_TYPE = "client_credentials"


def granted_scope(requested: str | None, registered: tuple[str, ...]) -> str | None:
    """The requested scopes when all are registered for the client; all registered ones when
    none is requested (RFC 6749 §3.3 lets the server choose a default)."""
    if requested is None:
        return " ".join(registered) or None
    wanted = requested.split()
    if not wanted or not set(wanted) <= set(registered):
        raise InvalidScope("The client may only request scopes registered for it.")
    return " ".join(dict.fromkeys(wanted))


def client_credentials(
    client: Client | None, scope: str | None, access_tokens: AccessTokens
) -> TokenResponse:
    if client is None or client.public:
        raise InvalidClient("The client_credentials grant requires client authentication.")
    if GRANT_TYPE not in client.grant_types:
        raise UnauthorizedClient("This client is not registered for the client_credentials grant.")
    granted = granted_scope(scope, client.scopes)
    issued = access_tokens.issue(subject=client.id, email=None, roles=(), client_id=client.id, scope=granted)
    audit("client_credentials", client_id=client.id)
    return TokenResponse(
        access_token=issued.token, token_type="Bearer", expires_in=issued.expires_in, scope=granted
    )
