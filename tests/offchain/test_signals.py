"""Ctrl-C and SIGTERM sent to real `medshare` processes that run children: none is left running.

`fl run` runs an anvil (through Ape) and a process per node; `chain rehearse-amoy` an anvil of its
own. record fetch and upload, which run no child, are interrupted in-process in test_bad_inputs.py.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _children(pid: int) -> dict[int, str]:
    """Every process descended from ``pid``, with its command line."""
    parents = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in found:
                try:
                    found[child] = (Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")).decode()
                except OSError:
                    continue
                frontier.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _interrupt_when(command: list[str], home: Path, ready, signal_number: int, timeout: float = 240) -> dict[int, str]:
    """Start ``command``; once ``ready(children)`` holds, send ``signal_number``; return the children it had."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSHARE_")}
    env.update(MEDSHARE_HOME=str(home), MEDSHARE_PASSPHRASE="a passphrase")
    process = subprocess.Popen([str(Path(sys.executable).parent / "medshare"), *command], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    try:
        while True:
            children = _children(process.pid)
            if ready(children):
                break
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, "never got ready"
            time.sleep(0.2)
        process.send_signal(signal_number)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode in (128 + signal_number, -signal_number, 1), output
    assert "Traceback" not in output, output
    time.sleep(0.5)
    left = {pid: line for pid, line in children.items() if _alive(pid)}
    assert not left, f"left running: {left}"
    return children


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_fl_run_leaves_no_node_and_no_chain(project, tmp_path, signal_number):
    home = tmp_path / "home"

    def nodes_started(children):
        # A node forked from the run's preloaded node server carries the server's command line.
        started = sum("fl participant" in line or "fl coordinator" in line for line in children.values())
        forked = sum("offchain.rounds.node_server" in line for line in children.values())
        return started + max(forked - 1, 0) == 3

    children = _interrupt_when(["fl", "run", "--rounds", "20", "--hospitals", "2"], home, nodes_started,
                               signal_number)
    assert any("anvil" in line for line in children.values())
    assert not list((home / "fl").glob("*.png"))  # no plot for a run that did not finish


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_rehearse_amoy_leaves_no_anvil(project, tmp_path, signal_number):
    def anvil_runs(children):
        return any("anvil" in line and "80002" in line for line in children.values())

    _interrupt_when(["chain", "rehearse-amoy"], tmp_path / "home", anvil_runs, signal_number)
