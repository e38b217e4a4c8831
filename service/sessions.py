"""Sessions: refresh-token families from sign-in to rotation, reuse detection and sign-out.

Every sign-in (signup, login, later token exchange) starts a family; its id is the access
token's ``sid``. Refreshing rotates the token (see :mod:`service.store.sessions` for the
rules); reuse of a rotated token after the grace window deletes the whole family at once.
"""

from __future__ import annotations

import contextlib
import re
from uuid import UUID

import msgspec

from service.audit import audit
from service.clock import Clock
from service.errors import InvalidClient, InvalidGrant, InvalidScope, InvalidToken, NotFound
from service.store.base import StorageUnavailable, User, UserStore
from service.store.sessions import AccountClaims, Client, Family, FamilyStore, NewFamily
from service.tokens.access import AccessClaims, AccessTokens
from service.tokens.refresh import hash_secret, new_family_id, new_token, parse_token, seal, unseal

__all__ = [
    "BROWSER_ORIGIN",
    "OIDC_ORIGIN_PREFIX",
    "Presented",
    "SessionPolicy",
    "Sessions",
    "TokenResponse",
    "oidc_origin",
    "summarize_user_agent",
]

MAX_USER_AGENT = 120
BROWSER_ORIGIN = "browser"
"""Families opened by the hosted sign-in page: the browser session behind the cookie."""


OIDC_ORIGIN_PREFIX = "oidc:"


def oidc_origin(browser_sid: str) -> str:
    """The origin of a session a client opened with a code issued in this browser session."""
    return f"{OIDC_ORIGIN_PREFIX}{browser_sid}"


