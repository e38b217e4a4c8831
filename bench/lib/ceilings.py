"""Raw hash rates: what a login could reach if the server did nothing but hash.

- argon2id with the service defaults (service/config.py; deliberately not the tests'
  ``CHEAP_ARGON2``), one verifier thread per core (it releases the GIL), by the implementation
  ``service/passwords.py`` runs for them: libsodium (PyNaCl), 0.47 to 0.9 of argon2-cffi's time
  for the same hash depending on the CPU and the huge page mode (``lib.procs.machine``);
  ``reference=True`` measures argon2-cffi's instead;
- scrypt with Better Auth's parameters through Node's ``crypto.scrypt`` (what Better Auth calls),
  ``inflight`` at a time.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import nacl.pwhash
import nacl.pwhash.argon2id
from argon2 import PasswordHasher, Type

__all__ = [
    "ARGON2_MEMORY_KIB",
    "ARGON2_PARALLELISM",
    "ARGON2_TIME_COST",
    "SCRYPT_DKLEN",
    "SCRYPT_N",
    "SCRYPT_P",
    "SCRYPT_R",
    "make_hasher",
    "raw_argon2_rate",
    "raw_scrypt_rate",
]

ARGON2_MEMORY_KIB = 19456
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1
SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN = 16384, 16, 1, 64


def make_hasher() -> PasswordHasher:
    """A hasher with the service's default parameters (its hashes verify in the service)."""
    return PasswordHasher(
        time_cost=ARGON2_TIME_COST,
        memory_cost=ARGON2_MEMORY_KIB,
        parallelism=ARGON2_PARALLELISM,
        hash_len=32,
        salt_len=16,
        type=Type.ID,
    )


def _sodium_verifier(password: str) -> Callable[[], object]:
    """One default-parameter hash, checked as the service checks it (libsodium)."""
    secret = password.encode()
    encoded = nacl.pwhash.argon2id.str(secret, opslimit=ARGON2_TIME_COST, memlimit=ARGON2_MEMORY_KIB * 1024)
    return lambda: nacl.pwhash.verify(encoded, secret)


def _reference_verifier(password: str) -> Callable[[], object]:
    hasher = make_hasher()
    encoded = hasher.hash(password)
    return lambda: hasher.verify(encoded, password)


def raw_argon2_rate(seconds: float, threads: int, *, reference: bool = False) -> float:
    """Verifications per second with ``threads`` verifiers running flat out for ``seconds``
    (libsodium, as the service; argon2-cffi with ``reference``)."""
    password = "bench-" + secrets.token_urlsafe(12)
    verify = (_reference_verifier if reference else _sodium_verifier)(password)
    verify()  # warm: allocator, code paths
    barrier = threading.Barrier(threads)

    def verifier() -> tuple[int, float, float]:
        barrier.wait()
        started = time.perf_counter()
        deadline = started + seconds
        done = 0
        while time.perf_counter() < deadline:
            verify()
            done += 1
        return done, started, time.perf_counter()

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="raw-argon2") as pool:
        results = list(pool.map(lambda _: verifier(), range(threads)))
    total = sum(done for done, _, _ in results)
    elapsed = max(end for _, _, end in results) - min(start for _, start, _ in results)
    return total / elapsed


NODE_SCRYPT = (
    """
const { scrypt, randomBytes } = require("node:crypto");
const [seconds, inflight] = [Number(process.argv[1]), Number(process.argv[2])];
const N = {n}, r = {r}, p = {p}, dkLen = {dklen};
const opts = { N, r, p, maxmem: 128 * N * r * 2 };
const salt = randomBytes(16).toString("hex");
let done = 0, running = inflight;
const start = process.hrtime.bigint();
const deadline = start + BigInt(Math.round(seconds * 1e9));
let last = start;
function one() {
  scrypt("bench-password-1234".normalize("NFKC"), salt, dkLen, opts, (err) => {
    if (err) throw err;
    done += 1;
    const now = process.hrtime.bigint();
    if (now < deadline) return one();
    if (now > last) last = now;
    if (--running === 0) console.log(JSON.stringify({ done, seconds: Number(last - start) / 1e9 }));
  });
}
for (let i = 0; i < inflight; i++) one();
""".replace("{n}", str(SCRYPT_N))
    .replace("{r}", str(SCRYPT_R))
    .replace("{p}", str(SCRYPT_P))
    .replace("{dklen}", str(SCRYPT_DKLEN))
)


def raw_scrypt_rate(seconds: float, inflight: int) -> float:
    """Better Auth's hash (``node:crypto`` scrypt, its parameters), ``inflight`` at a time."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is required")
    out = subprocess.run(
        [node, "-e", NODE_SCRYPT, str(seconds), str(inflight)],
        capture_output=True,
        check=True,
        timeout=seconds + 30,
        text=True,
    ).stdout
    result = json.loads(out)
    return float(result["done"]) / float(result["seconds"])
