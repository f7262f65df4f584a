"""One secure round under three attacks at once, every party its own OS process (issue 18):

- a stranger (no role) posts a malformed CID (one zero byte) on the round while it runs;
- hospital-1's store cannot read another hospital's masked input for a while (its IPFS node is behind);
- hospital-3 sends a neighbour a share off its committed polynomial.

``fl run`` starts the coordinator and the five hospital nodes as it always does; the two hospitals'
faults come from ``tests/rounds/adversary/sitecustomize.py`` on their ``PYTHONPATH``, the stranger is
this test's own transaction. The round must commit the exact sum of the four honest hospitals (hospital-3
excluded, for every reader, by the victim's checked complaint), hospital-1 must unmask once its store
catches up and never before, and ``medshare fl verify`` must agree.
"""

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from .conftest import PASSPHRASE
from .test_rounds_cli import _processes_with

ROOT = Path(__file__).resolve().parents[2]
ADVERSARY = Path(__file__).resolve().parent / "adversary"
MEDSHARE = [sys.executable, "-c", "from offchain.cli import main; main()"]
DRIVER = """
import json, os, sys
from offchain.rounds.runner import RunSettings, run_study
from offchain.settings import Settings
run = RunSettings(rounds=1, hospitals=5, rpc=sys.argv[1], passphrase=os.environ["MEDSHARE_PASSPHRASE"],
                  secure=True, phase_seconds=30)
print(json.dumps(run_study(run, Settings.from_env(), echo=lambda line: None, progress=False).to_json()))
"""


def _stranger(home: Path, stranger, outcome: dict, stop: threading.Event) -> None:
    """Once the round is past its key phase, post one zero byte as a CID from an account with no role."""
    from ape import project

    last_run = home / "fl" / "last-run.json"
    while not stop.is_set():
        time.sleep(0.5)
        if not last_run.exists():
            continue
        run = json.loads(last_run.read_text())
        registry = project.RoundRegistry.at(run["registry"])
        try:
            secure, phase = registry.secureRoundOf(run["study"], 1)
        except Exception:  # the round is not open yet
            continue
        if 1 <= int(phase) <= 3:
            try:
                registry.postSecureMessage(run["study"], 1, int(phase), b"\x00", hashlib.sha256(b"\x00").digest(),
                                           sender=stranger)
                outcome["posted"] = int(phase)
            except Exception as refusal:  # the registry's roster check (issue 18, contract side)
                outcome["refused"] = str(refusal)
            return


def test_a_stranger_a_store_behind_and_a_lying_dealer_in_one_round_it_still_commits(chain, accounts, tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "MEDSHARE_HOME": str(home), "MEDSHARE_PASSPHRASE": PASSPHRASE,
           "PYTHONPATH": os.pathsep.join([str(ADVERSARY), str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "MEDSHARE_TEST_ADVERSARY": "flaky=1;bad_share=3"}
    outcome: dict = {}
    stop = threading.Event()
    stranger = threading.Thread(target=_stranger, args=(home, accounts[14], outcome, stop), daemon=True)
    stranger.start()
    try:
        run = subprocess.run([sys.executable, "-c", DRIVER, chain.provider.http_uri], env=env, capture_output=True,
                             text=True, timeout=1200, cwd=ROOT)
    finally:
        stop.set()
        stranger.join(timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr
    assert outcome, "the stranger never saw the round past its keys"
    (first,) = json.loads(run.stdout.splitlines()[-1])["rounds"]
    assert first["verified"] is True, first
    assert sorted(first["survivors"]) == ["hospital-1", "hospital-2", "hospital-4", "hospital-5"], first
    assert "hospital-3" in first["dropped"]
    logs = home / "fl" / "logs"
    assert "adversary: a bad share for" in (logs / "hospital-3.log").read_text()
    flaky_log = (logs / "hospital-1.log").read_text()
    assert "adversary: store read of masked input" in flaky_log
    assert "sent its unmasking response" in flaky_log, flaky_log  # once its store caught up
    assert "excluded for a bad share, proven by a complaint" in (logs / "coordinator.log").read_text()
    assert _processes_with(home) == [], "the run left a node running"

    verify = subprocess.run([*MEDSHARE, "fl", "verify", "--rpc", chain.provider.http_uri, "--json"],
                            env={**env, "MEDSHARE_TEST_ADVERSARY": ""}, capture_output=True, text=True, timeout=600,
                            cwd=ROOT)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert json.loads(verify.stdout.splitlines()[-1])["ok"] is True
