"""Is "unknown email" distinguishable from "wrong password" by timing?

Run from the repository root::

    uv run python bench/login_timing.py [--rounds 150]
    uv run python bench/login_timing.py --quick      # 40 rounds

Starts ``idp serve`` (default argon2id parameters, SQLite in a temp dir), creates one account,
then sends interleaved pairs of logins — an unknown email and the known email with a wrong
password — one at a time, and prints the median latency of each and their ratio
(unknown ÷ wrong password; goal 0.9-1.1: the decoy hash makes both cost one verification).
Loopback only; bounded by ``--rounds``; the server is stopped at the end. Exit status: 0 goal
met, 1 missed, 2 error (``--json PATH`` writes the goal and figures).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from lib.procs import bytecode_cache_env
from lib.report import Goal, add_standard_arguments, finish, run_main

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.server import GENEROUS_LIMITS, free_port, run_server

DEFAULT_ARGON2 = {
    "IDP_ARGON2_MEMORY_KIB": "19456",
    "IDP_ARGON2_TIME_COST": "2",
    "IDP_ARGON2_PARALLELISM": "1",
}


def timed(client: httpx.Client, email: str, password: str) -> float:
    started = time.perf_counter()
    response = client.post("/v1/login", json={"email": email, "password": password})
    elapsed = time.perf_counter() - started
    if response.status_code != 401:
        raise RuntimeError(f"expected 401, got {response.status_code}: {response.text}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_standard_arguments(parser)
    parser.add_argument("--rounds", type=int, help="pairs of logins after 10 warm-up pairs (150; --quick 40)")
    args = parser.parse_args()
    if args.rounds is None:
        args.rounds = 40 if args.quick else 150
    with tempfile.TemporaryDirectory() as workdir:
        env = {**GENEROUS_LIMITS, **DEFAULT_ARGON2, **bytecode_cache_env()}
        with (
            run_server(Path(workdir), env, port=free_port()) as server,
            httpx.Client(base_url=server.url) as client,
        ):
            created = client.post(
                "/v1/signup", json={"email": "known@example.com", "password": "correct horse battery"}
            )
            created.raise_for_status()
            unknown: list[float] = []
            wrong: list[float] = []
            for round_number in range(args.rounds + 10):
                pair = (
                    timed(client, f"nobody-{round_number}@example.com", "some guess here"),
                    timed(client, "known@example.com", "some guess here"),
                )
                if round_number >= 10:
                    unknown.append(pair[0])
                    wrong.append(pair[1])
    unknown_ms, wrong_ms = statistics.median(unknown) * 1000, statistics.median(wrong) * 1000
    ratio = unknown_ms / wrong_ms
    goal = Goal.between("login timing, unknown email / wrong password", ratio, 0.9, 1.1)
    verdict = "PASS" if goal.met else "MISS"
    print(f"rounds: {args.rounds} interleaved pairs, argon2id m=19456 KiB t=2 p=1, 1 worker")
    for label, samples, median in (
        ("unknown email ", unknown, unknown_ms),
        ("wrong password", wrong, wrong_ms),
    ):
        p90 = statistics.quantiles(samples, n=10)[-1] * 1000
        print(f"{label}  median {median:7.2f} ms  p90 {p90:7.2f} ms")
    print(f"ratio unknown / wrong password: {ratio:.3f}  (goal 0.9-1.1)  {verdict}")
    figures = {"rounds": args.rounds, "unknown_median_ms": unknown_ms, "wrong_password_median_ms": wrong_ms}
    return finish([goal], figures, args)


if __name__ == "__main__":
    run_main(main)
