"""README's first command, timed: the wall time of ``./run demo`` after set-up.

Runs ``ape run demo --json`` once (the environment bootstrapped and the
contracts compiled already, as ``./run bench`` does first) in a scratch
``MEDSHARE_HOME``, and reports:

- ``demo_wall_s``: wall time of the whole command, Ape's start-up included
  (deploy, members, keys, 9 records, the sharing scenario, a study of
  ``--rounds`` rounds by 3 hospital node processes and a coordinator, every
  round verified, the plot); target <= 180 on 2 cores; ``demo_over_target``
  its ratio to the target;
- ``phase_s_*``: the demo's own wall time per phase (consortium, records,
  sharing, study), from its JSON summary, and ``startup_s`` the rest (Ape's
  start-up, anvil's, the summary);
- ``demo_cpu_s``: CPU time (user + system) of the command's whole process
  tree (Ape, anvil, the node processes), and ``demo_cpu_over_cores`` that
  spread over this machine's cores: the wall time an idle machine could
  reach at best, which a shared machine's wall time hides;
- ``access_checks_ok`` and ``rounds_verified``: the run did what it shows.

Run: ./run bench demo [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from measure import print_figures, print_table

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 180.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="medshare-bench-demo-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSHARE_")}
        env["MEDSHARE_HOME"] = home
        started = time.perf_counter()
        cpu_before = _children_cpu()
        run = subprocess.run(["ape", "run", "demo", "--json", "--rounds", str(options.rounds)], cwd=ROOT, env=env,
                             capture_output=True, text=True)
        wall = time.perf_counter() - started
        cpu = _children_cpu() - cpu_before
    if run.returncode != 0:
        raise SystemExit(f"./run demo failed (status {run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    try:
        summary = json.loads(run.stdout.splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise SystemExit(f"./run demo --json did not end with its JSON summary:\n{run.stdout[-3000:]}") from None
    phases = summary["seconds"]
    figures = {
        "demo_wall_s": round(wall, 1),
        "target_s": TARGET_S,
        "demo_over_target": round(wall / TARGET_S, 3),
        **{f"phase_s_{name}": seconds for name, seconds in phases.items()},
        "startup_s": round(wall - sum(phases.values()), 1),
        "demo_cpu_s": round(cpu, 1),
        "demo_cpu_over_cores": round(cpu / (os.cpu_count() or 1), 1),
        "rounds": len(summary["rounds"]),
        "rounds_verified": all(entry["verified"] for entry in summary["rounds"]),
        "access_checks_ok": all(check["expected"] == check["got"] for check in summary["access_checks"]),
        "cpus": os.cpu_count(),
    }
    print_table(f"./run demo ({options.rounds} rounds, 3 hospitals) on {os.cpu_count()} cores", [
        ("demo wall time", wall, "s"),
        *[(f"  {name}", seconds, "s") for name, seconds in phases.items()],
        ("  start-up and summary", figures["startup_s"], "s"),
        ("over the 180 s target", wall / TARGET_S, "x"),
        ("CPU time, whole process tree", cpu, "s"),
        ("  spread over the cores", cpu / (os.cpu_count() or 1), "s"),
    ])
    print_figures(figures)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
