"""Which tokens each verification kit accepts and which it refuses, against a live IdP.

Both kits (``examples/fastapi-api`` under uvicorn, ``examples/node-api`` under node) run as real
processes configured only by their environment; the tokens are the IdP's own, or forged by the
test with the IdP's private key so that exactly one property is wrong, or signed by keys of ours.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from joserfc.jwk import ECKey

from tests.examples.kits import (
    KITS,
    Account,
    Forge,
    IdP,
    RunningKit,
    assert_invalid_token,
    header_of,
    run_kit,
    start_idp,
    start_refused,
    tamper,
)

pytestmark = pytest.mark.slow

OTHER_API = "https://billing-api.example"


@pytest.fixture(scope="module", params=KITS)
def kit(
    request: pytest.FixtureRequest, idp: IdP, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningKit]:
    """One kit process per module and kit, default settings, pointed at the session's IdP."""
    name: str = request.param
    with run_kit(name, idp, tmp_path_factory.mktemp(f"kit-{name}")) as running:
        yield running


@pytest.fixture(scope="module")
def admin(idp: IdP) -> tuple[Account, str]:
    """An account whose roles were set with ``idp users roles --set`` after signup, and a token
    from ``POST /v1/login`` issued after that change (the signup token predates it)."""
    account = idp.signup()
    idp.cli("users", "roles", account.email, "--set", "admin,billing")
    return account, idp.login(account.email)


def test_signup_token_gives_the_users_profile(kit: RunningKit, account: Account) -> None:
    """The access token ``POST /v1/signup`` returned is accepted: 200 with the account's id,
    email and (no) roles, exactly the documented body."""
    response = kit.profile(account.token)
    assert response.status_code == 200, f"{response.status_code} {response.text}\n{kit.log()}"
    assert response.json() == {"user_id": account.id, "email": account.email, "roles": []}


def test_roles_come_from_the_token(kit: RunningKit, admin: tuple[Account, str]) -> None:
    """Roles are read from the token, never looked up: the login token issued after the role
    change carries them, the signup token issued before it still has none."""
    account, login_token = admin
    with_roles = kit.profile(login_token)
    assert with_roles.status_code == 200, with_roles.text
    assert with_roles.json() == {"user_id": account.id, "email": account.email, "roles": ["admin", "billing"]}
    before = kit.profile(account.token)
    assert before.status_code == 200, before.text
    assert before.json()["roles"] == []


ACCEPTED: dict[str, Callable[[Forge], str]] = {
    # The control: what the IdP itself would issue, signed by the test with the IdP's key. If
    # this failed, every refusal below could be the forge's fault rather than the kit's check.
    "control": lambda f: f.sign(),
    "typ application/at+jwt (RFC 9068 §4)": lambda f: f.sign(header=f.header(typ="application/at+jwt")),
    "aud a list that includes us": lambda f: f.sign(f.claims(aud=[OTHER_API, f.idp.url])),
    "expired 5 s ago, within the leeway": lambda f: f.sign(f.claims(exp=int(time.time()) - 5)),
}


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_well_formed_forged_token_is_accepted(kit: RunningKit, forge: Forge, case: str) -> None:
    """Tokens the test signs with the IdP's key and valid claims are accepted, and the profile
    shows the forged claims: the forge is right, so the refusals below are meaningful."""
    response = kit.profile(ACCEPTED[case](forge))
    assert response.status_code == 200, f"{response.status_code} {response.text}\n{kit.log()}"
    assert response.json() == {
        "user_id": forge.account.id,
        "email": forge.account.email,
        "roles": ["forged-but-valid"],
    }


def _now() -> int:
    return int(time.time())


def _es256_under_the_idps_kid(f: Forge) -> str:
    return f.sign(header=f.header(alg="ES256"), key=ECKey.generate_key("P-256"))


