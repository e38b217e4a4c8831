"""Key rotation, seen by verifiers we did not write that cache the JWKS as the server tells them.

Both verifiers live for the whole test (one ``PyJWKClient``, one Node process running jose), cache
the JWKS for the ``Cache-Control: max-age`` the server sends, and keep their libraries' default
30 s cool-down before an unknown ``kid`` may force a re-fetch. Within a short test that cool-down
means they can only know a key they fetched on a regular cache refresh: exactly the verifiers the
rotation design (publish at once, sign only after a delay of at least the max-age) must serve.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.interop.helpers import (
    ALGS,
    NodeVerifier,
    PyJWTVerifier,
    VerifyResult,
    jwks_max_age,
    login,
    require_node,
    rotate_keys,
    server_env,
    signup,
    unverified_header,
)
from tests.support.server import RunningServer, run_server

pytestmark = pytest.mark.slow

JWKS_MAX_AGE = 2
# The smallest delay the service accepts: max-age + the keys-folder reload interval (rounded up),
# since the JWKS shows the key only at the server's next folder check.
ROTATION_DELAY = 3
RELOAD_INTERVAL = 0.2
ROTATE_AFTER_SECONDS = 1.0
NEW_KEY_TOKENS_WANTED = 5
TIME_LIMIT_SECONDS = 30.0
MAX_LOGINS = 1000
PAUSE_SECONDS = 0.05


@dataclass
class Verifiers:
    """Both foreign verifiers, asked about every token; every refusal is recorded."""

    pyjwt: PyJWTVerifier
    node: NodeVerifier
    failures: list[str] = field(default_factory=list)

    def verify(self, token: str, label: str) -> bool:
        results: dict[str, VerifyResult] = {
            "PyJWT": self.pyjwt.verify(token),
            "jose": self.node.verify(token),
        }
        for name, result in results.items():
            if not result["ok"]:
                kid = unverified_header(token).get("kid")
                self.failures.append(f"{name} refused {label} (kid {kid}): {result}")
        return all(result["ok"] for result in results.values())


def _rotation_env(tmp_path: Path, alg: str, *, max_age: int, delay: int) -> dict[str, str]:
    return server_env(
        tmp_path,
        alg,
        IDP_JWKS_MAX_AGE=str(max_age),
        IDP_KEY_ROTATION_DELAY=str(delay),
        IDP_KEYS_RELOAD_INTERVAL=str(RELOAD_INTERVAL),
    )


def _verifiers(server: RunningServer, alg: str, max_age: int) -> tuple[PyJWTVerifier, NodeVerifier]:
    """Verifiers caching the JWKS for the server's max-age, library defaults otherwise."""
    return (
        PyJWTVerifier(server, alg, lifespan=max_age),
        NodeVerifier(server, [alg], cache_max_age_ms=max_age * 1000),
    )


