"""The authorization code flow through the hosted pages, on both backends, and the RFC 9700
negative cases (PKCE, code reuse, redirect URIs, open redirects, mixed-up clients, state,
expiry, public clients, prompt=none)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import pytest
from litestar import Litestar

from service.clock import FrozenClock
from service.runtime import Runtime
from tests.support.oidc_browser import Pkce, form_fields, query, sign_in

PASSWORD = "correct horse battery"
CALLBACK = "https://app.example.com/callback"
ISSUER = "http://127.0.0.1:8000"


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def setup(app: Litestar, client: httpx.AsyncClient, **registration: Any) -> tuple[Runtime, str]:
    """Ada's account and the confidential client 'web'; returns its secret."""
    runtime: Runtime = app.state.runtime
    await runtime.accounts.create_user("ada@example.com", PASSWORD, "Ada Lovelace")
    _, secret = await runtime.clients.register(
        "Web app",
        "web",
        redirect_uris=[CALLBACK],
        post_logout_redirect_uris=["https://app.example.com/bye"],
        **registration,
    )
    return runtime, secret or ""


def authorize_url(pkce: Pkce, **overrides: str) -> str:
    params = {
        "response_type": "code",
        "client_id": "web",
        "redirect_uri": CALLBACK,
        "scope": "openid email profile offline_access",
        "state": "s t&a=te/€",
        "nonce": "n-0S6_WzA2Mj",
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
        **overrides,
    }
    return "/oauth2/authorize?" + urlencode({key: value for key, value in params.items() if value != "-"})


async def code_for(client: httpx.AsyncClient, pkce: Pkce, **overrides: str) -> str:
    final = await sign_in(client, authorize_url(pkce, **overrides), "ada@example.com", PASSWORD)
    assert final.status_code == 303, final.text
    returned = query(final.headers["location"])
    assert (returned["state"], returned["iss"]) == ("s t&a=te/€", ISSUER)
    return returned["code"]


async def redeem(
    client: httpx.AsyncClient, code: str, pkce: Pkce, secret: str, **extra: str
) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": pkce.verifier,
    }
    return await client.post("/oauth2/token", data={**form, **extra}, headers=basic("web", secret))


async def test_code_flow_with_id_token_userinfo_refresh_and_logout(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """Sign in, consent, code → access + ID + refresh token; the ID token verifies with PyJWT
    against our JWKS (RS256); userinfo; refresh; consent is remembered; RP-initiated logout ends
    the browser session and the client's session and goes back with state."""
    runtime, secret = await setup(app, client)
    pkce = Pkce()
    tokens = await redeem(client, await code_for(client, pkce), pkce, secret)
    assert tokens.status_code == 200, tokens.text
    assert tokens.headers["cache-control"] == "no-store"
    body = tokens.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "scope", "id_token"}
    jwks = jwt.PyJWKSet.from_dict((await client.get("/.well-known/jwks.json")).json())
    header = jwt.get_unverified_header(body["id_token"])
    assert (header["alg"], header["typ"]) == ("RS256", "JWT")
    key = next(k for k in jwks.keys if k.key_id == header["kid"])
    claims = jwt.decode(
        body["id_token"],
        key.key,
        algorithms=["RS256"],
        audience="web",
        issuer=ISSUER,
        options={"verify_exp": False, "verify_iat": False},
    )
    user = await runtime.accounts.get_by_email("ada@example.com")
    assert (claims["sub"], claims["azp"], claims["nonce"]) == (str(user.id), "web", "n-0S6_WzA2Mj")
    assert (claims["email"], claims["email_verified"], claims["name"]) == (
        "ada@example.com",
        False,
        "Ada Lovelace",
    )
    assert {"auth_time", "at_hash", "sid", "exp", "iat"} <= set(claims)
    digest = hashlib.sha256(body["access_token"].encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    info = await client.get("/oauth2/userinfo", headers=bearer)
    assert info.json() == {
        "sub": str(user.id),
        "email": "ada@example.com",
        "email_verified": False,
        "name": "Ada Lovelace",
    }
    posted = await client.post("/oauth2/userinfo", data={"access_token": body["access_token"]})
    assert posted.json()["sub"] == str(user.id)
    refreshed = await client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers=basic("web", secret),
    )
    assert refreshed.status_code == 200, refreshed.text
    again = await client.get(authorize_url(pkce))  # signed in and consented: straight back
    assert (again.status_code, "code" in query(again.headers["location"])) == (303, True)
    logout = await client.get(
        "/oauth2/logout",
        params={
            "id_token_hint": body["id_token"],
            "post_logout_redirect_uri": "https://app.example.com/bye",
            "state": "xyz",
        },
    )
    assert (logout.status_code, logout.headers["location"]) == (303, "https://app.example.com/bye?state=xyz")
    assert (await client.get("/oauth2/userinfo", headers=bearer)).status_code == 401
    after = await client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": refreshed.json()["refresh_token"]},
        headers=basic("web", secret),
    )
    assert after.json()["error"] == "invalid_grant"
    relogin = await client.get(authorize_url(pkce, prompt="none"))
    assert query(relogin.headers["location"])["error"] == "login_required"