def _embedded_jwk(f: Forge) -> str:
    key = f.foreign_ed25519()
    return f.sign(header=f.header(kid=key.kid, jwk=key.as_dict(private=False)), key=key)


def _jku(f: Forge) -> str:
    key = f.foreign_ed25519()
    # Port 9 (discard) on loopback: nothing is fetched from there, and nothing must be.
    return f.sign(header=f.header(kid=key.kid, jku="http://127.0.0.1:9/jwks.json"), key=key)


def _bearer(token: str) -> str:
    return f"Bearer {token}"


# Each value builds the whole Authorization header (None: no header at all).
HOSTILE: dict[str, Callable[[Forge], str | None]] = {
    "no Authorization header": lambda f: None,
    "Bearer without a token": lambda f: "Bearer",
    "Basic credentials": lambda f: "Basic " + base64.b64encode(b"alice:secret").decode(),
    "token without the Bearer scheme": lambda f: f.account.token,
    "garbage": lambda f: _bearer("garbage"),
    "three garbage segments": lambda f: _bearer("a.b.c"),
    "oversized": lambda f: _bearer(f.sign() + "A" * 9000),
    "payload changed, signature kept": lambda f: _bearer(tamper(f.account.token)),
    "expired beyond the leeway": lambda f: _bearer(f.sign(f.claims(exp=_now() - 120, iat=_now() - 1000))),
    "nbf in the future": lambda f: _bearer(f.sign(f.claims(nbf=_now() + 120))),
    "no exp": lambda f: _bearer(f.sign(f.claims(exp=None))),
    "no sub": lambda f: _bearer(f.sign(f.claims(sub=None))),
    "no iss": lambda f: _bearer(f.sign(f.claims(iss=None))),
    "no aud": lambda f: _bearer(f.sign(f.claims(aud=None))),
    "another issuer": lambda f: _bearer(f.sign(f.claims(iss="https://evil.example"))),
    "issuer plus a trailing slash": lambda f: _bearer(f.sign(f.claims(iss=f"{f.idp.url}/"))),
    "another audience": lambda f: _bearer(f.sign(f.claims(aud=OTHER_API))),
    "audience list without us": lambda f: _bearer(f.sign(f.claims(aud=[OTHER_API, "https://x.example"]))),
    "typ JWT (an ID token or other JWT)": lambda f: _bearer(f.sign(header=f.header(typ="JWT"))),
    "no typ": lambda f: _bearer(f.sign(header=f.header(typ=None))),
    "alg none": lambda f: _bearer(f.unsigned()),
    "HS256 keyed with the IdP's public key": lambda f: _bearer(f.hs256_with_public_key()),
    "ES256 (not pinned), foreign key, the IdP's kid": lambda f: _bearer(_es256_under_the_idps_kid(f)),
    "foreign key, unknown kid": lambda f: _bearer(f.foreign_unknown_kid()),
    "foreign key under the IdP's kid": lambda f: _bearer(f.sign(key=f.foreign_ed25519())),
    "foreign key embedded as jwk": lambda f: _bearer(_embedded_jwk(f)),
    "foreign key behind a jku URL": lambda f: _bearer(_jku(f)),
    "unknown crit extension": lambda f: _bearer(
        f.sign(header=f.header(crit=["urn:example:must-understand"], **{"urn:example:must-understand": 1}))
    ),
    "sub not a string": lambda f: _bearer(f.sign(f.claims(sub=12345))),
    "roles not a list": lambda f: _bearer(f.sign(f.claims(roles="admin"))),
    "a role that is not a string": lambda f: _bearer(f.sign(f.claims(roles=["admin", {"root": True}]))),
    "email not a string": lambda f: _bearer(f.sign(f.claims(email=["a@example.com"]))),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_token_is_refused(kit: RunningKit, forge: Forge, case: str) -> None:
    """Each hostile request gets 401 ``invalid_token`` with ``WWW-Authenticate`` and the JSON
    error body; forged tokens differ from the accepted control in one property only."""
    response = kit.get("/api/profile", HOSTILE[case](forge))
    assert_invalid_token(response)


def test_verification_is_offline(kit: RunningKit, idp: IdP) -> None:
    """No call to the IdP per request: after the first fetch of the JWKS, 20 requests fetch
    nothing more, and a token whose session was ended at the IdP (``POST /v1/logout``: the IdP
    itself now refuses it) is still accepted by the kit until it expires, as documented."""
    account = idp.signup()
    assert kit.profile(account.token).status_code == 200
    fetches = kit.proxy.count
    assert fetches >= 1
    for _ in range(20):
        assert kit.profile(account.token).status_code == 200
    assert kit.proxy.count == fetches, "the kit fetched the JWKS again while its cache was fresh"

    headers = {"Authorization": f"Bearer {account.token}"}
    assert httpx.post(f"{idp.url}/v1/logout", headers=headers, timeout=10).status_code == 204
    assert httpx.get(f"{idp.url}/v1/me", headers=headers, timeout=10).status_code == 401
    still = kit.profile(account.token)
    assert still.status_code == 200, still.text
    assert still.json()["user_id"] == account.id


@pytest.mark.parametrize("name", KITS)
def test_audience_comes_from_the_configuration(name: str, idp: IdP, forge: Forge, tmp_path: Path) -> None:
    """A kit configured with ``IDP_AUDIENCE`` of another API refuses the IdP's real tokens
    (their ``aud`` is the IdP's default audience) and accepts a token made for that API."""
    with run_kit(name, idp, tmp_path, IDP_AUDIENCE=OTHER_API) as kit:
        assert_invalid_token(kit.profile(forge.account.token))
        response = kit.profile(forge.sign(forge.claims(aud=OTHER_API)))
        assert response.status_code == 200, f"{response.status_code} {response.text}\n{kit.log()}"


@pytest.fixture(scope="module")
def es256_idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdP]:
    """An IdP that signs with ES256 (``IDP_SIGNING_ALG=ES256``)."""
    with start_idp(tmp_path_factory.mktemp("es256-idp"), IDP_SIGNING_ALG="ES256") as running:
        yield running


