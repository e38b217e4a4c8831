"""Hostile and malformed requests get a clear 4xx JSON error, never a 500 or a trace."""

from __future__ import annotations

import httpx
import pytest

Client = httpx.AsyncClient
JSON = "application/json"
VALID = b'{"email": "a@example.com", "password": "correct horse"}'
UNSUPPORTED = (415, "unsupported_media_type")


@pytest.mark.parametrize(
    ("body", "content_type", "status", "error"),
    [
        (b"{bad", JSON, 400, "invalid_request"),
        (b"", JSON, 400, "invalid_request"),
        (b"\xff\xfe\xfa", JSON, 400, "invalid_request"),
        (b'{"email": "\xff@example.com", "password": "x"}', JSON, 400, "invalid_request"),
        (b"[]", JSON, 400, "invalid_request"),
        (b"null", JSON, 400, "invalid_request"),
        (b'{"email": 1, "password": "correct horse"}', JSON, 400, "invalid_request"),
        (b'{"email": "a@example.com"}', JSON, 400, "invalid_request"),
        (VALID[:-1] + b', "admin": true}', JSON, 400, "invalid_request"),
        (VALID, "text/plain", *UNSUPPORTED),
        (VALID, None, *UNSUPPORTED),
        (b"email=a%40example.com&password=x", "application/x-www-form-urlencoded", *UNSUPPORTED),
        (b'{"email": "' + b"a" * 70_000 + b'"}', JSON, 413, "request_too_large"),
    ],
    ids=[
        "malformed", "empty", "non-utf8", "non-utf8-in-string", "array", "null", "wrong-type",
        "missing-field", "unknown-field", "text-plain", "no-content-type", "form", "over-64k",
    ],
)  # fmt: skip
@pytest.mark.parametrize("path", ["/v1/signup", "/v1/login"])
async def test_bad_bodies(
    client: Client, path: str, body: bytes, content_type: str | None, status: int, error: str
) -> None:
    """Each malformed body yields its 4xx with the error body and no-store."""
    headers = {} if content_type is None else {"content-type": content_type}
    response = await client.post(path, content=body, headers=headers)
    assert (response.status_code, response.json()["error"]) == (status, error)
    assert set(response.json()) == {"error", "error_description"}
    assert response.headers["cache-control"] == "no-store"
    assert "Traceback" not in response.text


async def test_unknown_route_and_method(client: Client) -> None:
    """404 and 405 use the same error body."""
    missing = await client.get("/nope")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    wrong = await client.delete("/v1/login")
    assert (wrong.status_code, wrong.json()["error"]) == (405, "method_not_allowed")


async def test_nothing_half_written_on_failure(client: Client) -> None:
    """A refused signup leaves no account behind: a later valid signup succeeds."""
    refused = await client.post("/v1/signup", json={"email": "a@example.com", "password": "password"})
    assert refused.status_code == 422
    accepted = await client.post(
        "/v1/signup", json={"email": "a@example.com", "password": "correct horse battery"}
    )
    assert accepted.status_code == 201