async def test_the_token_request_reads_the_account_as_it_is_then(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """The code carries the browser session's snapshot of the account, but the tokens say what
    the account is at the token request (a name or role changed since the sign-in), and an
    account disabled after its code was issued gets no tokens and keeps no new session."""
    runtime, secret = await setup(app, client)
    user = await runtime.accounts.get_by_email("ada@example.com")
    pkce = Pkce()
    code = await code_for(client, pkce)
    await runtime.database.set_name(user.id, "Countess of Lovelace", runtime.clock())
    await runtime.database.set_roles(user.id, ["admin"], runtime.clock())
    tokens = await redeem(client, code, pkce, secret)
    assert tokens.status_code == 200, tokens.text
    id_token = jwt.decode(tokens.json()["id_token"], options={"verify_signature": False})
    access = jwt.decode(tokens.json()["access_token"], options={"verify_signature": False})
    assert (id_token["name"], access["roles"]) == ("Countess of Lovelace", ["admin"])
    sessions = len(await runtime.sessions.list(user.id))
    pkce = Pkce()
    again = await client.get(authorize_url(pkce))  # still signed in: straight back with a code
    assert again.status_code == 303, again.text
    await runtime.database.set_disabled(user.id, True, runtime.clock())
    refused = await redeem(client, query(again.headers["location"])["code"], pkce, secret)
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant")
    assert len(await runtime.sessions.list(user.id)) == sessions


async def test_pages_are_locked_down(app: Litestar, client: httpx.AsyncClient) -> None:
    """Sign-in page: CSP with only our own script files (the passkey script; nothing inline),
    not framable, no-store; the CSRF cookie is HttpOnly and SameSite=Lax; a post without the CSRF
    cookie's value is refused with a page, not a redirect."""
    await setup(app, client)
    page = await client.get(authorize_url(Pkce()))
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert ("default-src 'none'" in csp, "frame-ancestors 'none'" in csp, "script-src 'self';" in csp) == (
        True,
        True,
        True,
    )
    assert "unsafe-inline" not in csp
    assert "<script>" not in page.text
    assert "form-action 'self' https://app.example.com" in csp
    assert (page.headers["x-frame-options"], page.headers["cache-control"]) == ("DENY", "no-store")
    cookie = page.headers["set-cookie"].lower()
    assert ("httponly" in cookie, "samesite=lax" in cookie) == (True, True)
    fields = form_fields(page)
    forged = await client.post(
        "/oauth2/authorize/signin",
        data={**fields, "csrf": "x" * 43, "email": "ada@example.com", "password": PASSWORD},
    )
    assert (forged.status_code, "location" in forged.headers) == (400, False)
    wrong = await client.post(
        "/oauth2/authorize/signin", data={**fields, "email": "ada@example.com", "password": "nope nope"}
    )
    assert (wrong.status_code, "incorrect" in wrong.text, "location" in wrong.headers) == (401, True, False)


@pytest.mark.parametrize(
    "redirect_uri",
    [
        CALLBACK + "/",
        "https://APP.example.com/callback",
        CALLBACK + "/extra",
        CALLBACK + "?next=https://evil.example",
        "https://evil.example/callback",
        "",
    ],
    ids=["trailing-slash", "case", "extra-path", "query", "other-host", "missing"],
)
async def test_unregistered_redirect_uri_shows_a_page_and_never_redirects(
    app: Litestar, client: httpx.AsyncClient, redirect_uri: str
) -> None:
    """Exact matching only; even an otherwise bad request (no PKCE) never redirects there."""
    await setup(app, client)
    response = await client.get(authorize_url(Pkce(), redirect_uri=redirect_uri or "-", code_challenge="-"))
    assert (response.status_code, "location" in response.headers) == (400, False)
    assert "not registered" in response.text


async def test_unknown_client_shows_a_page(app: Litestar, client: httpx.AsyncClient) -> None:
    """An unknown client_id is an error page, never a redirect (open redirect)."""
    await setup(app, client)
    response = await client.get(authorize_url(Pkce(), client_id="nobody"))
    assert (response.status_code, "location" in response.headers) == (400, False)


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge": "-", "code_challenge_method": "-"}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": "-"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "openid admin"}, "invalid_scope"),
        ({"prompt": "none"}, "login_required"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"max_age": "soon"}, "invalid_request"),
    ],
    ids=["no-pkce", "plain", "no-method", "implicit", "scope", "prompt-none", "prompt-mix", "max-age"],
)
async def test_request_errors_go_back_with_state_and_iss(
    app: Litestar, client: httpx.AsyncClient, overrides: dict[str, str], error: str
) -> None:
    """RFC 6749 §4.1.2.1 + RFC 9207: the error, state unchanged and our issuer."""
    await setup(app, client)
    response = await client.get(authorize_url(Pkce(), **overrides))
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(CALLBACK + "?")
    returned = query(location)
    assert (returned["error"], returned["state"], returned["iss"]) == (error, "s t&a=te/€", ISSUER)


