"""OpenID Connect Core §12.2: refreshing a session that came from an ``openid`` authorization
code returns a new ID token (same ``sub``, ``aud``, ``azp``, ``auth_time``, ``sid``; no
``nonce``; ``at_hash`` of the new access token), signed with the client's ID-token algorithm.
Sessions without ``openid`` (or a refresh narrowed to exclude it) get none."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
from litestar import Litestar

from service.clock import FrozenClock
from service.oidc.id_token import at_hash
from tests.http.test_authorize import ISSUER, basic, code_for, redeem, setup
from tests.support.oidc_browser import Pkce


async def verified(client: httpx.AsyncClient, token: str, alg: str) -> dict[str, Any]:
    """The ID token's claims, its signature checked against our JWKS with PyJWT."""
    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["typ"]) == (alg, "JWT")
    keys = jwt.PyJWKSet.from_dict((await client.get("/.well-known/jwks.json")).json())
    key = next(k for k in keys.keys if k.key_id == header["kid"])
    claims: dict[str, Any] = jwt.decode(
        token,
        key.key,
        algorithms=[alg],
        audience="web",
        issuer=ISSUER,
        options={"verify_exp": False, "verify_iat": False},
    )
    return claims


async def refresh(client: httpx.AsyncClient, secret: str, token: str, **extra: str) -> httpx.Response:
    return await client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": token, **extra},
        headers=basic("web", secret),
    )


async def test_a_refresh_returns_a_new_id_token(
    app: Litestar, client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """Same subject, audience, party, auth_time and sid as the code's ID token; no nonce; the
    at_hash of the new access token; issued now; and again on the next refresh."""
    _, secret = await setup(app, client)
    pkce = Pkce()
    first = (await redeem(client, await code_for(client, pkce), pkce, secret)).json()
    original = await verified(client, first["id_token"], "RS256")
    clock.advance(120)
    response = await refresh(client, secret, first["refresh_token"])
    assert response.status_code == 200, response.text
    body = response.json()
    claims = await verified(client, body["id_token"], "RS256")
    same = ("iss", "sub", "aud", "azp", "auth_time", "sid", "email", "name", "amr", "acr")
    assert {name: claims.get(name) for name in same} == {name: original.get(name) for name in same}
    assert "nonce" not in claims
    assert claims["at_hash"] == at_hash(body["access_token"], "RS256")
    assert claims["iat"] == original["iat"] + 120
    again = (await refresh(client, secret, body["refresh_token"])).json()
    assert (await verified(client, again["id_token"], "RS256"))["sid"] == original["sid"]


async def test_the_clients_algorithm_signs_it(app: Litestar, client: httpx.AsyncClient) -> None:
    """A client registered for EdDSA ID tokens gets EdDSA ones from its refreshes too (at_hash
    with SHA-512)."""
    _, secret = await setup(app, client, id_token_signed_response_alg="EdDSA")
    pkce = Pkce()
    first = (await redeem(client, await code_for(client, pkce), pkce, secret)).json()
    body = (await refresh(client, secret, first["refresh_token"])).json()
    claims = await verified(client, body["id_token"], "EdDSA")
    assert claims["at_hash"] == at_hash(body["access_token"], "EdDSA")


async def test_no_id_token_without_openid(app: Litestar, client: httpx.AsyncClient) -> None:
    """A plain OAuth code session (no openid), or a refresh whose scope leaves openid out,
    returns no ID token."""
    _, secret = await setup(app, client)
    pkce = Pkce()
    code = await code_for(client, pkce, scope="email offline_access", nonce="-")
    plain = (await redeem(client, code, pkce, secret)).json()
    assert "id_token" not in plain
    assert "id_token" not in (await refresh(client, secret, plain["refresh_token"])).json()
    pkce = Pkce()
    first = (await redeem(client, await code_for(client, pkce), pkce, secret)).json()
    narrowed = await refresh(client, secret, first["refresh_token"], scope="email offline_access")
    assert narrowed.status_code == 200, narrowed.text
    assert (narrowed.json()["scope"], "id_token" in narrowed.json()) == ("email offline_access", False)
