"""Percentiles, tables, and the results contract every bench script follows.

Every script:

- accepts ``--quick`` (a short mode, proportionate to its full run) and ``--json PATH`` (goals +
  figures, see ``write_json``): ``add_standard_arguments(parser)``;
- builds a list of ``Goal`` and a dict of figures, then ``return finish(goals, figures, args)``;
- exits 0 when all its goals are met, 1 when one is missed, 2 on error: ``run_main(main)``.

``bench/run.py`` reads the JSON files: ``{"script", "quick", "goals": [Goal...], "figures": {...}}``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "EXIT_ERROR",
    "EXIT_MET",
    "EXIT_MISSED",
    "Goal",
    "add_standard_arguments",
    "exit_code",
    "finish",
    "json_safe",
    "percentile",
    "print_goals",
    "print_table",
    "read_json",
    "run_main",
    "verdict",
    "write_json",
]

EXIT_MET, EXIT_MISSED, EXIT_ERROR = 0, 1, 2


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation); NaN for no samples."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Left-aligned columns, a dashed rule under the header."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row).rstrip())


@dataclass(frozen=True)
class Goal:
    """One goal of a bench: ``value`` (in ``unit``) against ``target`` (e.g. ">= 0.85")."""

    name: str
    value: float
    target: str
    unit: str
    met: bool

    @classmethod
    def at_least(cls, name: str, value: float, minimum: float, unit: str = "") -> Goal:
        return cls(name, value, f">= {minimum:g}", unit, value >= minimum)  # NaN: missed

    @classmethod
    def between(cls, name: str, value: float, low: float, high: float, unit: str = "") -> Goal:
        return cls(name, value, f"{low:g}-{high:g}", unit, low <= value <= high)

    @classmethod
    def below(cls, name: str, value: float, maximum: float, unit: str = "") -> Goal:
        return cls(name, value, f"< {maximum:g}", unit, value < maximum)


def json_safe(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null, tuples lists, dict keys strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def write_json(path: Path | str, goals: Sequence[Goal], figures: dict[str, Any], **meta: Any) -> None:
    """``{"goals": [...], "figures": {...}, **meta}``; ``meta`` e.g. script=..., quick=...."""
    document = {**meta, "goals": [asdict(goal) for goal in goals], "figures": figures}
    Path(path).write_text(json.dumps(json_safe(document), indent=2) + "\n")


def read_json(path: Path | str) -> tuple[list[Goal], dict[str, Any]]:
    document = json.loads(Path(path).read_text())
    goals = [
        Goal(
            name=g["name"],
            value=math.nan if g["value"] is None else float(g["value"]),
            target=g["target"],
            unit=g["unit"],
            met=bool(g["met"]),
        )
        for g in document.get("goals", [])
    ]
    return goals, dict(document.get("figures", {}))


def exit_code(goals: Sequence[Goal]) -> int:
    return EXIT_MET if all(goal.met for goal in goals) else EXIT_MISSED


def print_goals(goals: Sequence[Goal], title: str = "goals") -> None:
    print(f"{title}:")
    rows = [
        (
            goal.name,
            f"{goal.value:.4g} {goal.unit}".rstrip(),
            f"{goal.target} {goal.unit}".rstrip(),
            verdict(goal.met),
        )
        for goal in goals
    ]
    print_table(("goal", "value", "target", "result"), rows)


def add_standard_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="a short run (noisier figures)")
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write the goals and figures to PATH (JSON)"
    )


def finish(goals: Sequence[Goal], figures: dict[str, Any], args: argparse.Namespace, script: str = "") -> int:
    """Print the goals, write ``--json`` if asked, return the exit code (0 all met, 1 missed)."""
    print_goals(goals)
    if getattr(args, "json", None) is not None:
        script = script or Path(sys.argv[0]).name
        write_json(args.json, goals, figures, script=script, quick=bool(getattr(args, "quick", False)))
    return exit_code(goals)


def run_main(main: Callable[[], int]) -> None:
    """Exit with ``main()``'s code; 2 (with a one-line message) on an error, 130 on Ctrl-C."""
    started = time.monotonic()
    try:
        code = main()
    except KeyboardInterrupt:
        sys.exit(130)
    except SystemExit:
        raise
    except (RuntimeError, OSError) as exc:  # the bench failed to measure: not a missed goal
        print(f"bench: error: {exc}", file=sys.stderr)
        code = EXIT_ERROR
    except BaseException:  # also pytest's Failed, raised by tests/support helpers
        traceback.print_exc()
        code = EXIT_ERROR
    print(f"total time {time.monotonic() - started:.1f}s", flush=True)
    sys.exit(code)
