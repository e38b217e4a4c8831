"""The hosted sign-in's second-factor step (identify → authenticate → second factor → consent
→ redirect), the ID token's ``amr``/``acr`` read with PyJWT against our JWKS, and step-up with
``acr_values``."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jwt
from litestar import Litestar

from service.clock import FrozenClock
from service.runtime import Runtime
from tests.http.test_authorize import ISSUER, PASSWORD, authorize_url, redeem, setup
from tests.mfa.helpers import code_at
from tests.support.authenticator import SoftAuthenticator
from tests.support.oidc_browser import Pkce, form_fields, query


async def _totp_for_ada(runtime: Runtime, clock: FrozenClock) -> str:
    user = await runtime.accounts.get_by_email("ada@example.com")
    enrolment = await runtime.mfa.enrol_totp(user)
    await runtime.mfa.confirm_totp(user, code_at(enrolment.secret, clock()))
    clock.advance(30)
    return enrolment.secret


async def _id_token_claims(client: httpx.AsyncClient, id_token: str) -> dict[str, Any]:
    jwks = jwt.PyJWKSet.from_dict((await client.get("/.well-known/jwks.json")).json())
    header = jwt.get_unverified_header(id_token)
    key = next(k for k in jwks.keys if k.key_id == header["kid"])
    claims: dict[str, Any] = jwt.decode(
        id_token,
        key.key,
        algorithms=[header["alg"]],
        audience="web",
        issuer=ISSUER,
        options={"verify_iat": False},
    )
    return claims


async def _password_page(client: httpx.AsyncClient, url: str) -> httpx.Response:
    page = await client.get(url)
    assert 'action="/oauth2/authorize/signin"' in page.text
    return await client.post(
        "/oauth2/authorize/signin",
        data={**form_fields(page), "email": "ada@example.com", "password": PASSWORD},
    )


async def test_hosted_sign_in_asks_for_the_second_factor_and_the_id_token_says_so(
    app: Litestar, client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """Password → the second-factor page (no redirect yet, no session cookie); a wrong code shows
    the page again with the error; the right code → consent → code → ID token and access token
    with amr pwd+otp+mfa and acr mfa."""
    runtime, secret = await setup(app, client)
    totp_secret = await _totp_for_ada(runtime, clock)
    pkce = Pkce()
    second = await _password_page(client, authorize_url(pkce))
    assert second.status_code == 200
    assert 'action="/oauth2/authorize/mfa"' in second.text
    assert "location" not in second.headers
    wrong = await client.post("/oauth2/authorize/mfa", data={**form_fields(second), "code": "000000"})
    assert wrong.status_code == 401
    assert 'action="/oauth2/authorize/mfa"' in wrong.text
    page = await client.post(
        "/oauth2/authorize/mfa", data={**form_fields(wrong), "code": code_at(totp_secret, clock())}
    )
    if 'action="/oauth2/authorize/consent"' in page.text:
        page = await client.post("/oauth2/authorize/consent", data={**form_fields(page), "decision": "allow"})
    assert page.status_code == 303, page.text
    tokens = await redeem(client, query(page.headers["location"])["code"], pkce, secret)
    assert tokens.status_code == 200, tokens.text
    claims = await _id_token_claims(client, tokens.json()["id_token"])
    assert (claims["amr"], claims["acr"]) == (["pwd", "otp", "mfa"], "mfa")
    access = jwt.decode(tokens.json()["access_token"], options={"verify_signature": False})
    assert (access["amr"], access["acr"]) == (["pwd", "otp", "mfa"], "mfa")


async def test_acr_values_step_up_signs_a_weaker_session_in_again(
    app: Litestar, client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """A browser session signed in with the password alone (before enrolment) is reused for a
    plain request, but acr_values=mfa sends the user through the sign-in again, now with the
    second factor, and the code's ID token says acr mfa. Discovery lists the values."""
    runtime, secret = await setup(app, client)
    pkce = Pkce()
    page = await _password_page(client, authorize_url(pkce))
    if 'action="/oauth2/authorize/consent"' in page.text:
        page = await client.post("/oauth2/authorize/consent", data={**form_fields(page), "decision": "allow"})
    assert page.status_code == 303
    totp_secret = await _totp_for_ada(runtime, clock)
    plain = await client.get(authorize_url(pkce))
    assert plain.status_code == 303  # the existing session is enough without acr_values
    second = await _password_page(client, authorize_url(pkce, acr_values="mfa"))
    assert 'action="/oauth2/authorize/mfa"' in second.text
    done = await client.post(
        "/oauth2/authorize/mfa", data={**form_fields(second), "code": code_at(totp_secret, clock())}
    )
    assert done.status_code == 303, done.text
    tokens = await redeem(client, query(done.headers["location"])["code"], pkce, secret)
    claims = await _id_token_claims(client, tokens.json()["id_token"])
    assert claims["acr"] == "mfa"
    discovery = (await client.get("/.well-known/openid-configuration")).json()
    assert discovery["acr_values_supported"] == ["1fa", "mfa", "phr"]
    assert {"amr", "acr"} <= set(discovery["claims_supported"])


