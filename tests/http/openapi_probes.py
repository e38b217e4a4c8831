"""Shared parts of the OpenAPI response-code probes (tests/http/test_openapi_responses.py), and
the probes of the account, lifecycle, userinfo and MFA operations."""

from __future__ import annotations

import email
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pyotp

from service.config import Settings
from service.runtime import Runtime
from tests.support.authenticator import SoftAuthenticator

PASSWORD = "correct horse battery"
PUBLIC = "https://id.example.com"
LINK = re.compile(r"https://id\.example\.com/account/reset\?token=([A-Za-z0-9_-]+)")
MAX_BODY = 4096
METRICS_TOKEN = "m" * 40
JSON = {"content-type": "application/json"}
TOO_LARGE: dict[str, Any] = {"content": b'{"a": "' + b"a" * MAX_BODY + b'"}', "headers": JSON}
NOT_JSON: dict[str, Any] = {"content": b"{", "headers": JSON}
AS_TEXT: dict[str, Any] = {"content": b"hello", "headers": {"content-type": "text/plain"}}

Operation = tuple[str, str]
Observed = dict[Operation, set[int]]
MakeSettings = Callable[..., Settings]


class Probe:
    """Sends one request for an operation, checks its status and records it."""

    def __init__(self, http: httpx.AsyncClient, observed: Observed) -> None:
        self.http = http
        self.observed = observed

    async def __call__(
        self, expected: int, method: str, path: str, url: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        response = await self.http.request(method, url or path, **kwargs)
        assert response.status_code == expected, f"{method} {url or path}: {response.text}"
        self.observed[method, path].add(expected)
        return response


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


MAILED = re.compile(r"https://id\.example\.com/account/(\w+)\?token=([A-Za-z0-9_-]+)")
NOW = 1_800_000_000.0


async def mailed_tokens(runtime: Runtime, outbox: Path) -> dict[str, str]:
    """The links in the mail sent so far (then removed), by the page they open."""
    await runtime.background.settle()
    while await runtime.mail_worker.run_once():
        pass
    tokens = {}
    for path in outbox.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes())
        text = next(part for part in message.walk() if part.get_content_type() == "text/plain")
        payload = text.get_payload(decode=True)
        assert isinstance(payload, bytes)
        tokens.update(dict(MAILED.findall(payload.decode())))
        path.unlink()
    return tokens


async def bodies(probe: Probe, method: str, path: str, url: str | None = None, **headers: str) -> None:
    """A body that is not JSON (400), not JSON at all (415) and over the limit (413)."""
    for expected, body in ((400, NOT_JSON), (415, AS_TEXT), (413, TOO_LARGE)):
        await probe(expected, method, path, url, content=body["content"], headers=headers | body["headers"])


