"""TOTP enrolment, the two-step sign-in and recovery codes over HTTP, on both backends,
with the injected clock (no sleeping): window edges, drift, replay, single-use codes."""

from __future__ import annotations

import httpx
import pyotp
import pytest
from litestar import Litestar

from service.clock import FrozenClock
from service.runtime import Runtime
from tests.mfa.helpers import bearer, claims, code_at, enrol_totp, password_step, signup

Client = httpx.AsyncClient


async def test_enrolment_gives_secret_uri_and_svg_and_is_inactive_until_confirmed(
    client: Client, clock: FrozenClock
) -> None:
    """The URI is a valid otpauth URI for the secret (parsed by pyotp), the QR code is SVG; before
    confirmation a password sign-in still gets tokens, and a wrong first code is refused."""
    token = await signup(client)
    started = await client.post("/v1/mfa/totp", headers=bearer(token))
    assert started.status_code == 201
    assert started.headers["cache-control"] == "no-store"
    body = started.json()
    parsed = pyotp.parse_uri(body["otpauth_uri"])
    assert isinstance(parsed, pyotp.TOTP)
    assert (parsed.secret, parsed.name, parsed.issuer) == (body["secret"], "ada@example.com", "127.0.0.1")
    assert body["qr_svg"].startswith("<svg")
    assert body["qr_svg"].rstrip().endswith("</svg>")
    login = await client.post(
        "/v1/login", json={"email": "ada@example.com", "password": "correct horse battery"}
    )
    assert login.status_code == 200
    wrong = await client.post("/v1/mfa/totp/confirm", json={"code": "000000"}, headers=bearer(token))
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_code")
    good = code_at(body["secret"], clock())
    confirmed = await client.post("/v1/mfa/totp/confirm", json={"code": good}, headers=bearer(token))
    assert confirmed.status_code == 200
    codes = confirmed.json()["recovery_codes"]
    assert len(codes) == 10
    assert len(set(codes)) == 10
    again = await client.post("/v1/mfa/totp", headers=bearer(token))
    assert (again.status_code, again.json()["error"]) == (409, "factor_exists")


async def test_login_needs_the_second_factor_and_tokens_say_so(client: Client, clock: FrozenClock) -> None:
    """``/v1/login`` answers 401 mfa_required with a ticket, no tokens; ``/v1/login/mfa`` with a
    code answers tokens whose ``amr`` is pwd+otp+mfa and ``acr`` mfa — after a refresh too."""
    secret, _ = await enrol_totp(client, await signup(client), clock)
    clock.advance(60)
    step = await password_step(client)
    assert set(step) == {"error", "error_description", "mfa_token", "methods", "expires_in"}
    assert step["methods"] == ["totp", "recovery_code"]
    assert step["expires_in"] == 300
    done = await client.post(
        "/v1/login/mfa", json={"mfa_token": step["mfa_token"], "code": code_at(secret, clock())}
    )
    assert done.status_code == 200, done.text
    assert done.headers["cache-control"] == "no-store"
    tokens = done.json()
    payload = claims(tokens["access_token"])
    assert (payload["amr"], payload["acr"]) == (["pwd", "otp", "mfa"], "mfa")
    refreshed = await client.post(
        "/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    assert claims(refreshed.json()["access_token"])["amr"] == ["pwd", "otp", "mfa"]


async def test_a_password_only_sign_in_says_pwd(client: Client) -> None:
    """Without a factor, tokens carry amr ["pwd"] and acr 1fa."""
    token = await signup(client)
    assert (claims(token)["amr"], claims(token)["acr"]) == (["pwd"], "1fa")


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [(-31, False), (-30, True), (-1, True), (0, True), (29, True), (30, True), (59, True), (60, False)],
    ids=[
        "2-steps-old",
        "1-step-old-start",
        "1-step-old-end",
        "now",
        "now-end",
        "next-step",
        "next-end",
        "2-ahead",
    ],
)
async def test_window_is_one_step_either_way(
    client: Client, clock: FrozenClock, offset: int, accepted: bool
) -> None:
    """A code generated at ``now + offset`` seconds is accepted iff its step is within ±1 of now
    (clock at the start of a step: START is a multiple of 30)."""
    secret, _ = await enrol_totp(client, await signup(client), clock)
    clock.advance(300)
    step = await password_step(client)
    code = code_at(secret, clock() + offset)
    response = await client.post("/v1/login/mfa", json={"mfa_token": step["mfa_token"], "code": code})
    assert response.status_code == (200 if accepted else 401), response.text


