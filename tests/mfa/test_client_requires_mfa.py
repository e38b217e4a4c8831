"""A client registered with ``require_mfa``: the hosted sign-in demands a second factor for it
(even over a single-factor browser session), an account without a factor is told to enrol, and
no token for the client is issued from a single-factor sign-in (code or refresh)."""

from __future__ import annotations

import httpx
import jwt
from litestar import Litestar

from service.clock import FrozenClock
from service.oidc.authorize import parse_request
from service.sessions import BROWSER_ORIGIN, oidc_origin
from tests.http.test_authorize import CALLBACK, PASSWORD, authorize_url, basic, redeem, setup
from tests.mfa.helpers import code_at
from tests.support.oidc_browser import Pkce, form_fields, query


async def _password(client: httpx.AsyncClient, page: httpx.Response) -> httpx.Response:
    return await client.post(
        "/oauth2/authorize/signin",
        data={**form_fields(page), "email": "ada@example.com", "password": PASSWORD},
    )


async def _through_consent(client: httpx.AsyncClient, page: httpx.Response) -> httpx.Response:
    if 'action="/oauth2/authorize/consent"' in page.text:
        return await client.post("/oauth2/authorize/consent", data={**form_fields(page), "decision": "allow"})
    return page


async def test_a_client_requiring_mfa_asks_for_the_second_factor(
    app: Litestar, client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """No factor: the password gets 403 mfa_enrollment_required on the sign-in page, no redirect.
    After enrolment, a password-only browser session (from a client without the requirement)
    is not enough: the sign-in and the second-factor step are asked again, and the code's
    tokens (ID token verified with PyJWT) carry amr pwd+otp+mfa."""
    runtime, secret = await setup(app, client, require_mfa=True)
    await runtime.clients.register("Plain", "plain", redirect_uris=[CALLBACK])
    pkce = Pkce()
    refused = await _password(client, await client.get(authorize_url(pkce)))
    assert refused.status_code == 403
    assert "location" not in refused.headers
    assert "requires a second factor" in refused.text
    plain = await _through_consent(
        client, await _password(client, await client.get(authorize_url(pkce, client_id="plain")))
    )
    assert plain.status_code == 303, plain.text  # the same account signs in to "plain" with a password
    user = await runtime.accounts.get_by_email("ada@example.com")
    enrolment = await runtime.mfa.enrol_totp(user)
    await runtime.mfa.confirm_totp(user, code_at(enrolment.secret, clock()))
    clock.advance(30)
    again = await client.get(authorize_url(pkce))
    assert again.status_code == 200, again.text  # the single-factor session does not do
    assert 'action="/oauth2/authorize/signin"' in again.text
    second = await _password(client, again)
    assert 'action="/oauth2/authorize/mfa"' in second.text
    done = await _through_consent(
        client,
        await client.post(
            "/oauth2/authorize/mfa", data={**form_fields(second), "code": code_at(enrolment.secret, clock())}
        ),
    )
    assert done.status_code == 303, done.text
    tokens = await redeem(client, query(done.headers["location"])["code"], pkce, secret)
    assert tokens.status_code == 200, tokens.text
    jwks = jwt.PyJWKSet.from_dict((await client.get("/.well-known/jwks.json")).json())
    id_token = tokens.json()["id_token"]
    key = next(k for k in jwks.keys if k.key_id == jwt.get_unverified_header(id_token)["kid"])
    claims = jwt.decode(
        id_token, key.key, algorithms=["RS256"], audience="web", options={"verify_iat": False}
    )
    assert claims["amr"] == ["pwd", "otp", "mfa"]


async def test_no_token_for_the_client_from_a_single_factor_sign_in(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """A code minted from a password-only session for a require_mfa client is refused at the
    token endpoint (invalid_grant, no-store), and so is a password-only refresh family of it
    (e.g. one from before the requirement)."""
    runtime, secret = await setup(app, client, require_mfa=True)
    user = await runtime.accounts.get_by_email("ada@example.com")
    browser = await runtime.sessions.start(user, origin=BROWSER_ORIGIN, amr=("pwd",))
    session = await runtime.sessions.browser_session(browser.refresh_token or "")
    assert session is not None
    web = await runtime.clients.get("web")
    assert web is not None
    pkce = Pkce()
    url_params = dict(httpx.URL(authorize_url(pkce)).params)
    code = await runtime.provider.issue_code(parse_request(web, CALLBACK, url_params), session)
    refused = await redeem(client, code, pkce, secret)
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant")
    assert refused.headers["cache-control"] == "no-store"
    family = await runtime.sessions.start(
        user, origin=oidc_origin(session.id), client_id="web", scope="openid offline_access", amr=("pwd",)
    )
    refresh = await client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": family.refresh_token or ""},
        headers=basic("web", secret),
    )
    assert (refresh.status_code, refresh.json()["error"]) == (400, "invalid_grant")


async def test_signing_up_through_a_client_requiring_mfa_does_not_reach_it(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """An account created on the hosted sign-up page of a require_mfa client has no factor: the
    answer is the sign-in page with 403 mfa_enrollment_required, never a redirect with a code."""
    await setup(app, client, require_mfa=True)
    pkce = Pkce()
    signin = await client.get(authorize_url(pkce))
    request_param = form_fields(signin)["request"]
    form_page = await client.get("/oauth2/authorize/signup", params={"request": request_param})
    assert form_page.status_code == 200, form_page.text
    created = await client.post(
        "/oauth2/authorize/signup",
        data={**form_fields(form_page), "email": "grace@example.com", "password": PASSWORD},
    )
    assert created.status_code == 403, created.text
    assert "location" not in created.headers
    assert "requires a second factor" in created.text


async def test_token_exchange_is_refused_for_a_client_requiring_mfa(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """A foreign token proves no second factor here: RFC 8693 exchange by a require_mfa client is
    400 unauthorized_client before the subject token is even read."""
    runtime = app.state.runtime
    _, secret = await runtime.clients.register("API", "api", require_mfa=True)
    response = await client.post(
        "/oauth2/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": "e30.e30.sig",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        },
        headers=basic("api", secret or ""),
    )
    assert (response.status_code, response.json()["error"]) == (400, "unauthorized_client")
    assert response.headers["cache-control"] == "no-store"
