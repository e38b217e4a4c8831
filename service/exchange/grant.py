"""RFC 8693 token exchange: a trusted issuer's JWT in, our access and refresh tokens out.

Verification order: the unverified ``iss`` picks the trusted issuer (exact match), the
client must be allowed for it, ``alg`` must be pinned for it, the key comes from its JWKS by
``kid`` only (``jku``/``x5u``/``jwk`` are never followed), then signature, ``iss``, ``aud``,
``exp``/``nbf``/``iat`` with a bounded leeway and a maximum age. Only then is the token
remembered against replay (Better Auth tokens have no ``jti``: the hash of the whole token is
the key) and mapped to a local account.

Every refusal of the subject token (malformed, untrusted, badly signed, expired, replayed, or
unacceptable by policy) is ``invalid_request``, as RFC 8693 §2.2.2 requires, not ``invalid_grant``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import uuid

import msgspec
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwt import JWTClaimsRegistry

from service import bounded_json
from service.audit import audit
from service.clock import Clock
from service.emails import normalize_email
from service.errors import (
    InvalidEmail,
    InvalidRequest,
    InvalidTarget,
    TemporarilyUnavailable,
    UnauthorizedClient,
)
from service.exchange.remote_jwks import JWKSUnavailable, RemoteJWKS
from service.sessions import Sessions, TokenResponse
from service.store.base import NewUser, StorageUnavailable, User
from service.store.exchange import IdentityStore, ReplayCache
from service.store.sessions import Client
from service.trust import TrustedIssuer

__all__ = ["ACCESS_TOKEN_TYPE", "GRANT_TYPE", "JWT_TOKEN_TYPE", "TokenExchange"]

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
REFRESH_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:refresh_token"
SUBJECT_TOKEN_TYPES = frozenset({JWT_TOKEN_TYPE, ACCESS_TOKEN_TYPE})
LEEWAY_SECONDS = 30
MAX_SUBJECT_TOKEN_LENGTH = 16_384


def _segment(token: str, index: int) -> dict[str, object]:
    part = token.split(".")[index]
    try:
        value = bounded_json.decode(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, binascii.Error, msgspec.DecodeError) as exc:
        raise InvalidRequest("The subject token is not a JWT.") from exc
    if not isinstance(value, dict):
        raise InvalidRequest("The subject token is not a JWT.")
    return value


def _claim(claims: dict[str, object], name: str) -> object:
    """A claim by name; dotted names reach into objects (e.g. ``user.email``)."""
    value: object = claims
    for part in name.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


class TokenExchange:
    def __init__(
        self,
        *,
        issuers: dict[str, TrustedIssuer],
        jwks: dict[str, RemoteJWKS],
        identities: IdentityStore,
        replay: ReplayCache,
        sessions: Sessions,
        audience: str,
        clock: Clock,
    ) -> None:
        self._issuers = issuers
        self._jwks = jwks
        self._identities = identities
        self._replay = replay
        self._sessions = sessions
        self._audience = audience
        self._clock = clock

    async def exchange(self, params: dict[str, str], client: Client) -> TokenResponse:
        if client.require_mfa:  # a foreign token proves no second factor here
            raise UnauthorizedClient("This client requires a sign-in with a second factor.")
        subject_token = params.get("subject_token")
        token_type = params.get("subject_token_type")
        if not subject_token or not token_type:
            raise InvalidRequest("subject_token and subject_token_type are required.")
        if token_type not in SUBJECT_TOKEN_TYPES:
            raise InvalidRequest("subject_token_type must be a JWT or an access token.")
        if params.get("requested_token_type") not in (None, ACCESS_TOKEN_TYPE):
            raise InvalidRequest("Only access tokens (with a refresh token) are issued.")
        if params.get("audience") not in (None, self._audience) or "resource" in params:
            raise InvalidTarget(f"Tokens are issued for {self._audience} only.")
        if "actor_token" in params:
            raise InvalidRequest("Delegation (actor_token) is not supported.")
        issuer, claims, fingerprint = await self._verify(subject_token, client)
        try:
            user = await self._account(issuer, claims)
            if user.disabled:
                raise InvalidRequest("The account is disabled.")
            response = await self._sessions.start(
                user, origin=f"token_exchange:{issuer.issuer}", client_id=client.id, scope=params.get("scope")
            )
        except StorageUnavailable:
            # Nothing was issued: the client's retry with the same token must not be a "replay".
            with contextlib.suppress(StorageUnavailable):
                await self._replay.forget(fingerprint)
            raise
        audit("exchange", user_id=user.id, client_id=client.id, issuer=issuer.issuer)
        return msgspec.structs.replace(response, issued_token_type=ACCESS_TOKEN_TYPE)

    async def _verify(self, token: str, client: Client) -> tuple[TrustedIssuer, dict[str, object], str]:
        if len(token) > MAX_SUBJECT_TOKEN_LENGTH or token.count(".") != 2:
            raise InvalidRequest("The subject token is not a compact JWT.")
        header, unverified = _segment(token, 0), _segment(token, 1)
        issuer = self._issuers.get(str(unverified.get("iss")))
        if issuer is None:
            raise InvalidRequest("The subject token's issuer is not trusted.")
        if client.id not in issuer.clients:
            raise UnauthorizedClient("This client may not exchange tokens of this issuer.")
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in issuer.algorithms or not isinstance(kid, str) or not kid:
            raise InvalidRequest("The subject token's algorithm or key id is not accepted.")
        try:
            key = await self._jwks[issuer.issuer].key(kid)
        except JWKSUnavailable as exc:
            raise TemporarilyUnavailable("The issuer's keys cannot be fetched right now.") from exc
        if key is None:
            raise InvalidRequest("The subject token was signed with an unknown key.")
        now = int(self._clock())
        registry = JWTClaimsRegistry(
            now=now,
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": issuer.issuer},
            aud={"essential": True, "values": issuer.audiences},
            exp={"essential": True},
            iat={"essential": True},
        )
        try:
            decoded = jwt.decode(token, key, algorithms=[str(alg)])
            registry.validate(decoded.claims)
        except (JoseError, ValueError, RecursionError) as exc:
            raise InvalidRequest("The subject token is invalid or expired.") from exc
        claims = decoded.claims
        iat, exp = claims["iat"], claims["exp"]
        if not isinstance(iat, int | float) or now - iat > issuer.max_token_age or iat > now + LEEWAY_SECONDS:
            raise InvalidRequest("The subject token is too old.")
        fingerprint = hashlib.sha256(token.encode()).hexdigest()
        if not await self._replay.remember(fingerprint, expires_at=float(exp) + LEEWAY_SECONDS, now=now):
            audit("exchange", outcome="replay", client_id=client.id, issuer=issuer.issuer)
            raise InvalidRequest("The subject token was already exchanged.")
        return issuer, claims, fingerprint

    async def _account(self, issuer: TrustedIssuer, claims: dict[str, object]) -> User:
        """The local account for (issuer, subject): existing link, verified-email link, or new."""
        mapping = issuer.claims
        subject = _claim(claims, mapping.subject)
        if not isinstance(subject, str) or not subject:
            raise InvalidRequest("The subject token has no subject.")
        linked = await self._identities.user_for_identity(issuer.issuer, subject)
        if linked is not None:
            return linked
        raw_email = _claim(claims, mapping.email)
        if not isinstance(raw_email, str):
            raise InvalidRequest("The subject token carries no email to provision an account with.")
        try:
            typed, normalized = normalize_email(raw_email)
        except InvalidEmail as exc:
            raise InvalidRequest("The subject token's email is not valid.") from exc
        verified = _claim(claims, mapping.email_verified) is True
        name = _claim(claims, mapping.name)
        if not verified:
            # An unverified address must not claim the real one: it gets a key of its own.
            digest = hashlib.sha256(f"{issuer.issuer}\0{subject}".encode()).hexdigest()[:32]
            normalized = f"unverified+{digest}@federated.invalid"
        elif not issuer.link_verified_email and await self._identities.get_user_by_email(normalized):
            raise InvalidRequest("An account with this email exists and linking is disabled for this issuer.")
        user = await self._identities.provision(
            issuer.issuer,
            subject,
            NewUser(
                id=uuid.uuid4(),
                email=typed,
                email_normalized=normalized,
                password_hash=None,
                name=name[:200] if isinstance(name, str) and name else None,
                created_at=self._clock(),
            ),
            link_existing=verified and issuer.link_verified_email,
        )
        audit("identity_linked", user_id=user.id, issuer=issuer.issuer)
        return user