async def test_a_code_is_accepted_once(client: Client, clock: FrozenClock) -> None:
    """The same code on a second sign-in within its window is refused; the next step's code works."""
    secret, _ = await enrol_totp(client, await signup(client), clock)
    clock.advance(120)
    code = code_at(secret, clock())
    first = await client.post(
        "/v1/login/mfa", json={"mfa_token": (await password_step(client))["mfa_token"], "code": code}
    )
    assert first.status_code == 200
    second = await client.post(
        "/v1/login/mfa", json={"mfa_token": (await password_step(client))["mfa_token"], "code": code}
    )
    assert (second.status_code, second.json()["error"]) == (401, "invalid_code")
    clock.advance(30)
    third = await client.post(
        "/v1/login/mfa",
        json={"mfa_token": (await password_step(client))["mfa_token"], "code": code_at(secret, clock())},
    )
    assert third.status_code == 200


async def test_an_older_unused_code_is_refused_after_a_newer_one(client: Client, clock: FrozenClock) -> None:
    """RFC 6238 §5.2 across steps: once the current step's code was accepted, the previous step's
    code (never used, still inside the ±1 window) is refused; the next step's code still works."""
    secret, _ = await enrol_totp(client, await signup(client), clock)
    clock.advance(120)
    newer = await client.post(
        "/v1/login/mfa",
        json={"mfa_token": (await password_step(client))["mfa_token"], "code": code_at(secret, clock())},
    )
    assert newer.status_code == 200
    older = await client.post(
        "/v1/login/mfa",
        json={"mfa_token": (await password_step(client))["mfa_token"], "code": code_at(secret, clock() - 30)},
    )
    assert (older.status_code, older.json()["error"]) == (401, "invalid_code")
    ahead = await client.post(
        "/v1/login/mfa",
        json={"mfa_token": (await password_step(client))["mfa_token"], "code": code_at(secret, clock() + 30)},
    )
    assert ahead.status_code == 200


async def test_the_mfa_token_is_single_use_and_expires(client: Client, clock: FrozenClock) -> None:
    """A spent ticket is refused even with a fresh code; an expired one too; a forged one too."""
    secret, _ = await enrol_totp(client, await signup(client), clock)
    clock.advance(60)
    ticket = (await password_step(client))["mfa_token"]
    assert (
        await client.post("/v1/login/mfa", json={"mfa_token": ticket, "code": code_at(secret, clock())})
    ).status_code == 200
    clock.advance(30)
    reused = await client.post("/v1/login/mfa", json={"mfa_token": ticket, "code": code_at(secret, clock())})
    assert (reused.status_code, reused.json()["error"]) == (401, "invalid_mfa_token")
    late = (await password_step(client))["mfa_token"]
    clock.advance(301)
    expired = await client.post("/v1/login/mfa", json={"mfa_token": late, "code": code_at(secret, clock())})
    assert (expired.status_code, expired.json()["error"]) == (401, "invalid_mfa_token")
    forged = await client.post("/v1/login/mfa", json={"mfa_token": late[:-4] + "AAAA", "code": "123456"})
    assert (forged.status_code, forged.json()["error"]) == (401, "invalid_mfa_token")


async def test_failed_codes_are_rate_limited_per_account(client: Client, clock: FrozenClock) -> None:
    """Five wrong codes spend the account's budget: the sixth attempt, even with the right code,
    is 429 with Retry-After; the budget refills with time."""
    secret, _ = await enrol_totp(client, await signup(client), clock)
    clock.advance(60)
    ticket = (await password_step(client))["mfa_token"]
    for _ in range(5):
        wrong = await client.post("/v1/login/mfa", json={"mfa_token": ticket, "code": "000000"})
        assert wrong.status_code == 401
    limited = await client.post("/v1/login/mfa", json={"mfa_token": ticket, "code": code_at(secret, clock())})
    assert (limited.status_code, limited.json()["error"]) == (429, "rate_limited")
    assert int(limited.headers["retry-after"]) > 0
    clock.advance(120)
    ticket = (await password_step(client))["mfa_token"]
    ok = await client.post("/v1/login/mfa", json={"mfa_token": ticket, "code": code_at(secret, clock())})
    assert ok.status_code == 200


