"""Which tokens each verification kit accepts and which it refuses, against a live IdP.

Both kits (``examples/fastapi-api`` under uvicorn, ``examples/node-api`` under node) run as real
processes configured only by their environment; the tokens are the IdP's own, or forged by the
test with the IdP's private key so that exactly one property is wrong, or signed by keys of ours.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from tests.examples.kits import (
    FASTAPI_DIR,
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


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _signed_as_sent(header_segment: str, payload_segment: str, alg: str, key: Any) -> str:
    """A JWS whose signature is right over exactly these segments, however they are encoded: only
    a decoder's strictness can refuse it."""
    signing_input = f"{header_segment}.{payload_segment}"
    return f"{signing_input}.{_b64(JWSRegistry.algorithms[alg].sign(signing_input.encode(), key))}"


def _other_signature_bytes(f: Forge) -> str:
    """A valid token whose signature segment still decodes, to other bytes (one bit flipped)."""
    header, payload, signature = f.sign().split(".")
    raw = _unb64(signature)
    return f"{header}.{payload}.{_b64(bytes([raw[0] ^ 1]) + raw[1:])}"


def _shortened_signature(f: Forge) -> str:
    signing_input, signature = f.sign().rsplit(".", 1)
    return f"{signing_input}.{_b64(_unb64(signature)[:-1])}"


def _standard_base64_payload(f: Forge) -> str:
    """Claims whose base64url encoding has "-" or "_", sent in the base64 alphabet ("+", "/") and
    signed as sent: base64url only (RFC 7515 §2)."""
    claims = f.claims(note="~~~???>>>")
    payload = base64.b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=").decode()
    assert "+" in payload or "/" in payload
    header = _b64(json.dumps(f.header(), separators=(",", ":")).encode())
    return _signed_as_sent(header, payload, f.alg, f.key)


def _header_segment(f: Forge, value: object) -> str:
    return _signed_as_sent(_b64(json.dumps(value).encode()), f.sign().split(".")[1], f.alg, f.key)


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
    "signature bytes changed (still base64url)": lambda f: _bearer(_other_signature_bytes(f)),
    "signature one byte short": lambda f: _bearer(_shortened_signature(f)),
    "an empty signature": lambda f: _bearer(f.sign().rsplit(".", 1)[0] + "."),
    "four segments": lambda f: _bearer(f.sign() + ".AAAA"),
    "two segments": lambda f: _bearer(f.sign().rsplit(".", 1)[0]),
    "five segments (JWE-shaped)": lambda f: _bearer(f.sign() + ".AAAA.AAAA"),
    "payload in standard base64, signed as sent": lambda f: _bearer(_standard_base64_payload(f)),
    "header a JSON array, signed as sent": lambda f: _bearer(_header_segment(f, ["typ", "alg", "kid"])),
    "header a JSON string, signed as sent": lambda f: _bearer(_header_segment(f, "typ alg kid")),
    "crit not a list": lambda f: _bearer(f.sign(header=f.header(crit=5))),
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


@pytest.fixture(scope="module")
def rs256_idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdP]:
    """An IdP that signs with RS256 (``IDP_SIGNING_ALG=RS256``)."""
    with start_idp(tmp_path_factory.mktemp("rs256-idp"), IDP_SIGNING_ALG="RS256") as running:
        yield running


def _foreign_key(alg: str) -> OKPKey | ECKey | RSAKey:
    if alg == "EdDSA":
        return OKPKey.generate_key("Ed25519")
    if alg == "ES256":
        return ECKey.generate_key("P-256")
    return RSAKey.generate_key(2048)


def _der_signature(f: Forge) -> str:
    """An ES256 token of the IdP's key whose signature is DER-encoded (as X.509 and some
    libraries do) rather than r || s (RFC 7518 §3.4)."""
    header, payload, signature = f.sign().split(".")
    raw = _unb64(signature)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    return f"{header}.{payload}.{_b64(der)}"


