"""Fixtures of the verification-kit tests: one live IdP (SQLite and keys in a temporary folder)
and one account for the whole session; kits are started by the tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.examples.kits import Account, Forge, IdP, start_idp


@pytest.fixture(scope="session")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdP]:
    """A live ``idp serve`` on a free loopback port with default settings (JWKS max-age 300 s)."""
    with start_idp(tmp_path_factory.mktemp("idp")) as running:
        yield running


@pytest.fixture(scope="session")
def account(idp: IdP) -> Account:
    """An account created through ``POST /v1/signup``, with the access token it returned."""
    return idp.signup()


@pytest.fixture(scope="session")
def forge(idp: IdP, account: Account) -> Forge:
    """Hostile tokens for ``account``, signed with the IdP's own key unless said otherwise."""
    return Forge(idp, account)
