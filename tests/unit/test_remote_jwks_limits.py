"""A trusted issuer's JWKS document is parsed with size and nesting limits: a hostile or broken
issuer makes the exchange fail closed (503), never recurse or buffer without bound."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from joserfc.jwk import OKPKey

from service.clock import FrozenClock
from service.exchange.remote_jwks import MAX_JWKS_BYTES, JWKSUnavailable, RemoteJWKS

KEY = OKPKey.generate_key("Ed25519", parameters={"alg": "EdDSA"})
KEY.ensure_kid()
KID = KEY.kid or ""
GOOD = json.dumps({"keys": [KEY.as_dict(private=False)]}).encode()


@pytest.fixture
def serve() -> Iterator[dict[str, Any]]:
    """A loopback server answering GET with ``state["body"]``, chunked (no Content-Length)."""
    state: dict[str, Any] = {"body": GOOD}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            body: bytes = state["body"]
            for start in range(0, len(body), 65_536):
                chunk = body[start : start + 65_536]
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/jwks"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize(
    "body",
    [
        b'{"keys": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
        b'{"keys": [{"kid": "x", "x5c": ' + b'{"a":' * 2_000 + b"1" + b"}" * 2_000 + b"}]}",
        b'{"keys": [], "pad": "' + b"a" * (MAX_JWKS_BYTES + 1) + b'"}',
    ],
    ids=["deep-arrays", "deep-member", "too-large"],
)
async def test_hostile_documents_fail_closed(serve: dict[str, Any], body: bytes) -> None:
    """A deep or oversized JWKS is JWKSUnavailable (the exchange's 503), not a RecursionError."""
    serve["body"] = body
    async with httpx.AsyncClient() as http:
        jwks = RemoteJWKS(issuer="https://issuer.example", url=serve["url"], http=http, clock=FrozenClock(0))
        with pytest.raises(JWKSUnavailable):
            await jwks.key(KID)


async def test_a_good_document_still_loads(serve: dict[str, Any]) -> None:
    """The streamed, bounded read returns the issuer's key as before."""
    async with httpx.AsyncClient() as http:
        jwks = RemoteJWKS(issuer="https://issuer.example", url=serve["url"], http=http, clock=FrozenClock(0))
        key = await jwks.key(KID)
    assert key is not None
    assert key.thumbprint() == KEY.thumbprint()
