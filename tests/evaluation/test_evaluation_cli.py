"""`medshare fl run --json` with real node processes: each round's model, the last one's too, carries the
metrics the hospitals published on their own validation splits under ``rounds[].metrics``."""

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import PASSPHRASE


def test_fl_run_reports_per_hospital_and_weighted_metrics_by_round(chain, tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "MEDSHARE_HOME": str(home), "MEDSHARE_PASSPHRASE": PASSPHRASE}
    medshare = [sys.executable, "-c", "from offchain.cli import main; main()"]
    run = subprocess.run([*medshare, "fl", "run", "--rounds", "2", "--hospitals", "3", "--rpc",
                          chain.provider.http_uri, "--json"], env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads(run.stdout)
    first, last = summary["rounds"]
    hospitals = first["metrics"]["hospitals"]
    assert sorted(hospitals) == ["hospital-1", "hospital-2", "hospital-3"]
    for metrics in hospitals.values():
        assert metrics["task"] == "binary" and 0.5 < metrics["auroc"] <= 1.0
        assert {"sensitivity", "specificity", "brier", "accuracy", "loss", "examples"} <= set(metrics)
    weighted = first["metrics"]["weighted"]
    assert weighted["examples"] == sum(m["examples"] for m in hospitals.values())
    assert min(m["auroc"] for m in hospitals.values()) <= weighted["auroc"] <= max(m["auroc"] for m in hospitals.values())
    # The study's last model has no next update: each hospital posted its evaluation of it when the study ended.
    assert sorted(last["metrics"]["hospitals"]) == ["hospital-1", "hospital-2", "hospital-3"]
    assert all(0.5 < m["auroc"] <= 1.0 for m in last["metrics"]["hospitals"].values())
    assert "AUROC" in run.stderr and "warning" not in run.stderr
    assert Path(summary["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
