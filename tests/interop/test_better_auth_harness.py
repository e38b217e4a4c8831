"""The Better Auth harness (``tests/support/better_auth.py``) runs a real Better Auth that issues real JWTs.

These tests check the harness itself, not our IdP: a later token-exchange test relies on what is
proven here (alg, kid, iss, aud, claims, signature, key rotation on restart).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest

from tests.support.better_auth import BetterAuthError, BetterAuthServer, run_better_auth

pytestmark = pytest.mark.slow

# Stands in for our IdP's issuer URL: the audience the exchange will require.
AUDIENCE = "http://127.0.0.1:9/idp"
PASSWORD = "better auth interop 42"
KEY_SHAPES: dict[str, dict[str, str]] = {
    "EdDSA": {"kty": "OKP", "crv": "Ed25519"},
    "RS256": {"kty": "RSA"},
}


def new_email() -> str:
    return f"ba-{uuid.uuid4().hex[:12]}@example.com"


def verify(server: BetterAuthServer, token: str, *, audience: str = AUDIENCE) -> dict[str, Any]:
    """Verify ``token`` as a third party would: PyJWT, the JWKS URL, one algorithm, iss and aud."""
    signing_key = jwt.PyJWKClient(server.jwks_url, timeout=10).get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        signing_key.key,
        algorithms=[server.alg],
        audience=audience,
        issuer=server.issuer,
        options={"require": ["iss", "aud", "sub", "exp", "iat"]},
    )


@pytest.mark.parametrize("alg", ["EdDSA", "RS256"])
def test_better_auth_jwt_is_signed_with_the_configured_alg_iss_and_aud(tmp_path: Path, alg: str) -> None:
    """Sign up, sign in and ``GET /api/auth/token`` give JWTs that verify against Better Auth's JWKS.

    The header is exactly ``{alg, kid}`` (no ``typ``) with the configured ``alg`` and a ``kid``
    published in the JWKS under that algorithm's key shape; the claims carry ``iss`` (Better
    Auth's base URL), ``aud`` (the configured audience), ``sub`` (the user id), ``email``,
    ``iat`` and ``exp`` = ``iat`` + 15 minutes. PyJWT verifies the signature, so the token is
    really signed; another audience is refused, so the check means something.
    """
    with run_better_auth(tmp_path, audience=AUDIENCE, alg=alg) as server:
        assert server.jwks_url == f"{server.url}/api/auth/jwks"
        assert server.issuer == server.url
        email = new_email()
        signed_up = server.sign_up(email, PASSWORD, "Ada Lovelace")
        signed_in = server.sign_in(email, PASSWORD)
        assert signed_in.user_id == signed_up.user_id
        assert signed_in.session_token != signed_up.session_token

        jwks = server.jwks()["keys"]
        assert len(jwks) == 1
        assert jwks[0]["alg"] == alg
        assert KEY_SHAPES[alg].items() <= jwks[0].items(), jwks[0]
        assert not {"d", "p", "q", "dp", "dq", "qi"} & jwks[0].keys(), "private key material published"

        for session in (signed_up, signed_in):
            token = server.jwt(session)
            header = jwt.get_unverified_header(token)
            assert header == {"alg": alg, "kid": jwks[0]["kid"]}, header  # no typ
            claims = verify(server, token)
            assert claims["iss"] == server.url
            assert claims["aud"] == AUDIENCE
            assert claims["sub"] == signed_up.user_id
            assert claims["email"] == email
            assert claims["exp"] - claims["iat"] == 15 * 60
            assert "nbf" not in claims
            assert "jti" not in claims

        with pytest.raises(jwt.InvalidAudienceError):
            verify(server, token, audience="https://another-api.example")


@pytest.mark.parametrize("alg", ["EdDSA", "RS256"])
def test_restart_rotates_the_signing_key(tmp_path: Path, alg: str) -> None:
    """``restart()`` keeps the URL but publishes a new key (new ``kid``) and forgets all accounts.

    Tokens signed before the restart no longer find their key in the JWKS; a new account's token
    is signed with the new key and verifies.
    """
    with run_better_auth(tmp_path, audience=AUDIENCE, alg=alg) as server:
        url, jwks_url = server.url, server.jwks_url
        email = new_email()
        old_token = server.jwt(server.sign_up(email, PASSWORD, "Before Restart"))
        old_kids = server.kids()
        assert jwt.get_unverified_header(old_token)["kid"] in old_kids

        server.restart()

        assert (server.url, server.jwks_url) == (url, jwks_url)
        new_kids = server.kids()
        assert new_kids
        assert not new_kids & old_kids, "restart did not rotate the signing key"
        with pytest.raises(BetterAuthError) as refused:
            server.sign_in(email, PASSWORD)
        assert refused.value.status_code == 401  # the memory adapter lost the account
        with pytest.raises(jwt.PyJWKClientError):
            verify(server, old_token)

        new_token = server.jwt(server.sign_up(email, PASSWORD, "After Restart"))
        assert jwt.get_unverified_header(new_token)["kid"] in new_kids
        assert verify(server, new_token)["email"] == email


def test_expiration_audience_list_and_issuer_are_configurable(tmp_path: Path) -> None:
    """``expiration``, a list ``audience`` and ``issuer`` reach the token (``exp - iat``, ``aud``, ``iss``).

    A short expiration is what expiry tests will use; nothing here waits for it to pass.
    """
    audiences = [AUDIENCE, "https://another-api.example"]
    issuer = "https://better-auth.example"
    with run_better_auth(tmp_path, audience=audiences, expiration="2s", issuer=issuer) as server:
        assert server.issuer == issuer
        token = server.jwt(server.sign_up(new_email(), PASSWORD, "Short Lived"))
        claims = verify(server, token)
        assert claims["iss"] == issuer
        assert claims["aud"] == audiences
        assert claims["exp"] - claims["iat"] == 2


def test_oauth_provider_mode_runs_a_code_flow_with_pkce_and_an_id_token(tmp_path: Path) -> None:
    """With ``oidc_redirect_uri`` the harness runs Better Auth's OAuth provider plugin with one
    confidential client (what ``bench/code_flow.py`` compares us with): authorize without a
    session goes to the login page with a signed query; signing in with that query as
    ``oauth_query`` answers the redirect URI with a code and the state; the code, the PKCE
    verifier and HTTP Basic client authentication give an RS256 ID token for the client, with
    the nonce; the same code a second time is refused."""
    redirect_uri = "https://app.example.com/callback"
    with run_better_auth(tmp_path, audience=AUDIENCE, alg="RS256", oidc_redirect_uri=redirect_uri) as server:
        assert server.oidc_client is not None
        client_id, secret = server.oidc_client["client_id"], server.oidc_client["client_secret"]
        email = new_email()
        server.sign_up(email, PASSWORD, "Ada Lovelace")
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid email",
            "state": "st-1",
            "nonce": "n-1",
            "code_challenge": challenge.decode(),
            "code_challenge_method": "S256",
        }
        with httpx.Client(base_url=server.url, headers=server.origin_headers, timeout=10) as browser:
            login = browser.get("/api/auth/oauth2/authorize?" + urlencode(query))
            assert login.status_code == 302
            assert login.headers["location"].startswith("/sign-in?")
            signed = urlsplit(login.headers["location"]).query
            signed_in = browser.post(
                "/api/auth/sign-in/email", json={"email": email, "password": PASSWORD, "oauth_query": signed}
            )
            assert signed_in.status_code == 200, signed_in.text
            back = urlsplit(signed_in.json()["url"])
        assert f"{back.scheme}://{back.netloc}{back.path}" == redirect_uri
        params = parse_qs(back.query)
        assert params["state"] == ["st-1"]
        form = {
            "grant_type": "authorization_code",
            "code": params["code"][0],
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        token_url = f"{server.url}/api/auth/oauth2/token"
        answer = httpx.post(token_url, data=form, auth=(client_id, secret), timeout=10)
        assert answer.status_code == 200, answer.text
        signing_key = jwt.PyJWKClient(server.jwks_url, timeout=10).get_signing_key_from_jwt(
            answer.json()["id_token"]
        )
        claims = jwt.decode(
            answer.json()["id_token"],
            signing_key.key,
            algorithms=["RS256"],
            audience=client_id,
            issuer=server.issuer,
        )
        assert claims["nonce"] == "n-1"
        again = httpx.post(token_url, data=form, auth=(client_id, secret), timeout=10)
        assert again.status_code == 400