@pytest.mark.parametrize("alg", ALGS)
def test_rotation_never_fails_a_caching_verifier(tmp_path: Path, alg: str) -> None:
    """Across ``idp keys rotate``, PyJWT and jose verify every token, old kid and new.

    A server rotates with small timings (max-age 2 s, delay 3 s, reload 0.2 s). The test logs in
    repeatedly and has both long-lived verifiers check each new token; half-way it runs the CLI
    ``python -m service keys rotate`` on the server's keys folder. It goes on until tokens with the
    new ``kid`` have been verified by both, then checks a token of the retired key again. It
    fails on any refusal, on a new-kid token issued before the announced delay, on the retired
    key signing after the new one took over, or if the new key never signs within 30 s.
    """
    require_node()
    env = _rotation_env(tmp_path, alg, max_age=JWKS_MAX_AGE, delay=ROTATION_DELAY)
    with run_server(tmp_path, env) as server:
        assert jwks_max_age(server, alg) == JWKS_MAX_AGE
        email, first_token = signup(server)
        old_kid = unverified_header(first_token)["kid"]
        pyjwt_verifier, node_verifier = _verifiers(server, alg, JWKS_MAX_AGE)
        with node_verifier:
            verifiers = Verifiers(pyjwt_verifier, node_verifier)
            # Both caches now hold the JWKS as it was before the rotation.
            assert verifiers.verify(first_token, "the signup token"), verifiers.failures

            started = time.monotonic()
            new_kid: str | None = None
            rotated_at = 0.0
            kids_issued: Counter[str] = Counter()
            kids_verified: Counter[str] = Counter()
            last_old_token = first_token
            for attempt in range(MAX_LOGINS):
                if time.monotonic() - started > TIME_LIMIT_SECONDS:
                    break
                if new_kid is None and time.monotonic() - started >= ROTATE_AFTER_SECONDS:
                    rotated_at = time.time()
                    new_kid = rotate_keys(tmp_path, env)
                    assert new_kid != old_kid
                token = login(server, email)
                received_at = time.time()
                kid = unverified_header(token)["kid"]
                kids_issued[kid] += 1
                if verifiers.verify(token, f"login token #{attempt}"):
                    kids_verified[kid] += 1
                if kid == old_kid:
                    last_old_token = token
                    if new_kid is not None and kids_issued[new_kid]:
                        verifiers.failures.append(f"the retired key {kid} signed after the new one")
                elif kid == new_kid:
                    if received_at < rotated_at + ROTATION_DELAY:
                        verifiers.failures.append(
                            f"new key {kid} signed {received_at - rotated_at:.2f}s after the rotation, "
                            f"before its {ROTATION_DELAY}s delay"
                        )
                    if kids_issued[kid] >= NEW_KEY_TOKENS_WANTED:
                        break
                else:
                    verifiers.failures.append(f"token signed by unexpected kid {kid}")
                time.sleep(PAUSE_SECONDS)

            # A token the retired key signed stays valid until it expires.
            verifiers.verify(last_old_token, "the last token of the retired key, after the hand-over")

    assert verifiers.failures == []
    assert new_kid is not None, "the test never reached the rotation"
    assert kids_verified[old_kid] >= 2, f"too few tokens before the rotation: {dict(kids_verified)}"
    assert kids_verified[new_kid] >= NEW_KEY_TOKENS_WANTED, (
        f"the new key {new_kid} did not sign {NEW_KEY_TOKENS_WANTED} verified tokens within "
        f"{TIME_LIMIT_SECONDS}s: issued {dict(kids_issued)}, verified {dict(kids_verified)}"
    )


def test_control_a_key_that_signs_before_caches_saw_it_is_refused(tmp_path: Path) -> None:
    """Control: the verifiers above really rely on their cache, so the rotation test can fail.

    Same verifiers, but the new key is made to sign at once (``keys rotate --delay 0 --force``)
    while their cached JWKS (max-age 10 s here) predates it: both must refuse its first token
    for want of a matching key. If this ever passes vacuously, the rotation test proves nothing.
    """
    require_node()
    alg = "EdDSA"
    max_age = 10
    env = _rotation_env(tmp_path, alg, max_age=max_age, delay=max_age + 1)
    with run_server(tmp_path, env) as server:
        email, first_token = signup(server)
        old_kid = unverified_header(first_token)["kid"]
        pyjwt_verifier, node_verifier = _verifiers(server, alg, max_age)
        with node_verifier:
            assert pyjwt_verifier.verify(first_token)["ok"]
            assert node_verifier.verify(first_token)["ok"]
            new_kid = _force_rotate_now(tmp_path, env)
            assert new_kid != old_kid

            deadline = time.monotonic() + max_age / 2
            token = first_token
            while unverified_header(token)["kid"] != new_kid and time.monotonic() < deadline:
                time.sleep(PAUSE_SECONDS)
                token = login(server, email)
            assert unverified_header(token)["kid"] == new_kid, "the forced key never signed"

            pyjwt_result = pyjwt_verifier.verify(token)
            node_result = node_verifier.verify(token)

    assert not pyjwt_result["ok"]
    assert pyjwt_result["code"] == "PyJWKClientError", pyjwt_result
    assert not node_result["ok"]
    assert node_result["code"] == "ERR_JWKS_NO_MATCHING_KEY", node_result


def _force_rotate_now(workdir: Path, env: dict[str, str]) -> str:
    """``keys rotate --delay 0 --force``: the new key signs as soon as the server reloads."""
    return rotate_keys(workdir, env, "--delay", "0", "--force")