async def test_recovery_codes_are_single_use_and_mailed(
    client: Client, clock: FrozenClock, app: Litestar
) -> None:
    """A recovery code completes a sign-in once (any case, with or without the dash); its use
    puts a notice (no code in it) in the outbox for the account."""
    _, codes = await enrol_totp(client, await signup(client), clock)
    code = codes[3]
    first = await client.post(
        "/v1/login/mfa",
        json={"mfa_token": (await password_step(client))["mfa_token"], "code": code.upper().replace("-", "")},
    )
    assert first.status_code == 200
    assert claims(first.json()["access_token"])["amr"] == ["pwd", "otp", "mfa"]
    again = await client.post(
        "/v1/login/mfa", json={"mfa_token": (await password_step(client))["mfa_token"], "code": code}
    )
    assert again.status_code == 401
    runtime: Runtime = app.state.runtime
    mails = [m for m in await runtime.outbox.list_mail(None, 10) if m.kind != "verify_email"]  # signup's link
    assert [(m.kind, m.recipient) for m in mails] == [("mfa_recovery_code_used", "ada@example.com")]
    assert all(c not in (mails[0].text_body or "") for c in codes)
    assert "9 unused codes left" in (mails[0].text_body or "")
    view = await client.get("/v1/mfa", headers=bearer(first.json()["access_token"]))
    assert view.json()["recovery_codes_left"] == 9


async def test_regenerating_codes_needs_a_fresh_factor_and_invalidates_the_old_set(
    client: Client, clock: FrozenClock
) -> None:
    """Without a code: 403 fresh_factor_required. With a TOTP code: ten new codes; an old unused
    code no longer works, a new one does."""
    token = await signup(client)
    secret, old = await enrol_totp(client, token, clock)
    refused = await client.post("/v1/mfa/recovery-codes", json={}, headers=bearer(token))
    assert (refused.status_code, refused.json()["error"]) == (403, "fresh_factor_required")
    clock.advance(30)
    fresh = await client.post(
        "/v1/mfa/recovery-codes", json={"code": code_at(secret, clock())}, headers=bearer(token)
    )
    assert fresh.status_code == 200
    new = fresh.json()["recovery_codes"]
    assert len(new) == 10
    assert not set(new) & set(old)
    stale = await client.post(
        "/v1/login/mfa", json={"mfa_token": (await password_step(client))["mfa_token"], "code": old[0]}
    )
    assert stale.status_code == 401
    ok = await client.post(
        "/v1/login/mfa", json={"mfa_token": (await password_step(client))["mfa_token"], "code": new[0]}
    )
    assert ok.status_code == 200


async def test_removing_totp_needs_a_fresh_factor(client: Client, clock: FrozenClock) -> None:
    """A Bearer token alone cannot remove the authenticator; with a recovery code it can, and
    password sign-ins then get tokens again (the remaining codes do not gate a sign-in)."""
    token = await signup(client)
    _, codes = await enrol_totp(client, token, clock)
    refused = await client.request("DELETE", "/v1/mfa/totp", json={"code": "000000"}, headers=bearer(token))
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_code")
    removed = await client.request("DELETE", "/v1/mfa/totp", json={"code": codes[0]}, headers=bearer(token))
    assert removed.status_code == 204, removed.text
    login = await client.post(
        "/v1/login", json={"email": "ada@example.com", "password": "correct horse battery"}
    )
    assert login.status_code == 200


async def test_a_ticket_is_for_its_own_account(client: Client, clock: FrozenClock) -> None:
    """Bob's code cannot complete Ada's sign-in (the ticket names the account)."""
    await enrol_totp(client, await signup(client, "ada@example.com"), clock)
    bob_secret, _ = await enrol_totp(client, await signup(client, "bob@example.com"), clock)
    clock.advance(60)
    ticket = (await password_step(client, "ada@example.com"))["mfa_token"]
    response = await client.post(
        "/v1/login/mfa", json={"mfa_token": ticket, "code": code_at(bob_secret, clock())}
    )
    assert response.status_code == 401


async def test_a_password_ticket_cannot_enrol_a_factor_on_a_protected_account(
    client: Client, clock: FrozenClock
) -> None:
    """With a factor enrolled, the mfa_token of a password step (all an attacker with the
    password has) cannot start an enrolment: that would skip the second factor."""
    token = await signup(client)
    await enrol_totp(client, token, clock)
    ticket = (await password_step(client))["mfa_token"]
    response = await client.post("/v1/mfa/totp", headers={"X-MFA-Token": ticket})
    assert (response.status_code, response.json()["error"]) == (401, "invalid_mfa_token")
