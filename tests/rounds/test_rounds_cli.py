"""``medshare fl``: the commands as a user runs them, including `fl run` with its node processes."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from .conftest import PASSPHRASE
from .tamper import flip_stored_byte

from offchain.cli import main
from offchain.rounds.coordinator import Coordinator


@pytest.fixture
def fl(consortium, monkeypatch):
    """``fl(account_index, *args)``: run ``medshare fl`` in-process as that account on the consortium."""
    monkeypatch.setenv("MEDSHARE_HOME", str(consortium.home))
    monkeypatch.setenv("MEDSHARE_PASSPHRASE", PASSPHRASE)

    def run(account_index, command, *args, ok=True):
        full = ["fl", command, "--account", f"TEST::{account_index}", "--contract", consortium.access.address,
                "--registry", consortium.registry.address, *args]
        result = CliRunner().invoke(main, full)
        assert (result.exit_code == 0) == ok, result.output
        assert "Traceback" not in result.output
        return result.output

    return run


@pytest.mark.parametrize("table, message", [
    ("a,outcome\n1,0\n", r"row 1: 1 feature columns besides 'outcome', the study's model expects 30"),
    (",".join(f"f{i}" for i in range(30)) + ",outcome\n" + ",".join(["1"] * 30) + ",1\n"
     + ",".join(["1"] * 29) + ",oops,0\n", r"row 3, column 'f29': 'oops' is not a number"),
    (",".join(f"f{i}" for i in range(30)) + ",outcome\n" + ",".join(["1"] * 29) + ",NaN,1\n",
     r"row 2, column 'f29': 'NaN' is not a finite number"),
    (",".join(f"f{i}" for i in range(30)) + ",label\n" + ",".join(["1"] * 31) + "\n", r"row 1: no column 'outcome'"),
])
def test_participant_refuses_a_bad_table_in_one_line_and_submits_nothing(consortium, fl, tmp_path, table, message):
    study = consortium.study()
    Coordinator(consortium.coordinator, study).step()
    path = tmp_path / "hospital.csv"
    path.write_text(table)
    output = fl(3, "participant", "--study", str(study), "--data", str(path), "--label", "outcome", ok=False)
    assert output.count("\n") == 1 and output.startswith(f"Error: {path}")
    assert re.search(message, output), output
    assert consortium.auditor.rounds.updates(study, 1) == []


def test_status_and_verify_report_each_round_and_the_first_failed_check(consortium, fl):
    study = consortium.study()
    consortium.run_round(study)
    consortium.run_round(study)
    status = fl(2, "status", "--study", str(study))
    assert "round 1: committed, 3 updates, 3 counted" in status and consortium.hospitals[0].address in status
    verified = fl(2, "verify", "--study", str(study), "--json")
    assert json.loads(verified.splitlines()[-1]) == {
        "study": study, "ok": True,
        "rounds": [{"round": 1, "verified": True, "failed_check": None},
                   {"round": 2, "verified": True, "failed_check": None}]}
    flip_stored_byte(consortium.auditor.store, consortium.auditor.rounds.round(study, 2).aggregate.cid)
    failed = fl(2, "verify", "--study", str(study), "--all", ok=False)
    assert failed.splitlines()[0].startswith("round 1: verified")
    assert failed.splitlines()[1].startswith("round 2: FAILED aggregate: ")
    only = fl(2, "verify", "--study", str(study), "--round", "1")
    assert only.count("\n") == 1
    stranger = fl(9, "verify", "--study", str(study), ok=False)
    assert "neither an auditor nor the coordinator" in stranger


def test_fl_run_then_verify_with_no_options(chain, tmp_path):
    """`medshare fl run` on the session's anvil: a coordinator and two hospital processes, two rounds."""
    home = tmp_path / "home"
    env = {**os.environ, "MEDSHARE_HOME": str(home), "MEDSHARE_PASSPHRASE": PASSPHRASE}
    rpc = chain.provider.http_uri
    medshare = [sys.executable, "-c", "from offchain.cli import main; main()"]
    run = subprocess.run([*medshare, "fl", "run", "--rounds", "2", "--hospitals", "2", "--rpc", rpc, "--json"],
                         env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads(run.stdout)  # with --json, stdout is the JSON document alone
    assert [entry["round"] for entry in summary["rounds"]] == [1, 2]
    assert all(entry["verified"] for entry in summary["rounds"])
    assert summary["rounds"][1]["base_cid"] == summary["rounds"][0]["aggregate_cid"]
    assert sorted(summary["rounds"][0]["participants"]) == ["hospital-1", "hospital-2"]
    assert all(0.5 < entry["test_accuracy"] <= 1.0 for entry in summary["rounds"])
    assert Path(summary["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "round 2: test accuracy" in run.stderr
    verify = subprocess.run([*medshare, "fl", "verify", "--rpc", rpc, "--json"], env=env, capture_output=True,
                            text=True, timeout=600)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert json.loads(verify.stdout.splitlines()[-1]) == {
        "study": summary["study"], "ok": True,
        "rounds": [{"round": r, "verified": True, "failed_check": None} for r in (1, 2)]}


def _processes_with(home: Path) -> list[int]:
    """Live processes whose environment names ``home`` as MEDSHARE_HOME (what a run started)."""
    marker = f"MEDSHARE_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return found


def test_fl_run_on_its_own_anvil_leaves_nothing_running(tmp_path):
    """Without --rpc, `medshare fl run` starts an anvil of its own and stops it, and its nodes, at the end."""
    home = tmp_path / "home"
    env = {**os.environ, "MEDSHARE_HOME": str(home), "MEDSHARE_PASSPHRASE": PASSPHRASE}
    medshare = [sys.executable, "-c", "from offchain.cli import main; main()"]
    run = subprocess.run([*medshare, "fl", "run", "--rounds", "1", "--hospitals", "2", "--json"],
                         env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads(run.stdout)  # with --json, stdout is the JSON document alone
    assert [(entry["round"], entry["verified"]) for entry in summary["rounds"]] == [(1, True)]
    assert sorted(summary["rounds"][0]["participants"]) == ["hospital-1", "hospital-2"]
    assert _processes_with(home) == [], "the run left an anvil or a node running"
