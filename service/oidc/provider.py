"""Authorization codes from issue to redemption, the ``authorization_code`` grant, userinfo.

A code is 256 random bits, stored as its SHA-256 with what it is bound to (client, redirect
URI, PKCE challenge, nonce, scope, user, ``auth_time``, browser session), valid 60 s, single
use. The redemption opens a session (a refresh family) whose id is chosen before the code is
marked used, so a second presentation of the code finds it and revokes it: every token issued
from the code stops working (RFC 6749 §4.1.2, RFC 9700 §4.1.2).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from uuid import UUID

import msgspec

from service.audit import audit
from service.clock import Clock
from service.errors import InsufficientScope, InvalidGrant, InvalidRequest, InvalidToken, UnauthorizedClient
from service.oidc.authorize import AuthorizationRequest
from service.oidc.id_token import IdTokens, user_claims
from service.sessions import OIDC_ORIGIN_PREFIX, Sessions, TokenResponse, oidc_origin
from service.store.base import UserStore
from service.store.oidc import OidcStore
from service.store.sessions import AccountClaims, Client, Family
from service.tokens.access import AccessClaims
from service.tokens.refresh import new_family_id

__all__ = ["CODE_TTL", "GRANT_TYPE", "Provider"]

GRANT_TYPE = "authorization_code"
CODE_TTL = 60.0
CODE_KEPT = 600.0
"""How long a redeemed code is remembered, so a late replay still revokes what it issued."""
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")  # RFC 7636 §4.1


class CodeRecord(msgspec.Struct, frozen=True, kw_only=True):
    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    scopes: tuple[str, ...]
    user_id: UUID
    auth_time: float
    browser_sid: str
    expires_at: float
    amr: tuple[str, ...] = ()
    """How the browser session signed in: the code's tokens and ID token say so."""
    claims: AccountClaims | None = None
    """The browser session's snapshot of the account (email, roles): the new session starts
    with it, and the account is read once, after that session exists (:meth:`Sessions.start_for`).
    None in a code issued before this field: the account is read before, as then."""


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


