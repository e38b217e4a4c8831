"""Key files: one private JWK per file, ``<kid>.json``, mode 0600, in a 0700 folder.

A key's life: *published* from the moment its file exists; *signing* from ``activates_at``
until ``retires_at``; *pruned* (file removed) once every token it signed has expired.
``rotate`` publishes a new key at once but lets it sign only after a delay of at least the
JWKS max-age, so every verifier's cache has seen it before the first token it signs arrives.
A key that signs at once (``add_signing_key``) is only for a folder where no key of its
algorithm signs or is staged to, or, forced, to replace them all at once (a compromised key).
Keys form one line per algorithm (access tokens use ``IDP_SIGNING_ALG``'s, ID tokens the
client's, RS256 by default). Every change keeps one invariant: at most one key of each
algorithm signs at any instant.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import msgspec
from joserfc.jwk import ECKey, OKPKey, RSAKey

__all__ = [
    "KeyFileError",
    "KeyInService",
    "StoredKey",
    "add_signing_key",
    "ensure_alg_key",
    "ensure_signing_key",
    "generate_key",
    "load_keys",
    "make_key",
    "prune_keys",
    "rotate_keys",
    "write_key",
]

Alg = Literal["EdDSA", "RS256", "ES256"]
AnyKey = OKPKey | RSAKey | ECKey
# Clock skew tolerated when deciding that every token a key signed has expired.
PRUNE_MARGIN_SECONDS = 60


class KeyFileError(Exception):
    """A key file is unreadable or malformed."""


class KeyInService(Exception):
    """A key signs, or is staged to: a key signing at once would bypass the rotation delay."""

    def __init__(self, keys: list[StoredKey]) -> None:
        super().__init__(", ".join(f"{key.kid} ({key.alg})" for key in keys))
        self.keys = keys


class StoredKey(msgspec.Struct, frozen=True, kw_only=True):
    kid: str
    alg: Alg
    created_at: float
    activates_at: float
    retires_at: float | None = None
    jwk: dict[str, str]

    def is_signing(self, now: float) -> bool:
        return self.activates_at <= now and (self.retires_at is None or now < self.retires_at)

    def state(self, now: float) -> str:
        if self.retires_at is not None and now >= self.retires_at:
            return "retired"  # a staged key replaced before it activated retires unused
        if now < self.activates_at:
            return "pending"
        return "signing"

    def in_service(self, now: float) -> bool:
        """Signing now or staged to: the keys a new signing key takes over from."""
        return self.retires_at is None or now < self.retires_at


def make_key(alg: Alg) -> AnyKey:
    """A fresh private key for ``alg``; RSA keys are 2048-bit (NIST SP 800-57 through 2030)."""
    key: AnyKey
    if alg == "EdDSA":
        key = OKPKey.generate_key("Ed25519", auto_kid=False)
    elif alg == "ES256":
        key = ECKey.generate_key("P-256", auto_kid=False)
    else:
        key = RSAKey.generate_key(2048, auto_kid=False)
    return key


def _key_path(directory: Path, kid: str) -> Path:
    return directory / f"{kid}.json"


def write_key(directory: Path, stored: StoredKey) -> Path:
    """Write atomically (temp file + rename) with mode 0600."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = _key_path(directory, stored.kid)
    temp = directory / f".{stored.kid}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, msgspec.json.format(msgspec.json.encode(stored)))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(temp, 0o600)
    temp.replace(target)
    return target


def generate_key(directory: Path, alg: Alg, now: float, *, activates_at: float | None = None) -> StoredKey:
    """Create and store a new key; it signs from ``activates_at`` (default: now)."""
    key = make_key(alg)
    kid = key.thumbprint()
    jwk = {name: str(value) for name, value in key.as_dict(private=True).items()}
    jwk["kid"] = kid
    stored = StoredKey(
        kid=kid,
        alg=alg,
        created_at=now,
        activates_at=now if activates_at is None else activates_at,
        jwk=jwk,
    )
    write_key(directory, stored)
    return stored


def load_keys(directory: Path) -> list[StoredKey]:
    """Every key file in the folder, oldest activation first."""
    if not directory.is_dir():
        return []
    keys = []
    for path in sorted(directory.glob("*.json")):
        try:
            keys.append(msgspec.json.decode(path.read_bytes(), type=StoredKey))
        except (OSError, msgspec.DecodeError) as exc:
            raise KeyFileError(f"cannot read key file {path.name}: {exc}") from exc
    keys.sort(key=lambda k: (k.activates_at, k.kid))
    return keys


@contextlib.contextmanager
def _folder_lock(directory: Path) -> Iterator[None]:
    """Serialise key-folder changes across processes (CLI runs, dev auto-generation)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def ensure_signing_key(directory: Path, alg: Alg, now: float) -> StoredKey | None:
    """Generate a first key if the folder has none; return it, or None if keys existed."""
    with _folder_lock(directory):
        if load_keys(directory):
            return None
        return generate_key(directory, alg, now)


def ensure_alg_key(directory: Path, alg: Alg, now: float) -> StoredKey | None:
    """Generate a key of ``alg`` if the folder has none (development: the RS256 key that OpenID
    Connect requires for ID tokens, beside the default EdDSA one); None if one existed."""
    with _folder_lock(directory):
        if any(key.alg == alg for key in load_keys(directory)):
            return None
        return generate_key(directory, alg, now)


def add_signing_key(directory: Path, alg: Alg, now: float, *, force: bool = False) -> StoredKey:
    """A new key that signs at once: refused (:class:`KeyInService`) while a key of ``alg``
    signs or is staged, since verifiers with a cached JWKS would reject its tokens; ``force``
    retires those keys now instead (they stay published for the tokens they signed)."""
    with _folder_lock(directory):
        in_service = _in_service(directory, alg, now)
        if in_service and not force:
            raise KeyInService(in_service)
        new = generate_key(directory, alg, now)
        _retire(directory, in_service, now)
        return new


def _in_service(directory: Path, alg: Alg, now: float) -> list[StoredKey]:
    return [key for key in load_keys(directory) if key.alg == alg and key.in_service(now)]


def _retire(directory: Path, keys: list[StoredKey], at: float) -> None:
    for key in keys:
        if key.retires_at is None or key.retires_at > at:
            write_key(directory, msgspec.structs.replace(key, retires_at=at))


def rotate_keys(directory: Path, alg: Alg, now: float, delay: float) -> StoredKey:
    """Publish a new key now; it takes over signing for its algorithm at ``now + delay``.

    Every key of the same algorithm still signing (or due to) retires when the new one
    activates, so exactly one key per algorithm signs at any instant and the hand-over needs no
    coordination between instances. Keys of other algorithms are untouched; rotating to an
    algorithm with no key yet starts its line (published now, signing after the delay).
    """
    with _folder_lock(directory):
        in_service = _in_service(directory, alg, now)
        new = generate_key(directory, alg, now, activates_at=now + delay)
        _retire(directory, in_service, new.activates_at)
        return new


def prune_keys(directory: Path, now: float, max_token_ttl: float) -> list[StoredKey]:
    """Remove keys retired long enough ago that no token they signed is still valid."""
    with _folder_lock(directory):
        removed = []
        for key in load_keys(directory):
            if key.retires_at is not None and key.retires_at + max_token_ttl + PRUNE_MARGIN_SECONDS < now:
                _key_path(directory, key.kid).unlink()
                removed.append(key)
        return removed
