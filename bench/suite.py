"""The test suite, timed: README's test command and the quick loop, each against its target.

Runs ``ape test`` (what ``./run test`` and CI run) with ``--durations``, then
the quick loop ``ape test -m "not slow"``, each once, and reports:

- ``full_suite_s`` (target <= 1,200 on an idle 2-core machine) and
  ``quick_loop_s`` (target <= 300), wall time of each whole command, Ape's
  start-up and the session's fixtures included, with ``*_over_target`` their
  ratios to the targets;
- ``full_passed``, ``full_failed``, ``full_skipped`` and the same for the quick
  loop: a timing of a failing run means nothing;
- the 20 slowest tests of the full run (set-up, call and tear-down each), in
  the table and as ``slowest`` on the JSON line, so the next thing to make
  faster is named.

Run: ./run bench suite [--only full|quick] [PYTEST ARGS...]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

from measure import print_figures, print_table

ROOT = Path(__file__).resolve().parents[1]
TARGETS_S = {"full": 1200.0, "quick": 300.0}
QUICK = ["-m", "not slow"]
SLOWEST = 20
DURATION_LINE = re.compile(r"^\s*([\d.]+)s (setup|call|teardown)\s+(\S+)")
COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?)")


def run_suite(extra: list[str]) -> tuple[float, str]:
    """Wall time and output of one `ape test` run with ``extra`` arguments."""
    start = time.perf_counter()
    result = subprocess.run(
        ["ape", "test", "-q", "-p", "no:randomly", f"--durations={SLOWEST}", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - start, result.stdout + result.stderr


def counts(output: str) -> dict[str, int]:
    """passed/failed/skipped/errors from pytest's closing line."""
    closing = [line for line in output.splitlines() if " in " in line and COUNT.search(line)]
    found = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
    if closing:
        for number, what in COUNT.findall(closing[-1]):
            found["errors" if what.startswith("error") else what] = int(number)
    return found


def slowest(output: str) -> list[tuple[float, str, str]]:
    """The durations pytest listed: (seconds, phase, test id), slowest first."""
    rows = [(float(m[1]), m[2], m[3]) for line in output.splitlines() if (m := DURATION_LINE.match(line))]
    return sorted(rows, reverse=True)[:SLOWEST]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(TARGETS_S), help="time one of the two runs")
    args, pytest_args = parser.parse_known_args()

    figures: dict[str, object] = {}
    rows = []
    for name in [args.only] if args.only else ["full", "quick"]:
        wall, output = run_suite((QUICK if name == "quick" else []) + pytest_args)
        found = counts(output)
        if found["failed"] or found["errors"]:
            sys.stderr.write(output[-20000:])
        figures[f"{name}_suite_s" if name == "full" else "quick_loop_s"] = round(wall, 1)
        figures[f"{name}_over_target"] = round(wall / TARGETS_S[name], 3)
        figures.update({f"{name}_{what}": n for what, n in found.items()})
        rows.append((f"{name} ({found['passed']} passed, {found['failed']} failed)", wall, "s"))
        if name == "full":
            figures["slowest"] = [{"s": s, "phase": phase, "test": test} for s, phase, test in slowest(output)]
    print_table("Test suite wall time", rows)
    for entry in figures.get("slowest", []):
        print(f"  {entry['s']:>8.1f} s  {entry['phase']:<8} {entry['test']}")
    print_figures(figures)


if __name__ == "__main__":
    main()
