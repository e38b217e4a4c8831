"""Schemathesis against the served OpenAPI document of a live server: no 5xx for anything the
schema allows (or nearly allows), and declared responses match their schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.schemas import BaseSchema

from service.app import create_app
from service.config import load_settings
from tests.support.server import RunningServer, run_server

EXAMPLES_PER_OPERATION = 100


def operations() -> list[tuple[str, str]]:
    """(METHOD, path) of every documented operation, read from the app itself at collection."""
    document = create_app(load_settings({})).openapi_schema.to_schema()
    return [(method.upper(), path) for path, item in document["paths"].items() for method in item]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with run_server(tmp_path_factory.mktemp("fuzz")) as server:
        yield server


@pytest.fixture(scope="module")
def api_schema(live_server: RunningServer) -> BaseSchema:
    return schemathesis.openapi.from_url(f"{live_server.url}/schema/openapi.json")


@pytest.mark.parametrize(("method", "path"), operations())
def test_no_server_errors(api_schema: BaseSchema, live_server: RunningServer, method: str, path: str) -> None:
    """Every generated request gets a non-5xx answer that matches its declared schema."""
    operation = api_schema[path][method]

    @hypothesis.given(case=operation.as_strategy())
    @hypothesis.settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        database=None,
    )
    def run(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(
            base_url=live_server.url, checks=[not_a_server_error, response_schema_conformance], timeout=10
        )

    run()


def test_schema_lists_the_public_operations() -> None:
    """The fuzzed document covers the account, OAuth and discovery routes (the fuzzing is not empty)."""
    paths = {path for _, path in operations()}
    assert {"/v1/signup", "/v1/login", "/v1/me", "/oauth2/token", "/.well-known/jwks.json"} <= paths