async def account_answers(probe: Probe, runtime: Runtime, outbox: Path) -> None:
    """Profile, deletion, verification and email change by mail, and userinfo."""
    await mailed_tokens(runtime, outbox)
    credentials = {"email": "erin@example.com", "password": PASSWORD}
    tokens = (await probe(201, "POST", "/v1/signup", json=credentials)).json()["tokens"]
    auth = bearer(tokens["access_token"])
    await probe(200, "PATCH", "/v1/me", json={"name": "Erin"}, headers=auth)
    await probe(401, "PATCH", "/v1/me", json={"name": "Erin"})
    await bodies(probe, "PATCH", "/v1/me", **auth)

    verify = (await mailed_tokens(runtime, outbox))["verify"]
    await probe(400, "POST", "/v1/email/verify", json={"token": "x" * 43})
    await bodies(probe, "POST", "/v1/email/verify")
    await probe(204, "POST", "/v1/email/verify", json={"token": verify})
    await probe(202, "POST", "/v1/email/verify/resend", json={"email": "erin@example.com"})
    await bodies(probe, "POST", "/v1/email/verify/resend")

    change = {"new_email": "erin2@example.com", "current_password": PASSWORD}
    await probe(202, "POST", "/v1/me/email", json=change, headers=auth)
    await probe(401, "POST", "/v1/me/email", json=change)
    await probe(
        401, "POST", "/v1/me/email", json={**change, "current_password": "wrong horse battery"}, headers=auth
    )
    await probe(422, "POST", "/v1/me/email", json={**change, "new_email": "not an address"}, headers=auth)
    await bodies(probe, "POST", "/v1/me/email", **auth)
    confirm = (await mailed_tokens(runtime, outbox))["email"]
    await probe(400, "POST", "/v1/email/change/confirm", json={"token": "x" * 43})
    await bodies(probe, "POST", "/v1/email/change/confirm")
    await probe(201, "POST", "/v1/signup", json={**credentials, "email": "erin2@example.com"})
    await probe(409, "POST", "/v1/email/change/confirm", json={"token": confirm})
    await probe(202, "POST", "/v1/me/email", json={**change, "new_email": "erin3@example.com"}, headers=auth)
    confirm = (await mailed_tokens(runtime, outbox))["email"]
    await probe(204, "POST", "/v1/email/change/confirm", json={"token": confirm})

    login = {"email": "erin3@example.com", "password": PASSWORD}
    fresh = (await probe(200, "POST", "/v1/login", json=login)).json()
    auth = bearer(fresh["access_token"])
    session = runtime.access_tokens.verify(fresh["access_token"])
    openid = runtime.access_tokens.issue(  # what the code flow gives a relying party
        subject=session.sub, email=None, roles=(), sid=session.sid, client_id="rp", scope="openid email"
    ).token
    for method in ("GET", "POST"):
        await probe(200, method, "/oauth2/userinfo", headers=bearer(openid))
        await probe(403, method, "/oauth2/userinfo", headers=auth)  # no openid scope
        await probe(401, method, "/oauth2/userinfo")
        await probe(401, method, "/oauth2/userinfo", headers=bearer("not.a.token"))
    await probe(200, "POST", "/oauth2/userinfo", data={"access_token": openid})
    await probe(413, "POST", "/oauth2/userinfo", data={"access_token": "a" * MAX_BODY})

    deletion = {"current_password": PASSWORD}
    await probe(401, "DELETE", "/v1/me", json=deletion)
    await probe(401, "DELETE", "/v1/me", json={"current_password": "wrong horse battery"}, headers=auth)
    await bodies(probe, "DELETE", "/v1/me", **auth)
    await probe(204, "DELETE", "/v1/me", json=deletion, headers=auth)
    await probe(401, "GET", "/oauth2/userinfo", headers=auth)


