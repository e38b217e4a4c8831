"""Who may call the admin API: a confidential client's own access token (the
``client_credentials`` grant) carrying the scope that names the operation.

A user's token never qualifies, whatever scopes it carries (it has a session, ``sid``, and its
subject is an account, not the client); a token for another audience or issuer fails
verification. The client must still exist, still be registered for ``client_credentials``
and still hold the scope: removing a client or withdrawing a scope takes effect at once, not
when its tokens expire. Each call spends the client's rate limit, then is audited.
"""

from __future__ import annotations

import msgspec

from service.abuse import RateLimited
from service.audit import audit
from service.clients import Clients
from service.clock import Clock
from service.errors import InsufficientScope, InvalidToken
from service.limits import RateLimiter, Rule
from service.tokens.access import AccessTokens

__all__ = [
    "ADMIN_SCOPES",
    "AUDIT_READ",
    "CLIENTS_WRITE",
    "SESSIONS_WRITE",
    "USERS_READ",
    "USERS_WRITE",
    "AdminAccess",
    "AdminCaller",
]

USERS_READ = "admin:users:read"
USERS_WRITE = "admin:users:write"
SESSIONS_WRITE = "admin:sessions:write"
AUDIT_READ = "admin:audit:read"
CLIENTS_WRITE = "admin:clients:write"
ADMIN_SCOPES = (USERS_READ, USERS_WRITE, SESSIONS_WRITE, AUDIT_READ, CLIENTS_WRITE)
CLIENT_CREDENTIALS = "client_credentials"


class AdminCaller(msgspec.Struct, frozen=True):
    """The authorised caller of one admin operation; ``actor`` is what audit events record."""

    client_id: str
    scope: str
    operation: str
    actor: str
    """``client:<id>`` for an API caller, ``cli`` for the command line."""


CLI = AdminCaller("cli", "cli", "cli", "cli")
"""The ``idp`` command on the server: it has the database, so it needs no token."""


class AdminAccess:
    def __init__(
        self, *, access_tokens: AccessTokens, clients: Clients, limiter: RateLimiter, rule: Rule, clock: Clock
    ) -> None:
        self._access_tokens = access_tokens
        self._clients = clients
        self._limiter = limiter
        self._rule = rule
        self._clock = clock

    async def authorize(self, token: str, scope: str, operation: str, ip: str) -> AdminCaller:
        """The caller of ``operation``, which needs ``scope``; else 401, 403 or 429."""
        claims = self._access_tokens.verify(token)
        if claims.sid is not None or claims.sub != claims.client_id:
            audit("admin_call", outcome="not_a_client_token", operation=operation, scope=scope, ip=ip)
            raise InsufficientScope("The admin API takes a client_credentials token only.", scope=scope)
        client = await self._clients.get(claims.client_id)
        if client is None or client.public or CLIENT_CREDENTIALS not in client.grant_types:
            audit("admin_call", outcome="unknown_client", operation=operation, scope=scope, ip=ip)
            raise InvalidToken
        decision = await self._limiter.hit(client.id, self._rule, self._clock())
        if not decision.allowed:
            audit("rate_limited", outcome=self._rule.name, client_id=client.id, ip=ip)
            raise RateLimited(self._rule, decision)
        granted = set((claims.scope or "").split()) & set(client.scopes)
        if scope not in granted:
            audit(
                "admin_call",
                outcome="insufficient_scope",
                client_id=client.id,
                scope=scope,
                operation=operation,
            )
            raise InsufficientScope(f"This operation needs the scope {scope}.", scope=scope)
        audit("admin_call", client_id=client.id, scope=scope, operation=operation, ip=ip)
        return AdminCaller(client.id, scope, operation, f"client:{client.id}")