async def test_a_bad_passkey_post_shows_the_sign_in_page_again(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """The hosted passkey form with a malformed or forged assertion: the sign-in page with the
    error (401), never a redirect and never a 500."""
    await setup(app, client)
    page = await client.get(authorize_url(Pkce()))
    assert 'id="passkey-signin"' in page.text
    fields = form_fields(page)
    for credential in ("not json", "[1]", '{"id": "AAAA", "response": {}}'):
        response = await client.post(
            "/oauth2/authorize/passkey", data={**fields, "state": "x", "credential": credential}
        )
        assert (response.status_code, "location" in response.headers) == (401, False)
        assert 'action="/oauth2/authorize/signin"' in response.text


async def test_a_passkey_as_the_hosted_second_step(app: Litestar, client: httpx.AsyncClient) -> None:
    """Password → the second-factor page (with the passkey form, scripts from our origin only)
    → an assertion of Ada's passkey for the ticket's options → redirect; the code's ID token
    says amr pwd+swk+mfa, acr phr. A forged assertion shows the page again."""
    runtime, secret = await setup(app, client)
    user = await runtime.accounts.get_by_email("ada@example.com")
    device = SoftAuthenticator()
    ceremony = await runtime.mfa.passkeys.registration(user)
    await runtime.mfa.register_passkey(user, ceremony.state, device.create(ceremony.options), "laptop")
    pkce = Pkce()
    second = await _password_page(client, authorize_url(pkce))
    assert 'action="/oauth2/authorize/mfa/passkey"' in second.text
    assert "script-src 'self';" in second.headers["content-security-policy"]
    fields = form_fields(second)
    options = (await client.post("/v1/login/passkey/options", json={"mfa_token": fields["mfa_token"]})).json()
    forged = await client.post(
        "/oauth2/authorize/mfa/passkey",
        data={**fields, "state": options["state"], "credential": '{"id": "AA"}'},
    )
    assert (forged.status_code, 'action="/oauth2/authorize/mfa"' in forged.text) == (401, True)
    options = (await client.post("/v1/login/passkey/options", json={"mfa_token": fields["mfa_token"]})).json()
    assertion = json.dumps(device.get(options["options"]))
    done = await client.post(
        "/oauth2/authorize/mfa/passkey", data={**fields, "state": options["state"], "credential": assertion}
    )
    if 'action="/oauth2/authorize/consent"' in done.text:
        done = await client.post("/oauth2/authorize/consent", data={**form_fields(done), "decision": "allow"})
    assert done.status_code == 303, done.text
    tokens = await redeem(client, query(done.headers["location"])["code"], pkce, secret)
    claims = await _id_token_claims(client, tokens.json()["id_token"])
    assert (claims["amr"], claims["acr"]) == (["pwd", "swk", "mfa"], "phr")
