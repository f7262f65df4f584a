"""The coordinator, a separate OS process, SIGKILLed at every point of its steps, resumes from the chain.

Each start holds at one checkpoint (``MEDSHARE_FL_HOLD_AT``) and is killed there; the next start
must carry on from the chain's state alone: a round opened once, an aggregate committed once, no
submitted update skipped, the next round opened on the new base (with the commit, in one transaction). The hospitals run in this process.
"""

import os
import select
import signal
import subprocess
import sys
import time

from .conftest import PASSPHRASE

from offchain.rounds.coordinator import CHECKPOINTS
from offchain.rounds.verifier import verify_study

START_TIMEOUT = 300


def coordinator_process(consortium, chain, study, hold=None):
    env = {**os.environ, "MEDSHARE_HOME": str(consortium.home), "MEDSHARE_PASSPHRASE": PASSPHRASE}
    env.pop("MEDSHARE_FL_HOLD_AT", None)
    if hold:
        env["MEDSHARE_FL_HOLD_AT"] = hold
    command = [sys.executable, "-c", "from offchain.cli import main; main()", "fl", "coordinator",
               "--rpc", chain.provider.http_uri, "--account", "TEST::1", "--contract", consortium.access.address,
               "--registry", consortium.registry.address, "--study", str(study), "--rounds", "2"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def kill_at(consortium, chain, study, point):
    process = coordinator_process(consortium, chain, study, point)
    output = b""
    deadline = time.monotonic() + START_TIMEOUT
    while f"holding at {point}".encode() not in output:
        assert process.poll() is None, output.decode(errors="replace")
        assert time.monotonic() < deadline, f"never reached {point}: {output.decode(errors='replace')}"
        ready, _, _ = select.select([process.stdout], [], [], 1.0)
        if ready:
            output += os.read(process.stdout.fileno(), 65536)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stdout.close()


def commits(consortium, study, number):
    return len(consortium.auditor.rounds.logs("RoundCommitted", study=study, round=number))


def test_coordinator_killed_at_each_point_resumes_from_chain_state(consortium, chain):
    assert CHECKPOINTS == ("opening", "opened", "aggregated", "sealed", "committed")
    study = consortium.study(min_updates=3)
    rounds = consortium.auditor.rounds
    nodes = consortium.nodes(study)

    kill_at(consortium, chain, study, "opening")
    assert rounds.study(study).round_count == 0
    kill_at(consortium, chain, study, "opened")
    assert rounds.study(study).round_count == 1 and rounds.round(study, 1).state == "open"
    for node in nodes:
        assert node.step().action == "submitted"
    kill_at(consortium, chain, study, "aggregated")
    assert rounds.study(study).round_count == 1 and commits(consortium, study, 1) == 0
    kill_at(consortium, chain, study, "sealed")
    assert rounds.round(study, 1).state == "open" and commits(consortium, study, 1) == 0
    kill_at(consortium, chain, study, "committed")
    assert rounds.round(study, 1).state == "committed" and commits(consortium, study, 1) == 1
    assert len(rounds.round(study, 1).counted_submitters) == 3
    # Round 2 was opened in the commit's own transaction: no point between the two to die at.
    assert rounds.study(study).round_count == 2 and rounds.round(study, 2).state == "open"
    assert rounds.round(study, 2).base_commitment == rounds.round(study, 1).aggregate.commitment()

    for node in nodes:
        assert node.step().action == "submitted"
    finished = coordinator_process(consortium, chain, study)
    output, _ = finished.communicate(timeout=START_TIMEOUT)
    assert finished.returncode == 0, output.decode(errors="replace")
    assert [rounds.round(study, r).state for r in (1, 2)] == ["committed", "committed"]
    assert commits(consortium, study, 2) == 1 and rounds.study(study).round_count == 2
    assert [v.verified for v in verify_study(consortium.auditor, study)] == [True, True]
