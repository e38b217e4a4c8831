"""Our access tokens verify offline with jose for Node.js (``createRemoteJWKSet`` + ``jwtVerify``).

Needs ``npm ci --prefix tests/interop/node``; without it the tests fail, they never skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.interop.helpers import (
    ALGS,
    NodeVerifier,
    assert_tokens_verified,
    jwks_max_age,
    login,
    require_node,
    server_env,
    signup,
    tamper,
)
from tests.support.server import run_server

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("alg", ALGS)
def test_jose_verifies_signup_and_login_tokens(tmp_path: Path, alg: str) -> None:
    """jose, knowing only the JWKS URL, issuer and audience, accepts tokens from signup and login.

    One long-lived Node process with one remote JWKS set verifies signature, ``alg`` (only
    ``alg`` allowed), ``iss``, ``aud``, ``exp``/``iat`` and ``typ: at+jwt`` of tokens a real
    ``idp serve`` signed with ``alg``. A forged token and a verifier expecting another audience
    must be refused, so the verifier is shown to check what it is trusted to check.
    """
    require_node()
    with run_server(tmp_path, server_env(tmp_path, alg)) as server:
        jwks_max_age(server, alg)  # every published key has alg's shape and no private members
        email, signup_token = signup(server)
        login_token = login(server, email)

        with NodeVerifier(server, [alg]) as verifier:
            assert_tokens_verified(verifier.verify, (signup_token, login_token), server, alg, email)

            forged = verifier.verify(tamper(login_token))
            assert not forged["ok"]
            assert forged["code"] == "ERR_JWS_SIGNATURE_VERIFICATION_FAILED", forged

        with NodeVerifier(server, [alg], audience="https://another-api.example") as other_audience:
            wrong_audience = other_audience.verify(login_token)
            assert not wrong_audience["ok"]
            assert wrong_audience["code"] == "ERR_JWT_CLAIM_VALIDATION_FAILED", wrong_audience
