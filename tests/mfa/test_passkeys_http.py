"""Passkeys over HTTP on both backends, with a software authenticator (cryptography + cbor2):
registration, passwordless and second-factor sign-in, and the refusals — wrong origin, wrong
RP id, replayed challenge, cloned authenticator (sign-count regression), a challenge issued
for another account, no user verification."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.clock import FrozenClock
from tests.mfa.helpers import bearer, claims, code_at, enrol_totp, password_step, signup
from tests.support.authenticator import SoftAuthenticator

Client = httpx.AsyncClient


async def register(
    client: Client, token: str, device: SoftAuthenticator, name: str = "laptop"
) -> dict[str, Any]:
    options = await client.post("/v1/mfa/passkeys/options", headers=bearer(token))
    assert options.status_code == 200, options.text
    ceremony = options.json()
    assert ceremony["options"]["authenticatorSelection"]["userVerification"] == "required"
    assert ceremony["options"]["authenticatorSelection"]["residentKey"] == "required"
    response = await client.post(
        "/v1/mfa/passkeys",
        json={"state": ceremony["state"], "credential": device.create(ceremony["options"]), "name": name},
        headers=bearer(token),
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def passwordless_options(client: Client) -> dict[str, Any]:
    response = await client.post("/v1/login/passkey/options")
    assert response.status_code == 200, response.text
    ceremony: dict[str, Any] = response.json()
    assert ceremony["options"]["allowCredentials"] == []
    assert ceremony["options"]["userVerification"] == "required"
    return ceremony


async def sign_in(client: Client, ceremony: dict[str, Any], credential: dict[str, Any]) -> httpx.Response:
    return await client.post("/v1/login/passkey", json={"state": ceremony["state"], "credential": credential})


async def test_register_then_sign_in_passwordless(client: Client) -> None:
    """A first passkey comes with recovery codes; a passwordless sign-in gets tokens with
    amr [swk, mfa] (synced passkey) and acr phr; the passkey list shows it as used."""
    token = await signup(client)
    device = SoftAuthenticator()
    registered = await register(client, token, device)
    assert len(registered["recovery_codes"]) == 10
    assert (registered["passkey"]["device_type"], registered["passkey"]["backed_up"]) == (
        "multi_device",
        True,
    )
    ceremony = await passwordless_options(client)
    response = await sign_in(client, ceremony, device.get(ceremony["options"]))
    assert response.status_code == 200, response.text
    payload = claims(response.json()["access_token"])
    assert (payload["amr"], payload["acr"]) == (["swk", "mfa"], "phr")
    listed = await client.get("/v1/mfa/passkeys", headers=bearer(token))
    assert [p["name"] for p in listed.json()] == ["laptop"]
    assert listed.json()[0]["last_used_at"] is not None


async def test_several_passkeys_and_a_device_bound_one_says_hwk(client: Client, clock: FrozenClock) -> None:
    """Two passkeys on one account (listed oldest first), the second not recovery-coded again;
    a device-bound key (no backup eligibility) yields amr hwk."""
    token = await signup(client)
    await register(client, token, SoftAuthenticator())
    clock.advance(1)
    bound = SoftAuthenticator(synced=False)
    second = await register(client, token, bound, "security key")
    assert second["recovery_codes"] == []
    assert second["passkey"]["device_type"] == "single_device"
    ceremony = await passwordless_options(client)
    response = await sign_in(client, ceremony, bound.get(ceremony["options"]))
    assert claims(response.json()["access_token"])["amr"] == ["hwk", "mfa"]
    listed = await client.get("/v1/mfa/passkeys", headers=bearer(token))
    assert [p["name"] for p in listed.json()] == ["laptop", "security key"]


async def test_passkey_as_second_factor(client: Client, clock: FrozenClock) -> None:
    """After the password step, the options list the account's passkeys and the assertion
    completes the sign-in with amr pwd+swk+mfa."""
    token = await signup(client)
    device = SoftAuthenticator()
    await register(client, token, device)
    step = await password_step(client)
    assert "passkey" in step["methods"]
    options = await client.post("/v1/login/passkey/options", json={"mfa_token": step["mfa_token"]})
    ceremony = options.json()
    assert len(ceremony["options"]["allowCredentials"]) == 1
    response = await client.post(
        "/v1/login/passkey",
        json={
            "state": ceremony["state"],
            "credential": device.get(ceremony["options"]),
            "mfa_token": step["mfa_token"],
        },
    )
    assert response.status_code == 200, response.text
    assert claims(response.json()["access_token"])["amr"] == ["pwd", "swk", "mfa"]


@pytest.mark.parametrize(
    ("origin", "rp_id"),
    [("https://evil.example", None), (None, "evil.example")],
    ids=["wrong-origin", "wrong-rp-id"],
)
async def test_wrong_origin_or_rp_id_is_refused(
    client: Client, origin: str | None, rp_id: str | None
) -> None:
    """An assertion made for another origin or RP id is 401 invalid_passkey, at registration
    and at sign-in."""
    token = await signup(client)
    device = SoftAuthenticator()
    options = (await client.post("/v1/mfa/passkeys/options", headers=bearer(token))).json()
    bad = await client.post(
        "/v1/mfa/passkeys",
        json={
            "state": options["state"],
            "credential": device.create(options["options"], origin=origin, rp_id=rp_id),
        },
        headers=bearer(token),
    )
    assert (bad.status_code, bad.json()["error"]) == (401, "invalid_passkey")
    await register(client, token, device)
    ceremony = await passwordless_options(client)
    response = await sign_in(client, ceremony, device.get(ceremony["options"], origin=origin, rp_id=rp_id))
    assert (response.status_code, response.json()["error"]) == (401, "invalid_passkey")


async def test_a_challenge_is_single_use(client: Client) -> None:
    """The same state and assertion sent twice: the second is refused (and so is a fresh
    assertion on the spent challenge)."""
    token = await signup(client)
    device = SoftAuthenticator()
    await register(client, token, device)
    ceremony = await passwordless_options(client)
    assertion = device.get(ceremony["options"])
    assert (await sign_in(client, ceremony, assertion)).status_code == 200
    replayed = await sign_in(client, ceremony, assertion)
    assert (replayed.status_code, replayed.json()["error"]) == (401, "invalid_passkey")
    fresh = await sign_in(client, ceremony, device.get(ceremony["options"]))
    assert fresh.status_code == 401


async def test_a_challenge_expires(client: Client, clock: FrozenClock) -> None:
    """A ceremony older than the ticket lifetime (300 s) is refused."""
    token = await signup(client)
    device = SoftAuthenticator()
    await register(client, token, device)
    ceremony = await passwordless_options(client)
    clock.advance(301)
    response = await sign_in(client, ceremony, device.get(ceremony["options"]))
    assert response.status_code == 401


async def test_a_cloned_authenticator_is_refused(client: Client) -> None:
    """Once the counter reached 5, an assertion with counter 3 (a clone's) is refused and the
    stored counter stays; the genuine device continues."""
    token = await signup(client)
    device = SoftAuthenticator()
    await register(client, token, device)
    ceremony = await passwordless_options(client)
    assert (await sign_in(client, ceremony, device.get(ceremony["options"], counter=5))).status_code == 200
    ceremony = await passwordless_options(client)
    clone = await sign_in(client, ceremony, device.get(ceremony["options"], counter=3))
    assert (clone.status_code, clone.json()["error"]) == (401, "invalid_passkey")
    ceremony = await passwordless_options(client)
    assert (await sign_in(client, ceremony, device.get(ceremony["options"], counter=6))).status_code == 200


async def test_a_challenge_from_another_account_is_refused(client: Client) -> None:
    """Bob's registration state cannot register a passkey on Ada's account, and a second-factor
    ceremony issued for Ada cannot be answered with Bob's passkey."""
    ada, bob = await signup(client, "ada@example.com"), await signup(client, "bob@example.com")
    bob_options = (await client.post("/v1/mfa/passkeys/options", headers=bearer(bob))).json()
    stolen = await client.post(
        "/v1/mfa/passkeys",
        json={
            "state": bob_options["state"],
            "credential": SoftAuthenticator().create(bob_options["options"]),
        },
        headers=bearer(ada),
    )
    assert (stolen.status_code, stolen.json()["error"]) == (401, "invalid_passkey")
    await register(client, ada, SoftAuthenticator())
    bob_device = SoftAuthenticator()
    await register(client, bob, bob_device)
    step = await password_step(client, "ada@example.com")
    ceremony = (await client.post("/v1/login/passkey/options", json={"mfa_token": step["mfa_token"]})).json()
    response = await client.post(
        "/v1/login/passkey",
        json={
            "state": ceremony["state"],
            "credential": bob_device.get(ceremony["options"]),
            "mfa_token": step["mfa_token"],
        },
    )
    assert (response.status_code, response.json()["error"]) == (401, "invalid_passkey")


async def test_user_verification_is_required(client: Client) -> None:
    """An authenticator that only tests presence (UV flag clear) is refused."""
    token = await signup(client)
    device = SoftAuthenticator()
    await register(client, token, device)
    device.user_verified = False
    ceremony = await passwordless_options(client)
    response = await sign_in(client, ceremony, device.get(ceremony["options"]))
    assert response.status_code == 401


async def test_removing_a_passkey_needs_a_fresh_factor(client: Client, clock: FrozenClock) -> None:
    """Without a code: 403; with a TOTP code: 204, and the passkey no longer signs in."""
    token = await signup(client)
    device = SoftAuthenticator()
    passkey = (await register(client, token, device))["passkey"]
    secret, _ = await enrol_totp(client, token, clock)
    refused = await client.request(
        "DELETE", f"/v1/mfa/passkeys/{passkey['id']}", json={}, headers=bearer(token)
    )
    assert (refused.status_code, refused.json()["error"]) == (403, "fresh_factor_required")
    clock.advance(30)
    removed = await client.request(
        "DELETE",
        f"/v1/mfa/passkeys/{passkey['id']}",
        json={"code": code_at(secret, clock())},
        headers=bearer(token),
    )
    assert removed.status_code == 204, removed.text
    ceremony = await passwordless_options(client)
    assert (await sign_in(client, ceremony, device.get(ceremony["options"]))).status_code == 401


async def test_a_passkey_assertion_is_the_fresh_factor_for_removing_a_passkey(client: Client) -> None:
    """A passkey-only account removes a passkey with an assertion of its own passkey (no recovery
    code spent); an assertion of another account's passkey, or a replayed one, is refused."""
    token = await signup(client)
    device, spare = SoftAuthenticator(), SoftAuthenticator()
    first = (await register(client, token, device))["passkey"]
    second = (await register(client, token, spare, "phone"))["passkey"]
    other = await signup(client, "bob@example.com")
    stranger = SoftAuthenticator()
    await register(client, other, stranger)

    async def assertion(by: SoftAuthenticator, owner: str) -> dict[str, Any]:
        options = await client.post("/v1/mfa/passkeys/assertion-options", headers=bearer(owner))
        assert options.status_code == 200, options.text
        ceremony = options.json()
        return {"state": ceremony["state"], "credential": by.get(ceremony["options"])}

    foreign = await assertion(stranger, other)
    refused = await client.request(
        "DELETE", f"/v1/mfa/passkeys/{first['id']}", json={"passkey": foreign}, headers=bearer(token)
    )
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_passkey")
    own = await assertion(device, token)
    removed = await client.request(
        "DELETE", f"/v1/mfa/passkeys/{first['id']}", json={"passkey": own}, headers=bearer(token)
    )
    assert removed.status_code == 204, removed.text
    replayed = await client.request(
        "DELETE", f"/v1/mfa/passkeys/{second['id']}", json={"passkey": own}, headers=bearer(token)
    )
    assert (replayed.status_code, replayed.json()["error"]) == (401, "invalid_passkey")
    factors = (await client.get("/v1/mfa", headers=bearer(token))).json()
    assert (factors["passkeys"], factors["recovery_codes_left"]) == (1, 10)