async def test_token_endpoint_refusals(app: Litestar, client: httpx.AsyncClient, clock: FrozenClock) -> None:
    """Wrong verifier, other redirect URI, mixed-up client, expired code: invalid_grant; a code
    presented twice is refused and the tokens of its first use stop working."""
    runtime, secret = await setup(app, client)
    _, other_secret = await runtime.clients.register("Other", "other", redirect_uris=[CALLBACK])
    pkce = Pkce()
    wrong_verifier = await redeem(client, await code_for(client, pkce), Pkce(), secret)
    assert wrong_verifier.json()["error"] == "invalid_grant"
    other_uri = await redeem(client, await code_for(client, pkce), pkce, secret, redirect_uri=CALLBACK + "/")
    assert other_uri.json()["error"] == "invalid_grant"
    mixed_up = await client.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": await code_for(client, pkce),
            "redirect_uri": CALLBACK,
            "code_verifier": pkce.verifier,
        },
        headers=basic("other", other_secret or ""),
    )
    assert mixed_up.json()["error"] == "invalid_grant"
    late = await code_for(client, pkce)
    clock.advance(61)
    assert (await redeem(client, late, pkce, secret)).json()["error"] == "invalid_grant"
    code = await code_for(client, pkce)
    first = await redeem(client, code, pkce, secret)
    assert first.status_code == 200
    bearer = {"Authorization": f"Bearer {first.json()['access_token']}"}
    assert (await client.get("/oauth2/userinfo", headers=bearer)).status_code == 200
    second = await redeem(client, code, pkce, secret)
    assert (second.status_code, second.json()["error"]) == (400, "invalid_grant")
    assert (await client.get("/oauth2/userinfo", headers=bearer)).status_code == 401
    refresh = {"grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"]}
    assert (await client.post("/oauth2/token", data=refresh, headers=basic("web", secret))).json()[
        "error"
    ] == ("invalid_grant")