class TokenResponse(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """RFC 6749 §5.1 token response."""

    access_token: str
    issued_token_type: str | None = None
    """RFC 8693 §2.2.1, for token-exchange responses only."""
    token_type: str
    expires_in: int
    refresh_token: str | None = None
    scope: str | None = None
    id_token: str | None = None
    """OpenID Connect Core §3.1.3.3 and §12.2: the authorization_code grant with ``openid``, and
    the refresh of a session that grant opened."""


class Presented(msgspec.Struct, frozen=True):
    """A refresh token as presented, with its family as read at ``now`` (None: unknown,
    revoked or expired). Reading changes nothing; :meth:`Sessions.refresh` acts on it."""

    family_id: str
    secret: str
    family: Family | None
    now: float


class SessionPolicy(msgspec.Struct, frozen=True, kw_only=True):
    absolute_ttl: float
    idle_ttl: float
    reuse_grace: float


_BROWSERS = (("Edg/", "Edge"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari"))
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
)


def summarize_user_agent(user_agent: str | None) -> str | None:
    """ "Firefox on Linux" for browsers; the product token (e.g. "curl/8.5.0") otherwise."""
    if not user_agent:
        return None
    browser = next((name for marker, name in _BROWSERS if marker in user_agent), None)
    system = next((name for marker, name in _SYSTEMS if marker in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    product = re.split(r"[\s(]", user_agent.strip(), maxsplit=1)[0]
    return product[:MAX_USER_AGENT] or None


def _scope_within(requested: str | None, granted: str | None) -> str | None:
    if requested is None:
        return granted
    wanted = set(requested.split())
    if not wanted or not wanted <= set((granted or "").split()):
        raise InvalidScope
    return " ".join(sorted(wanted))


def _claims_of(user: User) -> AccountClaims:
    return AccountClaims(user.email, tuple(user.roles))


class Sessions:
    def __init__(
        self,
        *,
        families: FamilyStore,
        users: UserStore,
        access_tokens: AccessTokens,
        policy: SessionPolicy,
        clock: Clock,
    ) -> None:
        self._families = families
        self._users = users
        self._access_tokens = access_tokens
        self._policy = policy
        self._clock = clock

    def _access_response(
        self, claims: AccountClaims, family: Family | NewFamily, scope: str | None, refresh: str
    ) -> TokenResponse:
        issued = self._access_tokens.issue(
            subject=str(family.user_id),
            email=claims.email,
            roles=claims.roles,
            sid=family.id,
            client_id=family.client_id,
            scope=scope,
            amr=family.amr,
        )
        return TokenResponse(
            access_token=issued.token,
            token_type="Bearer",
            expires_in=issued.expires_in,
            refresh_token=refresh,
            scope=scope,
        )

    async def start(
        self,
        user: User,
        *,
        origin: str,
        client_id: str | None = None,
        scope: str | None = None,
        user_agent: str | None = None,
        amr: tuple[str, ...] = (),
        family_id: str | None = None,
        auth_time: float | None = None,
    ) -> TokenResponse:
        """Open a new family for a fresh sign-in and issue its first pair; ``amr``: how the user
        proved who they are (RFC 8176), carried by every token of the session; ``auth_time``:
        when, for a session opened with an authorization code (its refreshes' ID tokens).
        See :meth:`start_for` for the account read that follows."""
        issued, _ = await self.start_for(
            user.id,
            _claims_of(user),
            origin=origin,
            client_id=client_id,
            scope=scope,
            user_agent=user_agent,
            amr=amr,
            family_id=family_id,
            auth_time=auth_time,
        )
        return issued

    async def start_for(
        self,
        user_id: UUID,
        claims: AccountClaims,
        *,
        origin: str,
        client_id: str | None = None,
        scope: str | None = None,
        user_agent: str | None = None,
        amr: tuple[str, ...] = (),
        family_id: str | None = None,
        auth_time: float | None = None,
    ) -> tuple[TokenResponse, User]:
        """:meth:`start` for a caller holding a snapshot of the account's ``claims`` (e.g. the
        browser session's) rather than the account; also returns the account as read here.

        The account is read again once the family exists: an account disabled (or given other
        roles) while this sign-in was under way never keeps a session (or a stale snapshot),
        since disabling deletes the families that exist and role changes rewrite them.
        """
        now = self._clock()
        family_id = family_id or new_family_id()
        token, token_hash = new_token(family_id)
        family = NewFamily(
            id=family_id,
            user_id=user_id,
            client_id=client_id,
            scope=scope,
            origin=origin,
            user_agent=summarize_user_agent(user_agent),
            token_hash=token_hash,
            created_at=now,
            absolute_expires_at=now + self._policy.absolute_ttl,
            idle_ttl=self._policy.idle_ttl,
            claims=claims,
            amr=amr,
            auth_time=auth_time,
        )
        await self._families.create_family(family)
        try:
            current = await self._users.get_user(user_id)
        except StorageUnavailable:
            with contextlib.suppress(StorageUnavailable):  # no session whose token nobody holds
                await self._families.revoke_family(family_id)
            raise
        if current is None or current.disabled:
            await self._families.revoke_family(family_id)
            raise InvalidGrant("The account is disabled.")
        current_claims = _claims_of(current)
        if current_claims != family.claims:
            await self._families.update_claims(user_id, current_claims)
        return self._access_response(current_claims, family, scope, token), current

    async def present(self, refresh_token: str) -> Presented:
        """Parse the token and read its family; nothing changes (the token endpoint sends this
        read together with its rate-limit check)."""
        family_id, secret = parse_token(refresh_token)
        now = self._clock()
        return Presented(family_id, secret, await self._families.get_family(family_id, now), now)

    async def refresh(
        self, presented: Presented, *, client: Client | None, scope: str | None
    ) -> TokenResponse:
        """The ``refresh_token`` grant (RFC 6749 §6) with rotation, grace and reuse detection."""
        family_id, secret, family, now = (
            presented.family_id,
            presented.secret,
            presented.family,
            presented.now,
        )
        if family is None or family.origin == BROWSER_ORIGIN:
            raise InvalidGrant("The refresh token is invalid, expired or revoked.")
        if family.client_id is not None and client is None:
            raise InvalidClient("This refresh token was issued to a client; authenticate as it.")
        if (client.id if client else None) != family.client_id:
            raise InvalidGrant("The refresh token was not issued to this client.")
        if client is not None and client.require_mfa and "mfa" not in family.amr:
            # A family from before the client required MFA: its sign-in had one factor.
            raise InvalidGrant("This client requires a sign-in with a second factor; sign in again.")
        granted_scope = _scope_within(scope, family.scope)
        claims = family.claims
        successor, successor_hash = new_token(family_id)
        response = self._access_response(claims, family, granted_scope, successor)
        sealed = seal(secret, msgspec.json.encode(response))
        result = await self._families.rotate(
            family_id,
            presented_hash=hash_secret(secret),
            successor_hash=successor_hash,
            sealed_successor=sealed,
            now=now,
            grace=self._policy.reuse_grace,
        )
        user_id = family.user_id
        if result.outcome == "rotated":
            audit("refresh", user_id=user_id, client_id=family.client_id, sid=family_id)
            return response
        if result.outcome == "grace":
            audit("refresh", outcome="grace_replay", user_id=user_id, sid=family_id)
            return msgspec.json.decode(unseal(secret, result.sealed or b""), type=TokenResponse)
        if result.outcome == "reuse":
            audit("refresh_reuse_detected", outcome="family_revoked", user_id=user_id, sid=family_id)
            raise InvalidGrant("The refresh token was already used; the session has been revoked.")
        raise InvalidGrant("The refresh token is invalid, expired or revoked.")

    async def update_claims(self, user: User) -> int:
        """New roles (or email) reach the account's sessions' next refresh."""
        return await self._families.update_claims(user.id, _claims_of(user))

    async def authenticate(self, claims: AccessClaims) -> AccessClaims:
        """Reject an access token whose session has ended (``sid`` revoked or expired), and a
        token without a session: a client's own token (client_credentials) is not a user's."""
        if claims.sid is None:
            raise InvalidToken("This access token does not belong to a user's session.")
        if await self._families.get_family(claims.sid, self._clock()) is None:
            raise InvalidToken("The session of this access token has ended.")
        return claims

    async def _possessed_family(
        self, token: str, client: Client | None, *, current_only: bool
    ) -> Family | None:
        """The live family of ``token`` when the token proves possession and belongs to
        ``client`` (None for first-party sessions); otherwise None."""
        try:
            family_id, secret = parse_token(token)
        except InvalidGrant:
            return None
        now = self._clock()
        family = await self._families.get_family(family_id, now)
        if family is None or family.client_id != (client.id if client else None):
            return None
        if not await self._families.owns_token(
            family_id, hash_secret(secret), now, current_only=current_only
        ):
            return None
        return family

    async def revoke_refresh_token(self, token: str, client: Client | None) -> bool:
        """RFC 7009 for refresh tokens: any token of the family (current or rotated) revokes it."""
        family = await self._possessed_family(token, client, current_only=False)
        if family is None:
            return False
        await self._families.revoke_family(family.id)
        audit("revoke", user_id=family.user_id, client_id=family.client_id, sid=family.id)
        return True

    async def revoke(self, family_id: str) -> bool:
        """End a session by id (code reuse); True if it was live."""
        family = await self._families.revoke_family(family_id)
        if family is not None:
            audit("revoke", user_id=family.user_id, client_id=family.client_id, sid=family_id)
        return family is not None

    async def browser_session(self, cookie: str) -> Family | None:
        """The live browser session (a family of origin ``browser``) whose token the cookie
        holds, else None. The cookie's token is never rotated: it only proves the session."""
        family = await self._possessed_family(cookie, None, current_only=True)
        return family if family is not None and family.origin == BROWSER_ORIGIN else None

    async def end_browser_session(self, family: Family) -> int:
        """Sign out of the browser session and every session a client opened through it."""
        ended = [item for item in await self.list(family.user_id) if item.origin == oidc_origin(family.id)]
        for item in [family, *ended]:
            await self._families.revoke_family(item.id)
        audit("logout", user_id=family.user_id, sid=family.id, sessions=len(ended) + 1)
        return len(ended) + 1

    async def end_client_sessions(self, user_id: UUID, browser_sid: str) -> int:
        """End the sessions clients opened through the browser session ``browser_sid``, which
        may itself have ended already (RP-initiated logout with an ID token as hint from a
        browser that no longer holds that session's cookie)."""
        ended = [item for item in await self.list(user_id) if item.origin == oidc_origin(browser_sid)]
        for item in ended:
            await self._families.revoke_family(item.id)
        if ended:
            audit("logout", user_id=user_id, sid=browser_sid, sessions=len(ended))
        return len(ended)

    async def introspect_refresh_token(self, token: str, client: Client) -> Family | None:
        """The live family of the client's current refresh token, else None."""
        return await self._possessed_family(token, client, current_only=True)

    async def end(self, user_id: UUID, family_id: str, reason: str) -> None:
        """End one of the user's sessions; someone else's or an unknown one is 404."""
        family = await self._families.get_family(family_id, self._clock())
        if family is None or family.user_id != user_id:
            raise NotFound("No such session.")
        await self._families.revoke_family(family_id)
        audit(reason, user_id=user_id, sid=family_id)

    async def end_all(self, user_id: UUID, reason: str, keep: str | None = None) -> int:
        ended = await self._families.revoke_user_families(user_id, keep=keep)
        audit(reason, user_id=user_id, sessions=len(ended))
        return len(ended)

    async def list(self, user_id: UUID) -> list[Family]:
        return await self._families.list_families(user_id, self._clock())

    async def family(self, family_id: str) -> Family | None:
        return await self._families.get_family(family_id, self._clock())
