"""Every MFA flow against a real server process: no TOTP secret, otpauth URI, code, recovery
code, mfa_token, WebAuthn challenge or state, nor the secrets-at-rest key, in any log line."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pyotp

from service.keys.secrets import SECRETS_KEY_FILE
from tests.support.authenticator import SoftAuthenticator
from tests.support.server import run_server


def test_no_mfa_secret_in_any_log_line(tmp_path: Path) -> None:
    """The log records the MFA events, and none of the values the flows exchanged."""
    email = f"mfa.{uuid.uuid4().hex[:6]}@example.com"
    password = "a private pass phrase"
    secrets: list[str] = []
    with run_server(tmp_path) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        token = http.post("/v1/signup", json={"email": email, "password": password}).json()["tokens"]
        auth = {"Authorization": f"Bearer {token['access_token']}"}
        enrolment = http.post("/v1/mfa/totp", headers=auth).json()
        code = pyotp.TOTP(enrolment["secret"]).now()
        codes = http.post("/v1/mfa/totp/confirm", json={"code": code}, headers=auth).json()["recovery_codes"]
        step = http.post("/v1/login", json={"email": email, "password": password}).json()
        http.post("/v1/login/mfa", json={"mfa_token": step["mfa_token"], "code": "999999"})
        done = http.post("/v1/login/mfa", json={"mfa_token": step["mfa_token"], "code": codes[0]}).json()
        device = SoftAuthenticator(origin=server.url)
        ceremony = http.post("/v1/mfa/passkeys/options", headers=auth).json()
        created = device.create(ceremony["options"])
        registered = http.post(
            "/v1/mfa/passkeys", json={"state": ceremony["state"], "credential": created}, headers=auth
        )
        assert registered.status_code == 201, registered.text
        login_ceremony = http.post("/v1/login/passkey/options").json()
        assertion = device.get(login_ceremony["options"])
        passwordless = http.post(
            "/v1/login/passkey", json={"state": login_ceremony["state"], "credential": assertion}
        )
        assert passwordless.status_code == 200, passwordless.text
        secrets += [enrolment["secret"], enrolment["otpauth_uri"], code, *codes, step["mfa_token"]]
        secrets += [done["access_token"], done["refresh_token"], passwordless.json()["access_token"]]
        secrets += [ceremony["state"], ceremony["options"]["challenge"], login_ceremony["state"]]
        secrets += [login_ceremony["options"]["challenge"], assertion["response"]["signature"]]
        secrets += [email, password]
        log = server.log()
    secrets.append((tmp_path / "keys" / SECRETS_KEY_FILE).read_text().strip())
    for event in ('"event":"mfa_totp_enrolment"', '"event":"mfa_verify"', '"event":"passkey_assertion"'):
        assert event in log, f"the log records {event}"
    for secret in secrets:
        assert secret not in log, f"a secret ({len(secret)} chars) appears in the log"
        if len(secret) > 12:
            assert secret[2:12] not in log, "not even a fragment of it"
