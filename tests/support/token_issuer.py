"""A minimal trusted issuer for RFC 8693 token exchange: an Ed25519 key, its JWKS served on a
free loopback port, and signed subject JWTs. Used where a test needs client-bound refresh
families (the only kind a confidential client may introspect) without a Node peer."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwt
from joserfc.jwk import OKPKey

__all__ = ["TokenIssuer", "run_token_issuer"]


class TokenIssuer:
    def __init__(self, url: str, key: OKPKey) -> None:
        self.url = url
        self.jwks_uri = f"{url}/jwks"
        self._key = key

    def sign(self, *, subject: str, email: str, audience: str, email_verified: bool = True) -> str:
        """A fresh subject token (unique ``jti``, so each one is a new exchange)."""
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": audience,
            "sub": subject,
            "email": email,
            "emailVerified": email_verified,
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode({"alg": "EdDSA", "kid": self._key.kid}, claims, self._key, algorithms=["EdDSA"])


@contextmanager
def run_token_issuer() -> Iterator[TokenIssuer]:
    """Serve the issuer's JWKS on 127.0.0.1 until the block ends."""
    key = OKPKey.generate_key("Ed25519", parameters={"use": "sig", "alg": "EdDSA"})
    key.ensure_kid()
    body = json.dumps({"keys": [key.as_dict(private=False)]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = 200 if self.path == "/jwks" else 404
            payload = body if status == 200 else b"{}"
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "max-age=300")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield TokenIssuer(f"http://127.0.0.1:{server.server_address[1]}", key)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