async def mfa_answers(probe: Probe) -> None:
    """TOTP, recovery codes, passkeys and the second step of a sign-in."""
    credentials = {"email": "frank@example.com", "password": PASSWORD}
    auth = bearer((await probe(201, "POST", "/v1/signup", json=credentials)).json()["tokens"]["access_token"])
    await probe(200, "GET", "/v1/mfa", headers=auth)
    await probe(401, "GET", "/v1/mfa")
    await probe(401, "POST", "/v1/mfa/totp")
    secret = (await probe(201, "POST", "/v1/mfa/totp", headers=auth)).json()["secret"]
    confirm = "/v1/mfa/totp/confirm"
    await probe(401, "POST", confirm, json={"code": "000000"}, headers=auth)
    await probe(401, "POST", confirm, json={"code": "000000"})
    await bodies(probe, "POST", confirm, **auth)
    codes = (await probe(200, "POST", confirm, json={"code": code_at(secret)}, headers=auth)).json()
    await probe(409, "POST", "/v1/mfa/totp", headers=auth)
    await probe(409, "POST", confirm, json={"code": code_at(secret)}, headers=auth)

    regenerate = "/v1/mfa/recovery-codes"
    await probe(401, "POST", regenerate, json={})
    await probe(403, "POST", regenerate, json={}, headers=auth)
    await probe(401, "POST", regenerate, json={"code": "000000"}, headers=auth)
    await bodies(probe, "POST", regenerate, **auth)
    fresh = {"code": codes["recovery_codes"][0]}
    spare = (await probe(200, "POST", regenerate, json=fresh, headers=auth)).json()["recovery_codes"]

    ticket = (await probe(401, "POST", "/v1/login", json=credentials)).json()["mfa_token"]
    await probe(401, "POST", "/v1/login/mfa", json={"mfa_token": ticket, "code": "000000"})
    await probe(401, "POST", "/v1/login/mfa", json={"mfa_token": "forged", "code": "000000"})
    await bodies(probe, "POST", "/v1/login/mfa")
    await probe(200, "POST", "/v1/login/mfa", json={"mfa_token": ticket, "code": spare[0]})

    device = SoftAuthenticator(origin=PUBLIC, rp_id="id.example.com")
    await probe(401, "POST", "/v1/mfa/passkeys/options")
    ceremony = (await probe(200, "POST", "/v1/mfa/passkeys/options", headers=auth)).json()
    registration = {"state": ceremony["state"], "credential": device.create(ceremony["options"])}
    await probe(401, "POST", "/v1/mfa/passkeys", json=registration)
    await probe(401, "POST", "/v1/mfa/passkeys", json={**registration, "state": "forged"}, headers=auth)
    await bodies(probe, "POST", "/v1/mfa/passkeys", **auth)
    passkey = (await probe(201, "POST", "/v1/mfa/passkeys", json=registration, headers=auth)).json()
    await probe(200, "GET", "/v1/mfa/passkeys", headers=auth)
    await probe(401, "GET", "/v1/mfa/passkeys")
    await probe(200, "POST", "/v1/mfa/passkeys/assertion-options", headers=auth)
    await probe(401, "POST", "/v1/mfa/passkeys/assertion-options")

    options = "/v1/login/passkey/options"
    ceremony = (await probe(200, "POST", options)).json()
    await probe(401, "POST", options, json={"mfa_token": "forged"})
    await bodies(probe, "POST", options)
    await probe(401, "POST", "/v1/login/passkey", json={"state": "forged", "credential": {}})
    await probe(401, "POST", "/v1/login/passkey", json={"state": ceremony["state"], "credential": {}})
    await bodies(probe, "POST", "/v1/login/passkey")
    ceremony = (await probe(200, "POST", options)).json()  # a failed attempt spends its challenge
    signed = {"state": ceremony["state"], "credential": device.get(ceremony["options"])}
    await probe(200, "POST", "/v1/login/passkey", json=signed)

    one = "/v1/mfa/passkeys/{passkey_id}"
    url = f"/v1/mfa/passkeys/{passkey['passkey']['id']}"
    await probe(401, "DELETE", one, url, json={})
    await probe(403, "DELETE", one, url, json={}, headers=auth)
    await probe(401, "DELETE", one, url, json={"code": "000000"}, headers=auth)
    await probe(404, "DELETE", one, "/v1/mfa/passkeys/nope", json={"code": spare[1]}, headers=auth)
    await bodies(probe, "DELETE", one, url, **auth)
    await probe(204, "DELETE", one, url, json={"code": spare[2]}, headers=auth)

    await probe(401, "DELETE", "/v1/mfa/totp", json={})
    await probe(403, "DELETE", "/v1/mfa/totp", json={}, headers=auth)
    await probe(401, "DELETE", "/v1/mfa/totp", json={"code": "000000"}, headers=auth)
    await bodies(probe, "DELETE", "/v1/mfa/totp", **auth)
    await probe(204, "DELETE", "/v1/mfa/totp", json={"code": spare[3]}, headers=auth)
    await probe(409, "DELETE", "/v1/mfa/totp", json={"code": spare[4]}, headers=auth)


def code_at(secret: str) -> str:
    """What an authenticator app (pyotp) shows at the frozen clock's now."""
    return pyotp.TOTP(secret).at(int(NOW))