class Provider:
    def __init__(
        self, *, store: OidcStore, users: UserStore, sessions: Sessions, id_tokens: IdTokens, clock: Clock
    ) -> None:
        self._store = store
        self._users = users
        self._sessions = sessions
        self._id_tokens = id_tokens
        self._clock = clock

    async def granted_scopes(self, user_id: UUID, client_id: str) -> frozenset[str]:
        return await self._store.granted_scopes(user_id, client_id)

    async def grant_consent(self, user_id: UUID, request: AuthorizationRequest) -> None:
        await self._store.grant_scopes(user_id, request.client_id, frozenset(request.scopes), self._clock())
        audit("consent", user_id=user_id, client_id=request.client_id)

    async def issue_code(self, request: AuthorizationRequest, session: Family) -> str:
        now = self._clock()
        code = secrets.token_urlsafe(32)
        record = CodeRecord(
            client_id=request.client_id,
            redirect_uri=request.redirect_uri,
            code_challenge=request.code_challenge,
            nonce=request.nonce,
            scopes=request.scopes,
            user_id=session.user_id,
            auth_time=session.created_at,
            browser_sid=session.id,
            expires_at=now + CODE_TTL,
            amr=session.amr,
            claims=session.claims,
        )
        await self._store.save_code(
            _code_hash(code), msgspec.json.encode(record), expires_at=now + CODE_TTL, purge_at=now + CODE_KEPT
        )
        audit("authorization_code", user_id=session.user_id, client_id=request.client_id)
        return code

    async def redeem(self, client: Client, params: Mapping[str, str]) -> TokenResponse:
        """``grant_type=authorization_code`` for an authenticated (or public) client."""
        if GRANT_TYPE not in client.grant_types:
            raise UnauthorizedClient("This client is not registered for the authorization code flow.")
        code, redirect_uri = params.get("code"), params.get("redirect_uri")
        verifier = params.get("code_verifier", "")
        if not code or not redirect_uri:
            raise InvalidRequest("code and redirect_uri are required.")
        if not _VERIFIER.match(verifier):
            raise InvalidGrant("A PKCE code_verifier (43-128 characters) is required.")
        family_id = new_family_id()
        redemption = await self._store.redeem_code(_code_hash(code[:256]), family_id)
        if redemption is None:
            raise InvalidGrant("The authorization code is invalid or expired.")
        record = msgspec.json.decode(redemption.record, type=CodeRecord)
        if redemption.reused_by is not None:
            revoked = await self._sessions.revoke(redemption.reused_by)
            audit("code_reuse_detected", outcome="session_revoked" if revoked else "nothing_to_revoke")
            raise InvalidGrant("The authorization code was already used; its tokens are revoked.")
        if record.expires_at <= self._clock():
            raise InvalidGrant("The authorization code is invalid or expired.")
        if record.client_id != client.id:
            raise InvalidGrant("The authorization code was issued to another client.")
        if record.redirect_uri != redirect_uri:
            raise InvalidGrant("redirect_uri differs from the authorization request's.")
        if not hmac.compare_digest(_s256(verifier), record.code_challenge):
            raise InvalidGrant("The code_verifier does not match the code_challenge.")
        if client.require_mfa and "mfa" not in record.amr:
            audit("code_exchange", outcome="mfa_required", user_id=record.user_id, client_id=client.id)
            raise InvalidGrant("This client requires a sign-in with a second factor.")
        if "openid" in record.scopes:
            self._id_tokens.signing_key_for(client)  # before a session exists: nothing half-issued
        return await self._tokens(client, record, family_id)

    async def _tokens(self, client: Client, record: CodeRecord, family_id: str) -> TokenResponse:
        claims = record.claims
        if claims is None:
            snapshot = await self._users.get_user(record.user_id)
            if snapshot is None or snapshot.disabled:
                raise InvalidGrant("The account is disabled.")
            claims = AccountClaims(snapshot.email, tuple(snapshot.roles))
        scopes = frozenset(record.scopes)
        # One account read: after the session exists (an account disabled meanwhile keeps
        # none), and the ID token's claims come from it, current as of issuance.
        issued, user = await self._sessions.start_for(
            record.user_id,
            claims,
            origin=oidc_origin(record.browser_sid),
            client_id=client.id,
            scope=" ".join(record.scopes),
            family_id=family_id,
            amr=record.amr,
            auth_time=record.auth_time,
        )
        offline = "offline_access" in scopes and "refresh_token" in client.grant_types
        id_token = None
        if "openid" in scopes:
            id_token = self._id_tokens.issue(
                client=client,
                user=user,
                scopes=scopes,
                auth_time=record.auth_time,
                sid=record.browser_sid,
                nonce=record.nonce,
                access_token=issued.access_token,
                amr=record.amr,
            )
        audit("code_exchange", user_id=user.id, client_id=client.id, sid=family_id)
        return msgspec.structs.replace(
            issued, refresh_token=issued.refresh_token if offline else None, id_token=id_token
        )

    def refreshes_id_token(self, family: Family | None, client: Client | None) -> bool:
        """True when refreshing ``family`` for ``client`` returns a new ID token (OpenID Connect
        Core §12.2): a session this client opened with an ``openid`` authorization code. Then
        the client's ID-token key must be able to sign before the family rotates."""
        if (
            family is None
            or client is None
            or family.client_id != client.id
            or family.auth_time is None
            or not family.origin.startswith(OIDC_ORIGIN_PREFIX)
            or "openid" not in (family.scope or "").split()
        ):
            return False
        self._id_tokens.signing_key_for(client)  # a 503 now, not after the rotation
        return True

    async def refreshed_id_token(
        self, client: Client, family: Family, refreshed: TokenResponse
    ) -> TokenResponse:
        """``refreshed`` (the refresh grant's response) with a new ID token: the same ``sub``,
        ``aud``, ``azp``, ``auth_time``, ``sid`` and ``amr`` as the first, no ``nonce``,
        ``at_hash`` of the new access token, claims by the granted scope from the account as it
        is now, signed with the client's ``id_token_signed_response_alg``."""
        scopes = frozenset((refreshed.scope or "").split())
        if "openid" not in scopes:  # narrowed away by the request's scope
            return refreshed
        user = await self._users.get_user(family.user_id)
        if user is None or user.disabled:
            raise InvalidGrant("The account is disabled.")
        id_token = self._id_tokens.issue(
            client=client,
            user=user,
            scopes=scopes,
            auth_time=family.created_at if family.auth_time is None else family.auth_time,
            sid=family.origin.removeprefix(OIDC_ORIGIN_PREFIX),
            nonce=None,
            access_token=refreshed.access_token,
            amr=family.amr,
        )
        return msgspec.structs.replace(refreshed, id_token=id_token)

    async def userinfo(self, claims: AccessClaims) -> dict[str, object]:
        """OpenID Connect Core §5.3 for a live session's access token with ``openid``."""
        scopes = frozenset((claims.scope or "").split())
        if "openid" not in scopes:
            raise InsufficientScope
        user = await self._users.get_user(UUID(claims.sub))
        if user is None or user.disabled:
            raise InvalidToken("The account is disabled.")
        return {"sub": str(user.id), **user_claims(user, scopes)}