@pytest.mark.parametrize("name", KITS)
def test_algorithms_are_pinned(name: str, es256_idp: IdP, tmp_path: Path) -> None:
    """The accepted algorithms come from ``IDP_ALGORITHMS``, not from the token or the JWKS: a
    genuine ES256 token of an ES256 IdP is refused by a kit left at the default (EdDSA) and
    accepted once the kit is configured with ``IDP_ALGORITHMS=EdDSA,ES256``."""
    account = es256_idp.signup()
    assert header_of(account.token)["alg"] == "ES256"
    with run_kit(name, es256_idp, tmp_path) as kit:
        assert_invalid_token(kit.profile(account.token))
    with run_kit(name, es256_idp, tmp_path, IDP_ALGORITHMS="EdDSA,ES256") as kit:
        response = kit.profile(account.token)
        assert response.status_code == 200, f"{response.status_code} {response.text}\n{kit.log()}"
        assert response.json()["user_id"] == account.id


@pytest.mark.parametrize("name", KITS)
@pytest.mark.parametrize("algorithms", ["HS256", "EdDSA,none"])
def test_kit_refuses_to_start_with_unsafe_algorithms(
    name: str, algorithms: str, idp: IdP, tmp_path: Path
) -> None:
    """``IDP_ALGORITHMS`` may only pin asymmetric algorithms: HS256 or "none" stop the kit at
    start-up with a message naming the variable, instead of serving."""
    returncode, output = start_refused(name, idp, tmp_path, IDP_ALGORITHMS=algorithms)
    assert returncode not in (None, 0), f"the {name} kit started with IDP_ALGORITHMS={algorithms}:\n{output}"
    assert "IDP_ALGORITHMS" in output, output