async def mfa_limited(probe: Probe) -> None:
    """IDP_RATELIMIT_MFA_ACCOUNT of one failure: every later second-factor check is 429."""
    credentials = {"email": "gina@example.com", "password": PASSWORD}
    auth = bearer((await probe(201, "POST", "/v1/signup", json=credentials)).json()["tokens"]["access_token"])
    secret = (await probe(201, "POST", "/v1/mfa/totp", headers=auth)).json()["secret"]
    await probe(200, "POST", "/v1/mfa/totp/confirm", json={"code": code_at(secret)}, headers=auth)
    ticket = (await probe(401, "POST", "/v1/login", json=credentials)).json()["mfa_token"]
    wrong = {"code": "000000"}
    await probe(401, "POST", "/v1/login/mfa", json={"mfa_token": ticket, **wrong})
    await probe(429, "POST", "/v1/login/mfa", json={"mfa_token": ticket, **wrong})
    assertion = {"state": "x", "credential": {}, "mfa_token": ticket}
    await probe(429, "POST", "/v1/login/passkey", json=assertion)
    await probe(429, "POST", "/v1/mfa/recovery-codes", json=wrong, headers=auth)
    await probe(429, "DELETE", "/v1/mfa/totp", json=wrong, headers=auth)
    await probe(
        429, "DELETE", "/v1/mfa/passkeys/{passkey_id}", "/v1/mfa/passkeys/x", json=wrong, headers=auth
    )


async def mfa_down(probe: Probe, stop: Callable[[], None]) -> None:
    """With the stores stopped, the account, lifecycle and MFA routes answer 503."""
    credentials = {"email": "hal@example.com", "password": PASSWORD}
    access = (await probe(201, "POST", "/v1/signup", json=credentials)).json()["tokens"]["access_token"]
    auth = bearer(access)
    secret = (await probe(201, "POST", "/v1/mfa/totp", headers=auth)).json()["secret"]
    await probe(200, "POST", "/v1/mfa/totp/confirm", json={"code": code_at(secret)}, headers=auth)
    ticket = (await probe(401, "POST", "/v1/login", json=credentials)).json()["mfa_token"]
    ceremony = (await probe(200, "POST", "/v1/login/passkey/options")).json()
    stop()
    code = {"code": "000000"}
    link = {"token": "x" * 43}
    for method, path, url, body in (
        ("POST", "/v1/login/mfa", None, {"mfa_token": ticket, **code}),
        ("POST", "/v1/mfa/totp", None, None),
        ("POST", "/v1/mfa/totp/confirm", None, code),
        ("DELETE", "/v1/mfa/totp", None, code),
        ("GET", "/v1/mfa", None, None),
        ("POST", "/v1/mfa/recovery-codes", None, code),
        ("POST", "/v1/mfa/passkeys/options", None, None),
        ("POST", "/v1/mfa/passkeys", None, {"state": ceremony["state"], "credential": {}}),
        ("GET", "/v1/mfa/passkeys", None, None),
        ("POST", "/v1/mfa/passkeys/assertion-options", None, None),
        ("DELETE", "/v1/mfa/passkeys/{passkey_id}", "/v1/mfa/passkeys/x", code),
        ("POST", "/v1/login/passkey/options", None, {"mfa_token": ticket}),
        ("POST", "/v1/login/passkey", None, {"state": ceremony["state"], "credential": {}}),
        ("GET", "/oauth2/userinfo", None, None),
        ("POST", "/oauth2/userinfo", None, None),
        ("PATCH", "/v1/me", None, {"name": "Hal"}),
        ("DELETE", "/v1/me", None, {"current_password": PASSWORD}),
        ("POST", "/v1/me/email", None, {"new_email": "hal2@example.com", "current_password": PASSWORD}),
        ("POST", "/v1/email/verify", None, link),
        ("POST", "/v1/email/verify/resend", None, {"email": "hal@example.com"}),
        ("POST", "/v1/email/change/confirm", None, link),
    ):
        await probe(503, method, path, url, json=body, headers=auth)