async def test_public_client(app: Litestar, client: httpx.AsyncClient) -> None:
    """A public client redeems with PKCE and its id only, gets no refresh token (no refresh
    grant); sending a secret is invalid_client; without offline_access no refresh token either."""
    runtime, _ = await setup(app, client)
    await runtime.clients.register("SPA", "spa", redirect_uris=[CALLBACK], public=True)
    pkce = Pkce()
    form = {
        "grant_type": "authorization_code",
        "client_id": "spa",
        "redirect_uri": CALLBACK,
        "code_verifier": pkce.verifier,
    }
    with_secret = await client.post(
        "/oauth2/token",
        data={**form, "code": await code_for(client, pkce, client_id="spa"), "client_secret": "guess"},
    )
    assert (with_secret.status_code, with_secret.json()["error"]) == (401, "invalid_client")
    tokens = await client.post(
        "/oauth2/token", data={**form, "code": await code_for(client, pkce, client_id="spa")}
    )
    assert tokens.status_code == 200, tokens.text
    assert ("refresh_token" in tokens.json(), "id_token" in tokens.json()) == (False, True)
    assert tokens.json()["scope"] == "openid email profile"


async def test_consent_denied_and_first_party(app: Litestar, client: httpx.AsyncClient) -> None:
    """Deny → access_denied with state; a first-party client skips the consent page."""
    runtime, _ = await setup(app, client)
    denied = await sign_in(client, authorize_url(Pkce()), "ada@example.com", PASSWORD, consent=False)
    assert query(denied.headers["location"])["error"] == "access_denied"
    await runtime.clients.register("Ours", "ours", redirect_uris=[CALLBACK], first_party=True)
    direct = await client.get(authorize_url(Pkce(), client_id="ours"))
    assert (direct.status_code, "code" in query(direct.headers["location"])) == (303, True)


async def test_max_age_prompt_login_login_hint_and_ui_locales(
    app: Litestar, client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """An older sign-in than max_age, or prompt=login, shows the sign-in page again (pre-filled
    from login_hint, in the ui_locales language); a new sign-in moves auth_time forward."""
    _, secret = await setup(app, client)
    pkce = Pkce()
    await code_for(client, pkce)  # signed in and consented at START
    clock.advance(120)
    recent_enough = await client.get(authorize_url(pkce, max_age="600"))
    assert recent_enough.status_code == 303
    for overrides in ({"max_age": "60"}, {"prompt": "login"}):
        page = await client.get(
            authorize_url(pkce, login_hint="ada@example.com", ui_locales="fr-CA en", **overrides)
        )
        assert page.status_code == 200, overrides
        assert 'action="/oauth2/authorize/signin"' in page.text
        assert ('value="ada@example.com"' in page.text, '<html lang="fr-CA">' in page.text) == (True, True)
    code = await code_for(client, pkce, max_age="60")
    id_token = (await redeem(client, code, pkce, secret)).json()["id_token"]
    claims = jwt.decode(id_token, options={"verify_signature": False})
    assert claims["auth_time"] == int(clock())


async def test_an_id_token_algorithm_without_a_signing_key_is_503_and_starts_no_session(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """A client whose ID-token algorithm has no signing key (no ES256 key in this folder) gets
    503 ``temporarily_unavailable`` at the code exchange, never a 500, and the refused exchange
    leaves no session behind: only the browser session exists afterwards."""
    runtime, secret = await setup(app, client, id_token_signed_response_alg="ES256")
    pkce = Pkce()
    code = await code_for(client, pkce)
    user = await runtime.accounts.get_by_email("ada@example.com")
    before = {family.id for family in await runtime.sessions.list(user.id)}
    answer = await redeem(client, code, pkce, secret)
    assert (answer.status_code, answer.json()["error"]) == (503, "temporarily_unavailable")
    assert answer.headers["cache-control"] == "no-store"
    assert {family.id for family in await runtime.sessions.list(user.id)} == before
