"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) at ``/oauth2/logout``: the
client is identified by the ``id_token_hint`` or, without one, by ``client_id``; the browser
goes back to ``post_logout_redirect_uri`` (with ``state``) only when that URI is registered
exactly for that client; a ``client_id`` that is not the hint's audience is an error page."""

from __future__ import annotations

import httpx
from litestar import Litestar

from tests.http.test_authorize import authorize_url, basic, code_for, redeem, setup
from tests.support.oidc_browser import Pkce, form_fields, query

BYE = "https://app.example.com/bye"


async def signed_in(app: Litestar, client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    """Ada signed in through the hosted pages for 'web' (and 'other' registered beside it);
    returns web's secret and the token response."""
    runtime, secret = await setup(app, client)
    await runtime.clients.register(
        "Other",
        "other",
        redirect_uris=["https://other.example/cb"],
        post_logout_redirect_uris=["https://other.example/bye"],
    )
    pkce = Pkce()
    tokens = await redeem(client, await code_for(client, pkce), pkce, secret)
    assert tokens.status_code == 200, tokens.text
    return secret, tokens.json()


async def still_signed_in(client: httpx.AsyncClient) -> bool:
    """The browser session is live: prompt=none gets a code, not login_required."""
    response = await client.get(authorize_url(Pkce(), prompt="none"))
    return "code" in query(response.headers["location"])


async def refresh_works(client: httpx.AsyncClient, secret: str, refresh_token: str) -> bool:
    response = await client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        headers=basic("web", secret),
    )
    return response.status_code == 200


async def confirm(client: httpx.AsyncClient, page: httpx.Response) -> httpx.Response:
    """Press "Sign out" on the confirmation page (its hidden fields, CSRF included)."""
    assert page.status_code == 200, page.text
    assert 'action="/oauth2/logout"' in page.text
    return await client.post("/oauth2/logout", data=form_fields(page))


async def test_without_a_hint_client_id_identifies_the_client_and_the_user_confirms(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """No id_token_hint: the user confirms on our page, then goes back to the URI registered
    for the client named by client_id, with state; the browser session and the client's
    refresh family are ended."""
    secret, tokens = await signed_in(app, client)
    page = await client.get(
        "/oauth2/logout", params={"client_id": "web", "post_logout_redirect_uri": BYE, "state": "s&t"}
    )
    assert "Sign out?" in page.text
    assert await still_signed_in(client), "showing the page signs nobody out"
    done = await confirm(client, page)
    assert (done.status_code, done.headers["location"]) == (303, f"{BYE}?state=s%26t")
    assert not await still_signed_in(client)
    assert not await refresh_works(client, secret, tokens["refresh_token"])


async def test_a_post_without_the_csrf_token_signs_nobody_out(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """A third-party page posting confirm=yes (no CSRF value) gets the confirmation page again."""
    await signed_in(app, client)
    forged = await client.post(
        "/oauth2/logout", data={"confirm": "yes", "client_id": "web", "post_logout_redirect_uri": BYE}
    )
    assert (forged.status_code, "Sign out?" in forged.text) == (200, True)
    assert await still_signed_in(client)


async def test_an_unregistered_uri_is_never_followed(app: Litestar, client: httpx.AsyncClient) -> None:
    """A URI not registered exactly for the identified client (another client's, a variation,
    or any URI with no client identified) is not redirected to: the user is signed out and
    sees our signed-out page."""
    _, tokens = await signed_in(app, client)
    for params in (
        {"client_id": "web", "post_logout_redirect_uri": "https://other.example/bye"},
        {"client_id": "web", "post_logout_redirect_uri": BYE + "/"},
        {"client_id": "web", "post_logout_redirect_uri": "https://evil.example/"},
        {"post_logout_redirect_uri": BYE},
        {"client_id": "nobody", "post_logout_redirect_uri": BYE},
    ):
        page = await client.get("/oauth2/logout", params=params)
        assert "https://" not in str(form_fields(page)), "an unchecked URI is not carried on"
        done = await confirm(client, page)
        assert (done.status_code, "location" in done.headers, "You are signed out" in done.text) == (
            200,
            False,
            True,
        ), params
    hinted = await client.get(
        "/oauth2/logout",
        params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "https://other.example/bye"},
    )
    assert (hinted.status_code, "location" in hinted.headers, "You are signed out" in hinted.text) == (
        200,
        False,
        True,
    )


async def test_client_id_must_match_the_hint(app: Litestar, client: httpx.AsyncClient) -> None:
    """With both, client_id must be the hint's audience: another client's id is an error page,
    no redirect and no sign-out; the right one redirects at once (the hint needs no
    confirmation)."""
    secret, tokens = await signed_in(app, client)
    mismatch = await client.get(
        "/oauth2/logout",
        params={
            "id_token_hint": tokens["id_token"],
            "client_id": "other",
            "post_logout_redirect_uri": "https://other.example/bye",
        },
    )
    assert (mismatch.status_code, "location" in mismatch.headers) == (400, False)
    assert "invalid_request" in mismatch.text
    assert await still_signed_in(client)
    assert await refresh_works(client, secret, tokens["refresh_token"])
    matching = await client.get(
        "/oauth2/logout",
        params={"id_token_hint": tokens["id_token"], "client_id": "web", "post_logout_redirect_uri": BYE},
    )
    assert (matching.status_code, matching.headers["location"]) == (303, BYE)
    assert not await still_signed_in(client)


async def test_a_hint_ends_the_clients_sessions_without_the_browser_cookie(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """A browser that no longer holds the hosted session's cookie (cleared, or expired) still
    ends, with a valid hint, the sessions the client opened through that browser session: their
    refresh tokens stop working."""
    secret, tokens = await signed_in(app, client)
    client.cookies.clear()
    done = await client.get(
        "/oauth2/logout", params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": BYE}
    )
    assert (done.status_code, done.headers["location"]) == (303, BYE)
    assert not await refresh_works(client, secret, tokens["refresh_token"])
