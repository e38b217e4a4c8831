"""The in-memory view of the key folder that the running service signs and verifies with.

Each instance re-reads the folder when a file changes (checked every few seconds by the app's
background task, via :meth:`KeyRing.refresh`), so a key rotated with the CLI reaches every
running instance without a restart. The JWKS document is pre-serialised with its ETag.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc.jwk import ECKey, OKPKey, RSAKey, import_key
from nacl.bindings import crypto_sign, crypto_sign_seed_keypair

from service.clock import Clock
from service.keys.files import StoredKey, load_keys

__all__ = ["KeyRing", "LoadedKey", "NoSigningKey"]

logger = logging.getLogger("idp.keys")

PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class NoSigningKey(Exception):
    """No key in the folder may sign at this instant."""


class LoadedKey(msgspec.Struct, frozen=True):
    stored: StoredKey
    key: OKPKey | RSAKey | ECKey
    header: dict[str, str]
    header_segment: bytes
    """The JWS protected header, base64url-encoded once: ``{"alg", "kid", "typ": "at+jwt"}``."""
    jwt_header_segment: bytes
    """The same with ``"typ": "JWT"``, for ID tokens (OIDC Core §2)."""
    sign: Callable[[bytes], bytes]
    """The JWS signature (RFC 7518 §3) of a signing input with this key (see :func:`_signer`)."""


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _ed25519_signer(private: Ed25519PrivateKey) -> Callable[[bytes], bytes]:
    """Ed25519 by libsodium (PyNaCl): the same signature as ``cryptography``'s (RFC 8032
    signatures are deterministic) in ~0.6 of its time, and a signature is the largest single
    cost of a refresh (docs/PERFORMANCE.md)."""
    seed = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    _, secret = crypto_sign_seed_keypair(seed)

    def eddsa(data: bytes) -> bytes:
        return crypto_sign(data, secret)[:64]  # signature || message

    return eddsa


def _signer(key: OKPKey | RSAKey | ECKey, alg: str) -> Callable[[bytes], bytes] | None:
    """The signing function for our three algorithms (None otherwise): ``cryptography``'s,
    libsodium's for Ed25519."""
    private = key.private_key
    if alg == "EdDSA" and isinstance(private, Ed25519PrivateKey):
        return _ed25519_signer(private)
    if alg == "RS256" and isinstance(private, rsa.RSAPrivateKey):
        return lambda data: private.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if (
        alg == "ES256"
        and isinstance(private, ec.EllipticCurvePrivateKey)
        and private.curve.name == "secp256r1"
    ):

        def es256(data: bytes) -> bytes:
            r, s = decode_dss_signature(private.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")  # JWS: fixed-size R || S

        return es256
    return None


class KeyRing:
    def __init__(self, directory: Path, clock: Clock, default_alg: str | None = None) -> None:
        """``default_alg``: the algorithm access tokens prefer (``IDP_SIGNING_ALG``)."""
        self._directory = directory
        self._clock = clock
        self._default_alg = default_alg
        self._fingerprint: tuple[tuple[str, int, int], ...] | None = None
        self._keys: list[LoadedKey] = []
        self._by_kid: dict[str, LoadedKey] = {}
        self.jwks_body = b'{"keys":[]}'
        self.jwks_etag = '"empty"'

    @property
    def keys(self) -> list[StoredKey]:
        return [loaded.stored for loaded in self._keys]

    def _folder_fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        if not self._directory.is_dir():
            return ()
        entries = []
        for path in self._directory.glob("*.json"):
            stat = path.stat()
            entries.append((path.name, stat.st_mtime_ns, stat.st_size))
        return tuple(sorted(entries))

    def refresh(self) -> bool:
        """Reload when any key file changed; return True if it did."""
        fingerprint = self._folder_fingerprint()
        if fingerprint == self._fingerprint:
            return False
        loaded = []
        for stored in load_keys(self._directory):
            key = import_key(dict(stored.jwk))
            if not isinstance(key, OKPKey | RSAKey | ECKey):
                continue  # symmetric keys are never used for signing tokens
            signer = _signer(key, stored.alg)
            if signer is None:
                logger.warning(
                    "key %s is not a private %s key: not published, never signs", stored.kid, stored.alg
                )
                continue
            header = {"alg": stored.alg, "kid": stored.kid, "typ": "at+jwt"}
            jwt_header = b64url(msgspec.json.encode({**header, "typ": "JWT"}))
            loaded.append(
                LoadedKey(stored, key, header, b64url(msgspec.json.encode(header)), jwt_header, signer)
            )
        self._keys = loaded
        self._by_kid = {item.stored.kid: item for item in loaded}
        self._fingerprint = fingerprint
        self.jwks_body = self._jwks_document()
        self.jwks_etag = f'"{hashlib.sha256(self.jwks_body).hexdigest()[:32]}"'
        return True

    def _jwks_document(self) -> bytes:
        published = []
        # Newest first: verifiers that scan rather than look up by kid find the signer fast.
        for item in reversed(self._keys):
            public = {
                name: value
                for name, value in item.key.as_dict(private=False).items()
                if name not in PRIVATE_MEMBERS
            }
            public.update({"kid": item.stored.kid, "alg": item.stored.alg, "use": "sig"})
            published.append(public)
        return msgspec.json.encode({"keys": published})

    def signing_key(self, alg: str | None = None) -> LoadedKey:
        """The key that signs now: the most recently activated one still in its window, of
        ``alg`` exactly when given (ID tokens); else of the default algorithm, or any."""
        now = self._clock()
        signing = [item for item in reversed(self._keys) if item.stored.is_signing(now)]
        wanted = alg or self._default_alg
        for item in signing:
            if item.stored.alg == wanted:
                return item
        if alg is None and signing:
            return signing[0]
        raise NoSigningKey(f"no {alg or ''} key in the keys folder may sign now".replace("  ", " "))

    def signing_algs(self) -> list[str]:
        """The algorithms that have a key signing now (what ID tokens can be signed with)."""
        now = self._clock()
        return sorted({item.stored.alg for item in self._keys if item.stored.is_signing(now)})

    def verification_key(self, kid: str) -> LoadedKey | None:
        """A published key by id; ``kid`` is only ever a dictionary lookup."""
        return self._by_kid.get(kid)
