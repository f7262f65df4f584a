"""`medshare fl run --sites separate`: the coordinator, three hospitals and the auditor each with a
home of their own and an IPFS node of their own on loopback; updates and aggregates move between the
nodes over libp2p; every round verified by the auditor, through its own node. And a hospital's node
killed mid-round and started again: the round still ends, committed or cancelled with its reason."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from offchain.ipfs.daemon import LocalDaemon

PASSPHRASE = "sites passphrase"
MEDSHARE = [sys.executable, "-c", "from offchain.cli import main; main()"]
PARTIES = ["coordinator", "hospital-1", "hospital-2", "hospital-3", "auditor"]

pytestmark = pytest.mark.sites


def start_run(chain, home: Path) -> subprocess.Popen:
    env = {**os.environ, "MEDSHARE_HOME": str(home), "MEDSHARE_PASSPHRASE": PASSPHRASE}
    for name in ("MEDSHARE_IPFS_BACKEND", "IPFS_API", "MEDSHARE_CONSORTIUM"):
        env.pop(name, None)
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([*MEDSHARE, "fl", "run", "--rounds", "2", "--hospitals", "3", "--sites", "separate",
                             "--rpc", chain.provider.http_uri, "--json"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)


def finished(run: subprocess.Popen, timeout: float = 1200) -> tuple[dict, str]:
    try:
        output, _ = run.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        run.kill()
        output, _ = run.communicate()
        pytest.fail(f"fl run --sites separate did not end in {timeout} s: {output[-3000:]}")
    assert run.returncode == 0, output[-5000:]
    return json.loads(output.splitlines()[-1]), output


def test_a_study_of_three_hospitals_on_separate_sites(chain, tmp_path):
    home = tmp_path / "home"
    summary, output = finished(start_run(chain, home))
    assert summary["sites"] == "separate"
    assert [(entry["round"], entry["verified"]) for entry in summary["rounds"]] == [(1, True), (2, True)]
    assert sorted(summary["rounds"][0]["participants"]) == ["hospital-1", "hospital-2", "hospital-3"]
    assert summary["rounds"][1]["base_cid"] == summary["rounds"][0]["aggregate_cid"]
    # Every party's keystore is in its own home, and only its own: nothing shared on one disk.
    for party in PARTIES:
        keys = list((home / "sites" / party / "keys").glob("*.json"))
        assert len(keys) == 1, (party, keys)
        assert (home / "sites" / party / "consortium.json").exists()
    assert not (home / "keys").exists() and not (home / "ipfs").exists()
    # Each hospital's node pinned its own update; the auditor's node (the pinning node) holds every one.
    for party in PARTIES:
        assert "Daemon is ready" in (home / "sites" / party / "ipfs-node" / "daemon.log").read_text()


def _daemon_pid(repo: Path) -> int | None:
    marker = f"IPFS_PATH={repo}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    return int(entry.name)
            except OSError:
                continue
    return None


def test_a_hospital_node_killed_mid_round_and_restarted(chain, tmp_path):
    home = tmp_path / "home"
    run = start_run(chain, home)
    log = home / "fl" / "logs" / "hospital-2.log"
    repo = home / "sites" / "hospital-2" / "ipfs-node"
    deadline = time.monotonic() + 900
    while "round 1: submitted" not in (log.read_text(errors="replace") if log.exists() else ""):
        assert run.poll() is None, run.communicate()[0][-5000:]
        assert time.monotonic() < deadline, "hospital-2 never submitted in round 1"
        time.sleep(0.5)
    pid = _daemon_pid(repo)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # a crash of hospital-2's IPFS node, right after its update went out
    time.sleep(3)
    restarted = LocalDaemon(repo).start()  # same repository, ports and peer ID
    try:
        summary, output = finished(run)
    finally:
        restarted.stop()
    first = summary["rounds"][0] if summary["rounds"] and summary["rounds"][0]["round"] == 1 else None
    if first is not None:  # committed: hospital-2's update was replicated to the pinning node before the crash
        assert first["verified"] and "hospital-2" in first["participants"]
    else:  # or cancelled, with its reason in the coordinator's log
        assert "round 1: cancelled" in (home / "fl" / "logs" / "coordinator.log").read_text()
    assert summary["rounds"][-1]["round"] == 2 and summary["rounds"][-1]["verified"]
