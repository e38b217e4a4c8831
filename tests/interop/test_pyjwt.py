"""Our access tokens verify offline with PyJWT (``PyJWKClient`` + ``jwt.decode``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.interop.helpers import (
    ALGS,
    PyJWTVerifier,
    assert_tokens_verified,
    jwks_max_age,
    login,
    server_env,
    signup,
    tamper,
)
from tests.support.server import run_server

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("alg", ALGS)
def test_pyjwt_verifies_signup_and_login_tokens(tmp_path: Path, alg: str) -> None:
    """PyJWT, knowing only the JWKS URL, issuer and audience, accepts tokens from signup and login.

    A real ``idp serve`` signs with ``alg`` (IDP_SIGNING_ALG); PyJWT fetches the JWKS, picks the
    key by ``kid`` and verifies signature, ``alg`` (only ``alg`` allowed), ``iss``, ``aud``,
    ``exp``/``iat`` and ``typ: at+jwt``. Forged and wrong-audience tokens must be rejected, so
    the verifier is shown to check what it is trusted to check.
    """
    with run_server(tmp_path, server_env(tmp_path, alg)) as server:
        jwks_max_age(server, alg)  # every published key has alg's shape and no private members
        email, signup_token = signup(server)
        login_token = login(server, email)
        verifier = PyJWTVerifier(server, alg)

        assert_tokens_verified(verifier.verify, (signup_token, login_token), server, alg, email)

        forged = verifier.verify(tamper(login_token))
        assert not forged["ok"]
        assert forged["code"] == "InvalidSignatureError", forged

        other_audience = PyJWTVerifier(server, alg, audience="https://another-api.example")
        wrong_audience = other_audience.verify(login_token)
        assert not wrong_audience["ok"]
        assert wrong_audience["code"] == "InvalidAudienceError", wrong_audience
