"""IDP_CONFIG: the token-exchange trust file is validated at start-up with clear messages.

Loading the settings parses the file into plain records (``service/trust.py``, config layer);
the runtime validates the ``[[clients]]`` into registrations before it opens anything
(:func:`service.clients.declared_registrations`). :func:`registrations` below does both."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from service.clients import declared_registrations
from service.config import ConfigError, load_settings
from service.store.sessions import Client

VALID = """
[[trusted_issuers]]
issuer = "https://app.example.com"
jwks_uri = "https://app.example.com/api/auth/jwks"
audiences = ["https://id.example.com"]
clients = ["web"]

[[clients]]
id = "web"
secret_env = "WEB_SECRET"
"""


def write(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "idp.toml"
    path.write_text(text)
    return {"IDP_CONFIG": str(path), "WEB_SECRET": "s3cret-value"}


def registrations(env: dict[str, str]) -> dict[str, Client]:
    """What start-up does with the file's clients: load the settings, then validate."""
    return declared_registrations(load_settings(env).trust.clients)


def test_valid_file_with_defaults(tmp_path: Path) -> None:
    """Defaults: EdDSA only, 900 s max age, no email linking, Better Auth claim names."""
    trust = load_settings(write(tmp_path, VALID)).trust
    issuer = trust.issuers["https://app.example.com"]
    assert (issuer.algorithms, issuer.max_token_age, issuer.link_verified_email) == (["EdDSA"], 900, False)
    assert (issuer.claims.subject, issuer.claims.email_verified) == ("sub", "emailVerified")
    assert trust.clients["web"].secret_sha256 == hashlib.sha256(b"s3cret-value").hexdigest()
    assert trust.clients["web"].secret_env is None, "the variable is read once, at load"
    web = declared_registrations(trust.clients)["web"]
    assert (web.name, web.secret_hash) == ("web", hashlib.sha256(b"s3cret-value").hexdigest())
    assert (web.grant_types, web.token_endpoint_auth_method) == (
        ("client_credentials",),
        "client_secret_basic",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not toml = = ", "IDP_CONFIG"),
        (VALID.replace('clients = ["web"]', 'clients = ["web"]\nsurprise = 1'), "surprise"),
        (VALID.replace('audiences = ["https://id.example.com"]', "audiences = []"), "audiences"),
        (VALID.replace("https://app.example.com/api/auth/jwks", "ftp://x"), "jwks_uri"),
        (VALID.replace('clients = ["web"]', 'clients = ["web"]\nalgorithms = ["HS256"]'), "algorithms"),
        (VALID.replace('secret_env = "WEB_SECRET"', 'secret_env = "MISSING_SECRET"'), "MISSING_SECRET"),
        (VALID.replace('secret_env = "WEB_SECRET"', 'secret_sha256 = "abc"'), "secret_sha256"),
        (VALID + VALID.split("[[clients]]", maxsplit=1)[0], "listed twice"),
    ],
    ids=[
        "syntax",
        "unknown-field",
        "no-audience",
        "jwks-scheme",
        "hs256",
        "missing-env",
        "short-hash",
        "duplicate",
    ],
)
def test_invalid_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    """Each mistake stops start-up with IDP_CONFIG and the offending part in the message."""
    with pytest.raises(ConfigError, match="IDP_CONFIG") as error:
        load_settings(write(tmp_path, text))
    assert message in str(error.value)


def test_missing_file(tmp_path: Path) -> None:
    """A path that does not exist names the variable."""
    with pytest.raises(ConfigError, match="IDP_CONFIG"):
        load_settings({"IDP_CONFIG": str(tmp_path / "nope.toml")})


REGISTRATIONS = """
[[clients]]
id = "web"
name = "Web"
secret_env = "WEB_SECRET"
redirect_uris = ["https://app.example.com/cb"]
post_logout_redirect_uris = ["https://app.example.com/"]
scopes = ["api:read"]
first_party = true
require_mfa = true
id_token_signed_response_alg = "EdDSA"
token_endpoint_auth_method = "client_secret_post"

[[clients]]
id = "spa"
public = true
redirect_uris = ["http://127.0.0.1:5173/cb"]
"""


def test_client_registrations_in_the_file(tmp_path: Path) -> None:
    """Every registration field is read; grants default as for `idp clients add`."""
    clients = registrations(write(tmp_path, REGISTRATIONS))
    web, spa = clients["web"], clients["spa"]
    assert web.redirect_uris == ("https://app.example.com/cb",)
    assert web.post_logout_redirect_uris == ("https://app.example.com/",)
    assert (web.grant_types, web.scopes) == (("authorization_code", "refresh_token"), ("api:read",))
    assert (web.first_party, web.id_token_signed_response_alg) == (True, "EdDSA")
    assert (web.require_mfa, spa.require_mfa) == (True, False)
    assert web.token_endpoint_auth_method == "client_secret_post"
    assert (spa.public, spa.secret_hash, spa.grant_types) == (True, None, ("authorization_code",))


@pytest.mark.parametrize(
    ("replace", "by", "message"),
    [
        ("public = true", 'public = true\nsecret_sha256 = "' + "a" * 64 + '"', "no secret"),
        (
            'redirect_uris = ["http://127.0.0.1:5173/cb"]',
            'redirect_uris = ["http://evil.example/cb"]',
            "clients[1]: redirect_uris",
        ),
        ('scopes = ["api:read"]', 'grant_types = ["password"]', "clients[0]: grant_types"),
        ('id = "spa"', 'id = "web"', "listed twice"),
    ],
    ids=["public-with-secret", "plain-http-redirect", "unknown-grant", "duplicate"],
)
def test_bad_client_registrations_are_refused(tmp_path: Path, replace: str, by: str, message: str) -> None:
    """A bad registration stops start-up, naming IDP_CONFIG and the client entry."""
    with pytest.raises(ConfigError, match="IDP_CONFIG") as error:
        registrations(write(tmp_path, REGISTRATIONS.replace(replace, by)))
    assert message in str(error.value)


def test_private_key_jwt_client_in_the_file(tmp_path: Path) -> None:
    """A private_key_jwt client registers public keys and no secret; private keys are refused."""
    public = (
        '{"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", '
        '"x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", '
        '"y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}'
    )
    text = f"""
[[clients]]
id = "signer"
token_endpoint_auth_method = "private_key_jwt"
grant_types = ["client_credentials"]
jwks = '{public}'
"""
    signer = registrations(write(tmp_path, text))["signer"]
    assert (signer.secret_hash, signer.token_endpoint_auth_method) == (None, "private_key_jwt")
    assert '"kid":"k1"' in (signer.jwks or "")
    leaked = text.replace('"kid": "k1"', '"kid": "k1", "d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"')
    with pytest.raises(ConfigError, match="public keys only"):
        registrations(write(tmp_path, leaked))
