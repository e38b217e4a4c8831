"""The one command: every bench script in sequence, then one table of all their goals.

Run from the repository root (PostgreSQL and Redis on loopback; Better Auth's Node project
installed once with ``npm ci --prefix tests/interop/better_auth``)::

    uv run python bench/run.py                 # the full set
    uv run python bench/run.py --quick         # short windows: ~160 s on 2 cores (< 3 min)
    uv run python bench/run.py --runs 3        # the set three times: did every run meet every goal?
    uv run python bench/run.py --only login_jwks,versus_better_auth --json /tmp/bench.json

Each script runs as ``python bench/<script> [--quick] --json <tmp>`` with its output streamed
as it goes; a script that is not in this checkout yet is skipped (listed as such). Every script
exits 0 (its goals met), 1 (one missed) or 2 (error); the summary shows each goal per run, and
this command exits 0 when every goal of every run was met, 1 when one was missed, 2 when a
script failed to measure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lib.procs import bytecode_cache_env, machine
from lib.report import EXIT_ERROR, EXIT_MET, EXIT_MISSED, Goal, json_safe, print_table, read_json

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent

# In order. Fixed arguments per script go in the tuple (the runner adds --quick and --json).
SCRIPTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("login_timing.py", ()),
    ("reset_timing.py", ()),
    ("login_jwks.py", ()),
    ("login_spread.py", ()),
    ("versus_better_auth.py", ()),
    ("code_flow.py", ()),
    ("growth.py", ()),
    ("soak.py", ()),
)
TIMEOUT_SECONDS = 3600.0  # one script, full mode
QUICK_TIMEOUT_SECONDS = 300.0
INTERRUPT_GRACE_SECONDS = 30.0


@dataclass
class ScriptRun:
    script: str
    status: str  # "met", "missed", "error", "skipped"
    exit_code: int | None
    seconds: float
    goals: list[Goal] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


def run_script(script: str, extra: Sequence[str], quick: bool, timeout: float) -> ScriptRun:
    path = BENCH_DIR / script
    if not path.is_file():
        return ScriptRun(script, "skipped", None, 0.0)
    with tempfile.TemporaryDirectory(prefix="idp-bench-run-") as tmp:
        json_path = Path(tmp) / "result.json"
        shown = [f"bench/{script}", *extra, *(["--quick"] if quick else [])]
        print(f"\n=== python {' '.join(shown)} ===", flush=True)
        command = [sys.executable, *shown, "--json", str(json_path)]
        started = time.monotonic()
        # Same process group as this runner: a Ctrl-C reaches the script, which stops its servers.
        # Compiled modules cached (also under PYTHONDONTWRITEBYTECODE): the scripts, their helper
        # processes and servers start in a fraction of the time.
        env = {**os.environ, **bytecode_cache_env()}
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"bench/run.py: {script} ran over {timeout:g}s: interrupting it", file=sys.stderr)
            process.send_signal(signal.SIGINT)  # the script's finally blocks stop its servers
            try:
                process.wait(timeout=INTERRUPT_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            code = EXIT_ERROR
        except KeyboardInterrupt:
            with_grace(process)
            raise
        seconds = time.monotonic() - started
        goals: list[Goal] = []
        figures: dict[str, Any] = {}
        if json_path.is_file():
            try:
                goals, figures = read_json(json_path)
            except (ValueError, KeyError, TypeError) as exc:
                print(f"bench/run.py: unreadable results of {script}: {exc}", file=sys.stderr)
                code = EXIT_ERROR
    if code == EXIT_MET:  # met, but only if it wrote its goals
        status = "missed" if not all(goal.met for goal in goals) else "met" if goals else "error"
    elif code == EXIT_MISSED:
        status = "missed"
    else:  # 2, a crash or a timeout
        status = "error"
    return ScriptRun(script, status, code, seconds, goals, figures)


def with_grace(process: subprocess.Popen[bytes]) -> None:
    """On Ctrl-C the script got the SIGINT too: give it time to stop its servers."""
    try:
        process.wait(timeout=INTERRUPT_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------


def _value(goal: Goal | None) -> str:
    if goal is None:
        return "-"
    value = "nan" if math.isnan(goal.value) else f"{goal.value:.4g}"
    return f"{value} {'PASS' if goal.met else 'MISS'}"


def print_summary(runs: list[list[ScriptRun]], elapsed: list[float]) -> None:
    print("\n" + "=" * 100)
    print(f"bench/run.py summary: {len(runs)} run(s)")
    # One row per (script, goal name) in first-seen order; one column per run.
    keys: dict[tuple[str, str], tuple[str, str]] = {}
    for run in runs:
        for result in run:
            for goal in result.goals:
                keys.setdefault((result.script, goal.name), (goal.target, goal.unit))
    rows: list[tuple[str, ...]] = []
    for (script, name), (target, unit) in keys.items():
        cells = []
        met_everywhere = True
        for run in runs:
            found = next(
                (g for r in run if r.script == script for g in r.goals if g.name == name),
                None,
            )
            cells.append(_value(found))
            met_everywhere &= found is not None and found.met
        rows.append((script, name, f"{target} {unit}".rstrip(), *cells, "yes" if met_everywhere else "NO"))
    # Scripts without goals: skipped or failed.
    for script, _ in SCRIPTS:
        statuses = [next((r for r in run if r.script == script), None) for run in runs]
        problems = [r for r in statuses if r is not None and r.status in {"error", "skipped"}]
        if problems:
            cells = [r.status.upper() if r else "-" for r in statuses]
            verdict = "skipped" if all(r.status == "skipped" for r in problems) else "NO"
            rows.append((script, "(script)", "", *cells, verdict))
    header = ("script", "goal", "target", *(f"run {i + 1}" for i in range(len(runs))), "met in all runs")
    print()
    print_table(header, rows)
    print()
    for index, (run, seconds) in enumerate(zip(runs, elapsed, strict=True), start=1):
        goals = [goal for result in run for goal in result.goals]
        met = sum(goal.met for goal in goals)
        errors = [r.script for r in run if r.status == "error"]
        skipped = [r.script for r in run if r.status == "skipped"]
        times = ", ".join(f"{r.script} {r.seconds:.0f}s" for r in run if r.status != "skipped")
        print(
            f"run {index}: {met}/{len(goals)} goals met"
            + (f", errors in {', '.join(errors)}" if errors else "")
            + (f", not present: {', '.join(skipped)}" if skipped else "")
            + f"; {seconds:.0f}s ({times})"
        )


def overall_code(runs: list[list[ScriptRun]]) -> int:
    results = [result for run in runs for result in run]
    if any(result.status == "error" for result in results):
        return EXIT_ERROR
    if any(result.status == "missed" for result in results):
        return EXIT_MISSED
    return EXIT_MET


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="every script in its short mode")
    parser.add_argument("--runs", type=int, default=1, help="repeat the whole set N times (default 1)")
    names = [script.removesuffix(".py") for script, _ in SCRIPTS]
    parser.add_argument(
        "--only", help=f"comma-separated subset of the scripts, in the usual order: {','.join(names)}"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write every run's goals and figures")
    parser.add_argument(
        "--timeout",
        type=float,
        help=f"per script, seconds (default {TIMEOUT_SECONDS:g}; --quick {QUICK_TIMEOUT_SECONDS:g})",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    selected = {name.strip().removesuffix(".py") for name in (args.only or "").split(",") if name.strip()}
    if selected - set(names):
        parser.error(f"--only: unknown scripts {','.join(sorted(selected - set(names)))}")
    args.scripts = [(s, extra) for s, extra in SCRIPTS if not selected or s.removesuffix(".py") in selected]
    if args.timeout is None:
        args.timeout = QUICK_TIMEOUT_SECONDS if args.quick else TIMEOUT_SECONDS
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    runs: list[list[ScriptRun]] = []
    elapsed: list[float] = []
    try:
        for index in range(args.runs):
            if args.runs > 1:
                print(f"\n##### run {index + 1} of {args.runs} #####", flush=True)
            run_started = time.monotonic()
            runs.append([run_script(s, extra, args.quick, args.timeout) for s, extra in args.scripts])
            elapsed.append(time.monotonic() - run_started)
    except KeyboardInterrupt:
        print("\nbench/run.py: interrupted", file=sys.stderr)
        if not runs:
            return 130
    print_summary(runs, elapsed)
    code = overall_code(runs)
    verdict = {EXIT_MET: "every goal met", EXIT_MISSED: "a goal was missed", EXIT_ERROR: "a script failed"}
    everywhere = f" in all {len(runs)} runs" if len(runs) > 1 and code == EXIT_MET else ""
    print(
        f"\n{verdict[code]}{everywhere}; total time {time.monotonic() - started:.0f}s"
        f" ({'--quick, ' if args.quick else ''}{machine()})"
    )
    if args.json is not None:
        document = {
            "quick": args.quick,
            "exit_code": code,
            "runs": [
                [
                    {
                        "script": r.script,
                        "status": r.status,
                        "exit_code": r.exit_code,
                        "seconds": r.seconds,
                        "goals": [asdict(goal) for goal in r.goals],
                        "figures": r.figures,
                    }
                    for r in run
                ]
                for run in runs
            ],
        }
        args.json.write_text(json.dumps(json_safe(document), indent=2) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
