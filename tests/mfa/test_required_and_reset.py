"""``IDP_MFA_REQUIRED`` (enrol during the sign-in) and the admin reset ``idp users mfa reset``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from service.app import create_app, serving
from service.clock import FrozenClock
from service.config import Settings
from tests.mfa.helpers import PASSWORD, bearer, claims, code_at, enrol_totp, password_step, signup
from tests.support.cli import run_idp


async def test_required_mfa_makes_an_account_without_a_factor_enrol_first(
    make_settings: Callable[..., Settings], clock: FrozenClock
) -> None:
    """With IDP_MFA_REQUIRED, a correct password without a factor is 403 mfa_enrollment_required
    with a ticket, no tokens; the ticket (X-MFA-Token) enrols and confirms a TOTP, and the
    confirmation completes the sign-in with amr pwd+otp+mfa. A forged ticket enrols nothing."""
    app = create_app(make_settings(IDP_MFA_REQUIRED="true"), clock=clock)
    async with serving(app) as runtime:
        await runtime.accounts.create_user("ada@example.com", PASSWORD)
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
            login = await client.post("/v1/login", json={"email": "ada@example.com", "password": PASSWORD})
            assert login.status_code == 403
            body = login.json()
            assert body["error"] == "mfa_enrollment_required"
            assert "access_token" not in login.text
            ticket = body["mfa_token"]
            forged = await client.post("/v1/mfa/totp", headers={"X-MFA-Token": ticket[:-3] + "abc"})
            assert (forged.status_code, forged.json()["error"]) == (401, "invalid_mfa_token")
            started = await client.post("/v1/mfa/totp", headers={"X-MFA-Token": ticket})
            assert started.status_code == 201
            secret = started.json()["secret"]
            confirmed = await client.post(
                "/v1/mfa/totp/confirm",
                json={"code": code_at(secret, clock())},
                headers={"X-MFA-Token": ticket},
            )
            assert confirmed.status_code == 200, confirmed.text
            result = confirmed.json()
            assert len(result["recovery_codes"]) == 10
            assert claims(result["tokens"]["access_token"])["amr"] == ["pwd", "otp", "mfa"]
            clock.advance(30)
            step = await password_step(client)
            assert step["methods"] == ["totp", "recovery_code"]


async def test_cli_reset_removes_every_factor_audits_and_mails(
    make_settings: Callable[..., Settings], clock: FrozenClock, tmp_path: Path
) -> None:
    """``idp users mfa reset EMAIL`` (a real process on the same database and keys): the account
    signs in with its password alone again, the owner has a notice in the outbox, the audit line
    names the account by id only; an unknown email exits non-zero."""
    settings = make_settings()
    app = create_app(settings, clock=clock)
    async with serving(app) as runtime:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
            token = await signup(client)
            await enrol_totp(client, token, clock)
            await password_step(client)
            env = {"IDP_DATABASE_URL": settings.storage.database_url, "IDP_KEYS_DIR": str(settings.keys.dir)}
            done = run_idp(tmp_path, "users", "mfa", "reset", "ADA@example.com", env=env)
            assert done.returncode == 0, done.stderr
            assert "authenticator app" in done.stdout
            assert '"event":"mfa_reset"' in done.stderr
            assert "ada@example.com" not in done.stderr.lower()
            login = await client.post("/v1/login", json={"email": "ada@example.com", "password": PASSWORD})
            assert login.status_code == 200
            view = await client.get("/v1/mfa", headers=bearer(login.json()["access_token"]))
            assert view.json() == {"totp": False, "passkeys": 0, "recovery_codes_left": 0, "methods": []}
            mails = [m for m in await runtime.outbox.list_mail(None, 10) if m.kind != "verify_email"]
            assert [(m.kind, m.recipient) for m in mails] == [("mfa_reset", "ada@example.com")]
            unknown = run_idp(tmp_path, "users", "mfa", "reset", "nobody@example.com", env=env)
            assert unknown.returncode != 0
