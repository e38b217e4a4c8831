"""Does a password-reset request reveal by timing whether an account uses the address?

Run from the repository root::

    uv run python bench/reset_timing.py [--rounds 300]
    uv run python bench/reset_timing.py --quick      # 100 rounds

Starts ``idp serve`` (SQLite in a temp dir, mail written to files by its own worker), creates
one account, then sends reset requests for the known address and for fresh unknown ones, one at
a time, alternating which goes first in each pair, and prints the median latency of each and
their ratio (known / unknown; goal 0.9-1.1). Every request must answer 202 with the same body.
The per-account mail quota is raised so every known request really issues a link and a mail.
Loopback only; bounded by ``--rounds``; the server is stopped at the end. Exit status: 0 goals
met, 1 one missed, 2 error (``--json PATH`` writes the goals and figures).
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

LIMITS = {"IDP_RATELIMIT_MAIL_REQUEST_IP": "1000000/60", "IDP_RATELIMIT_MAIL_ACCOUNT": "1000000/60"}
WARM_UP = 10


def timed(client: httpx.Client, email: str, bodies: set[bytes]) -> float:
    started = time.perf_counter()
    response = client.post("/v1/password/reset", json={"email": email})
    elapsed = time.perf_counter() - started
    if response.status_code != 202:
        raise RuntimeError(f"expected 202, got {response.status_code}: {response.text}")
    bodies.add(response.content)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_standard_arguments(parser)
    parser.add_argument(
        "--rounds", type=int, help="pairs of requests after 10 warm-up pairs (300; --quick 100)"
    )
    args = parser.parse_args()
    if args.rounds is None:
        args.rounds = 100 if args.quick else 300
    bodies: set[bytes] = set()
    known: list[float] = []
    unknown: list[float] = []
    with tempfile.TemporaryDirectory() as workdir:
        env = {**GENEROUS_LIMITS, **LIMITS, **bytecode_cache_env()}
        with (
            run_server(Path(workdir), env, port=free_port()) as server,
            httpx.Client(base_url=server.url) as client,
        ):
            created = client.post(
                "/v1/signup", json={"email": "known@example.com", "password": "correct horse battery"}
            )
            created.raise_for_status()
            for round_number in range(args.rounds + WARM_UP):
                stranger = f"nobody-{round_number}@example.com"
                if round_number % 2:
                    pair = (timed(client, "known@example.com", bodies), timed(client, stranger, bodies))
                else:
                    second = timed(client, stranger, bodies)
                    pair = (timed(client, "known@example.com", bodies), second)
                if round_number >= WARM_UP:
                    known.append(pair[0])
                    unknown.append(pair[1])
            mails = len(list((Path(workdir) / "data" / "mail").glob("*.eml")))
    known_ms, unknown_ms = statistics.median(known) * 1000, statistics.median(unknown) * 1000
    ratio = known_ms / unknown_ms
    goals = [
        Goal.between("reset timing, known / unknown address", ratio, 0.9, 1.1),
        Goal.below("reset answers: distinct bodies", len(bodies), 2),
    ]
    verdict = "PASS" if all(goal.met for goal in goals) else "MISS"
    print(f"rounds: {args.rounds} alternating pairs, 1 worker; distinct bodies: {len(bodies)}")
    print(f"mails written for the known address (the worker keeps up in the background): {mails}")
    for label, samples, median in (("known  ", known, known_ms), ("unknown", unknown, unknown_ms)):
        p90 = statistics.quantiles(samples, n=10)[-1] * 1000
        print(f"{label} email  median {median:7.2f} ms  p90 {p90:7.2f} ms")
    print(f"ratio known / unknown: {ratio:.3f}  (goal 0.9-1.1)  {verdict}")
    figures = {"rounds": args.rounds, "known_median_ms": known_ms, "unknown_median_ms": unknown_ms}
    figures["mails"] = mails
    return finish(goals, figures, args)


if __name__ == "__main__":
    run_main(main)