@pytest.mark.parametrize("name", KITS)
@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_algorithms_are_pinned(name: str, alg: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The accepted algorithms come from ``IDP_ALGORITHMS``, not from the token or the JWKS: a
    genuine ES256 (RS256) token of an ES256 (RS256) IdP is refused by a kit left at the default
    (EdDSA) and accepted once the kit is configured with ``IDP_ALGORITHMS=EdDSA,ES256,RS256``.
    That kit still refuses the token with other signature bytes, an ES256 signature in DER form,
    and a token whose header names another accepted algorithm under the IdP's kid (signed with a
    foreign key of that algorithm: no algorithm confusion)."""
    idp: IdP = request.getfixturevalue(f"{alg.lower()}_idp")
    account = idp.signup()
    assert header_of(account.token)["alg"] == alg
    forge = Forge(idp, account)
    with run_kit(name, idp, tmp_path) as kit:
        assert_invalid_token(kit.profile(account.token))
    with run_kit(name, idp, tmp_path, IDP_ALGORITHMS="EdDSA,ES256,RS256") as kit:
        response = kit.profile(account.token)
        assert response.status_code == 200, f"{response.status_code} {response.text}\n{kit.log()}"
        assert response.json()["user_id"] == account.id
        forged = kit.profile(forge.sign())
        assert forged.status_code == 200, f"{forged.status_code} {forged.text}\n{kit.log()}"
        assert_invalid_token(kit.profile(_other_signature_bytes(forge)))
        if alg == "ES256":
            assert_invalid_token(kit.profile(_der_signature(forge)))
        for other in {"EdDSA", "ES256", "RS256"} - {alg}:
            confused = forge.sign(header=forge.header(alg=other), key=_foreign_key(other))
            assert_invalid_token(kit.profile(confused))


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


# --- the FastAPI kit in process: its own decoding and key handling ------------------------------
# These call ``IdPAuth.verify`` directly, with a JWKS served here whose keys name no ``alg`` (the
# IdP's do), so that the kind of each key alone must keep an algorithm from being used with
# another's key; and with tokens whose signature is right over segments encoded the wrong way,
# which only a strict decoder refuses (jose on Node 20 decodes through ``atob``, which accepts
# padding, whitespace and stray low bits, so the node kit is not held to these).

ISSUER = "https://idp.test"
AUDIENCE = "https://api.test"
ALGORITHMS = ("EdDSA", "ES256", "RS256")


def _load_fastapi_kit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("idp_auth_under_test", FASTAPI_DIR / "idp_auth.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _StaticJWKS(ThreadingHTTPServer):
    daemon_threads = True
    body: bytes


class _StaticJWKSHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.server.body  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/jwk-set+json")
        self.send_header("Cache-Control", "max-age=300")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class InProcess:
    """The FastAPI kit's module, the private keys (kid = algorithm) behind a JWKS without ``alg``
    members, and an :class:`IdPAuth` accepting all three algorithms."""

    def __init__(self, kit: ModuleType, keys: dict[str, OKPKey | ECKey | RSAKey], jwks_url: str) -> None:
        self.kit = kit
        self.keys = keys
        self.auth = kit.IdPAuth(
            kit.Settings(issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks_url, algorithms=ALGORITHMS)
        )

    def claims(self, **changes: object) -> dict[str, object]:
        now = int(time.time())
        claims: dict[str, object] = {
            "iss": ISSUER,
            "sub": "user-1",
            "aud": AUDIENCE,
            "exp": now + 300,
            "iat": now,
        }
        claims.update(changes)
        return claims

    def segments(
        self,
        alg: str,
        kid: str | None = None,
        claims: dict[str, object] | None = None,
        header: Mapping[str, object] | None = None,
    ) -> tuple[str, str]:
        """(header segment, payload segment): typ at+jwt, ``alg``, ``kid`` (default: alg), and
        ``header``; the claims default to valid ones."""
        protected = {"typ": "at+jwt", "alg": alg, "kid": kid or alg, **(header or {})}
        return (
            _b64(json.dumps(protected, separators=(",", ":")).encode()),
            _b64(json.dumps(claims or self.claims(), separators=(",", ":")).encode()),
        )

    def token(
        self, alg: str, kid: str | None = None, key: Any = None, header: Mapping[str, object] | None = None
    ) -> str:
        """Signed with ``key`` (default: the JWKS's key named ``kid``, itself defaulting to alg)."""
        header_segment, payload_segment = self.segments(alg, kid, header=header)
        return _signed_as_sent(header_segment, payload_segment, alg, key or self.keys[kid or alg])

    async def refusal(self, token: str) -> str:
        """The 401 description of a refused token (fails if the token is accepted or crashes)."""
        with pytest.raises(self.kit.AuthError) as refused:
            await self.auth.verify(token)
        assert refused.value.status_code == 401
        return str(refused.value)


@pytest.fixture(scope="module")
def in_process() -> Iterator[InProcess]:
    keys: dict[str, OKPKey | ECKey | RSAKey] = {alg: _foreign_key(alg) for alg in ALGORITHMS}
    members = []
    for kid, key in keys.items():
        jwk = key.as_dict(private=False)
        jwk.update({"kid": kid, "use": "sig"})
        jwk.pop("alg", None)
        members.append(jwk)
    server = _StaticJWKS(("127.0.0.1", 0), _StaticJWKSHandler)
    server.body = json.dumps({"keys": members}).encode()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield InProcess(_load_fastapi_kit(), keys, f"http://127.0.0.1:{server.server_address[1]}/jwks.json")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize("alg", ALGORITHMS)
async def test_fastapi_kit_verifies_each_algorithm(in_process: InProcess, alg: str) -> None:
    """EdDSA, ES256 (r || s signatures) and RS256 tokens are verified with the keys converted
    when the JWKS was fetched; the claims come back as signed."""
    user = await in_process.auth.verify(in_process.token(alg))
    assert user.id == "user-1"
    assert user.roles == ()
    assert user.claims["aud"] == AUDIENCE


@pytest.mark.parametrize("alg", ALGORITHMS)
async def test_fastapi_kit_refuses_other_signature_bytes(in_process: InProcess, alg: str) -> None:
    """A signature over other bytes, with one bit flipped, or one byte short is a bad signature."""
    header_segment, payload_segment, signature = in_process.token(alg).split(".")
    raw = _unb64(signature)
    other = _signed_as_sent(
        header_segment,
        in_process.segments(alg, claims=in_process.claims(sub="x"))[1],
        alg,
        in_process.keys[alg],
    ).rsplit(".", 1)[1]
    for wrong in (other, _b64(bytes([raw[0] ^ 0x80]) + raw[1:]), _b64(raw[:-1]), ""):
        token = f"{header_segment}.{payload_segment}.{wrong}"
        assert await in_process.refusal(token) == "The access token is invalid (bad_signature)."


@pytest.mark.parametrize(("alg", "kid"), [(a, k) for a in ALGORITHMS for k in ALGORITHMS if a != k])
async def test_fastapi_kit_refuses_an_algorithm_with_another_kind_of_key(
    in_process: InProcess, alg: str, kid: str
) -> None:
    """The header names an accepted algorithm and a key of another kind (the JWK names no alg):
    refused, whichever key signed it, before any signature check (no algorithm confusion)."""
    header_segment, payload_segment = in_process.segments(alg, kid=kid)
    own_key = _signed_as_sent(header_segment, payload_segment, alg, in_process.keys[alg])
    kids_key = _signed_as_sent(header_segment, payload_segment, kid, in_process.keys[kid])
    for token in (own_key, kids_key):  # signed by a key of the header's alg, or by the kid's key
        description = await in_process.refusal(token)
        assert description.startswith("The access token is invalid ("), description
        assert "bad_signature" not in description, description


async def test_fastapi_kit_refuses_a_der_es256_signature(in_process: InProcess) -> None:
    """ES256 signatures are r || s (RFC 7518 §3.4): the same signature DER-encoded is refused."""
    header_segment, payload_segment, signature = in_process.token("ES256").split(".")
    raw = _unb64(signature)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    token = f"{header_segment}.{payload_segment}.{_b64(der)}"
    assert await in_process.refusal(token) == "The access token is invalid (bad_signature)."


def _non_canonical(segment: str) -> str:
    """The same bytes with low bits set in the last character (a lenient decoder ignores them)."""
    assert len(segment) % 4 in (2, 3), "no unused bits to set"
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return segment[:-1] + alphabet[alphabet.index(segment[-1]) + 1]


def _padded(segment: str) -> str:
    assert len(segment) % 4, "needs no padding"
    return segment + "=" * (-len(segment) % 4)


def _with_length_mod_4(in_process: InProcess, rest: int) -> tuple[str, str]:
    """Header and payload segments of a valid token, the payload's length % 4 being ``rest``."""
    for n in range(8):
        claims = in_process.claims(pad="x" * n, note="~~~???>>>")  # "-" and "_" in base64url
        header_segment, payload_segment = in_process.segments("EdDSA", claims=claims)
        if len(payload_segment) % 4 == rest:
            return header_segment, payload_segment
    raise AssertionError("unreachable")


# Each builds (header segment, payload segment) from well-formed ones; the token is then signed
# as sent, so only the decoding can refuse it.
MISENCODED: dict[str, Callable[[str, str], tuple[str, str]]] = {
    "payload padded with =": lambda h, p: (h, _padded(p)),
    "payload with stray low bits": lambda h, p: (h, _non_canonical(p)),
    "payload with a line break": lambda h, p: (h, p[:8] + "\n" + p[8:]),
    "payload with a space": lambda h, p: (h, p[:8] + " " + p[8:]),
    "payload in the base64 alphabet": lambda h, p: (h, p.replace("-", "+").replace("_", "/")),
    "payload one character too long": lambda h, p: (h, p + "A" * ((1 - len(p)) % 4)),
    "header with a space": lambda h, p: (" " + h, p),
    "header padded with =": lambda h, p: (h + "==", p),
}


@pytest.mark.parametrize("rest", [2, 3])
@pytest.mark.parametrize("case", list(MISENCODED))
async def test_fastapi_kit_decodes_base64url_strictly(in_process: InProcess, case: str, rest: int) -> None:
    """RFC 7515 §2 base64url, no padding, no whitespace, one encoding per byte string: a token
    signed over any other encoding of its segments is malformed, as it was with joserfc."""
    segments = _with_length_mod_4(in_process, rest)
    header_segment, payload_segment = MISENCODED[case](*segments)
    assert (header_segment, payload_segment) != segments
    token = _signed_as_sent(header_segment, payload_segment, "EdDSA", in_process.keys["EdDSA"])
    assert await in_process.refusal(token) == "The access token is malformed."


async def test_fastapi_kit_refuses_a_signature_segment_encoded_another_way(in_process: InProcess) -> None:
    """The signature segment too: padded, with stray low bits, or in the base64 alphabet, it is
    not the signature (Ed25519: 64 bytes, 86 characters, so there are low bits to set)."""
    token = in_process.token("EdDSA")
    signing_input, signature = token.rsplit(".", 1)
    assert await in_process.auth.verify(token)
    for variant in (
        _padded(signature),
        _non_canonical(signature),
        base64.b64encode(_unb64(signature)).decode().rstrip("="),
    ):
        if variant != signature:
            assert await in_process.refusal(f"{signing_input}.{variant}") == (
                "The access token is invalid (bad_signature)."
            )


@pytest.mark.parametrize(
    "header",
    [
        ["alg", "typ", "kid"],  # crashed the joserfc kit (500): a list containing "alg"
        "alg typ kid",  # likewise a string containing "alg"
        {"typ": "at+jwt", "kid": "EdDSA"},  # no alg
        {"typ": "at+jwt", "alg": "EdDSA", "kid": "EdDSA", "b64": False, "crit": ["b64"]},  # RFC 7797
    ],
    ids=["a JSON array", "a JSON string", "no alg", "unencoded payload (b64 false)"],
)
async def test_fastapi_kit_refuses_headers_that_are_no_jws_header(
    in_process: InProcess, header: object
) -> None:
    """A header that is no JSON object with an ``alg`` (or asks for an unencoded payload, which no
    JWT has) is malformed, even signed with the right key."""
    payload_segment = in_process.segments("EdDSA")[1]
    header_segment = _b64(json.dumps(header).encode())
    token = _signed_as_sent(header_segment, payload_segment, "EdDSA", in_process.keys["EdDSA"])
    assert await in_process.refusal(token) == "The access token is malformed."


@pytest.mark.parametrize(
    ("header", "description"),
    [
        ({"crit": 5}, "'crit' in header must be a list[str]"),  # crashed the joserfc kit (500)
        ({"crit": [{}]}, "'crit' in header must be a list[str]"),  # likewise
        ({"crit": ["exp"]}, "Missing critical 'exp' value in header"),
        ({"crit": ["urn:x"], "urn:x": 1}, "Unsupported ['urn:x'] in header"),
        ({"jku": "file:///etc/passwd"}, "'jku' in header must be a URL"),
        ({"x5c": [1]}, "'x5c' in header must be a list[str]"),
        ({"zip": "DEF"}, "Unsupported {'zip'} in header"),
    ],
)
async def test_fastapi_kit_checks_the_rest_of_the_header(
    in_process: InProcess, header: dict[str, object], description: str
) -> None:
    """Beyond typ, alg and kid: crit is honoured (RFC 7515 §4.1.11), known parameters must be
    well-formed, unknown ones are refused; all signed with the right key."""
    token = in_process.token("EdDSA", header=header)
    assert await in_process.refusal(token) == f"The access token is invalid ({description})."
