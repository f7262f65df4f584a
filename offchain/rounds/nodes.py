"""The node processes of ``medshare fl run``: started, watched, killed when told to go silent, restarted.

Each node (the coordinator, ``hospital-1`` ... ``hospital-K``) is a ``medshare
fl`` command in its own OS process, logging to ``logs/<name>.log``. A hospital
with a :class:`~offchain.rounds.faults.Dropout` holds after its message of that
round; :class:`Nodes` kills it with SIGKILL once its log says so (a crash:
nothing flushed or closed) and starts it again once the round is closed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from offchain.rounds.errors import RoundsError
from offchain.rounds.faults import SILENT_AFTER_ENV, SILENT_MARK, Dropout, silent_after_env
from offchain.rounds.node_server import NodeProcess, NodeServer, preloads_safely

NODE_TIMEOUT_SECONDS = 1800
MEDSHARE = [sys.executable, "-c", "from offchain.cli import main; main()"]
"""The ``medshare`` command in this interpreter (a node is the front end, in a process of its own)."""

Echo = Callable[[str], None]


class Nodes:
    """The run's node processes by name, each logging to ``logs/<name>.log``; a hospital told to go
    silent (:class:`~offchain.rounds.faults.Dropout`) is killed once it says it holds, and started
    again later."""

    def __init__(self, logs: Path, env: Mapping[str, str], drops: Sequence[Dropout], rounds: int,
                 site_env: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.logs = logs
        # A node goes silent only as its own drop says, never as this process's environment might.
        self.env = {name: value for name, value in env.items() if name != SILENT_AFTER_ENV}
        self.site_env = dict(site_env or {})  # by node name: its own home and IPFS node (separate sites)
        self.drops = sorted(drops, key=lambda drop: drop.round)
        self.rounds = rounds
        self.processes: dict[str, subprocess.Popen | NodeProcess] = {}
        self.arguments: dict[str, list[str]] = {}
        self.silenced: dict[str, Dropout] = {}  # told to go silent, not yet killed
        self.killed: dict[str, int] = {}  # killed, by name: the round they went silent in
        self.server: NodeServer | None = None
        logs.mkdir(parents=True, exist_ok=True)

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def start(self, name: str, arguments: list[str], after_round: int = 0) -> None:
        """Start node ``name`` (``medshare fl ARGUMENTS``); a hospital with a drop in a round after
        ``after_round`` holds in the first."""
        silent = next((d for d in self.drops if d.name == name and d.round > after_round), None)
        env = {**self.env, **self.site_env.get(name, {}), **(silent_after_env(silent) if silent else {})}
        mode = "ab" if name in self.arguments else "wb"  # a restarted node's log goes on from its last
        if self.server is None and preloads_safely(self.env):
            self.server = NodeServer(self.env)
        if self.server is not None:  # forked from the preloaded server: the same command, imports paid once
            self.processes[name] = self.server.start(["fl", *arguments], env, self.log(name), mode)
        else:
            with self.log(name).open(mode) as out:
                self.processes[name] = subprocess.Popen([*MEDSHARE, "fl", *arguments], env=env, stdout=out,
                                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.arguments[name] = arguments
        if silent is not None:
            self.silenced[name] = silent

    def kill_the_silent(self, echo: Echo) -> None:
        """SIGKILL each node that went silent (it said so in its log): a crash, nothing flushed or closed."""
        for name, drop in list(self.silenced.items()):
            if SILENT_MARK in self.log(name).read_text(errors="replace"):
                os.kill(self.processes[name].pid, signal.SIGKILL)
                self.processes[name].wait()
                del self.silenced[name]
                self.killed[name] = drop.round
                echo(f"{name}: killed in round {drop.round}, after its {drop.after.value}")

    def restart_killed(self, closed_round: int, echo: Echo) -> None:
        """Start again each node killed in a round now closed (unless the study is over)."""
        for name, round_number in list(self.killed.items()):
            if round_number <= closed_round < self.rounds:
                del self.killed[name]
                self.start(name, self.arguments[name], after_round=closed_round)
                echo(f"{name}: started again after round {closed_round}")

    def check(self) -> None:
        """RoundsError naming the first node that failed (and its last log line)."""
        for name, process in self.processes.items():
            code = process.poll()
            if code not in (None, 0) and name not in self.killed:
                raise RoundsError(f"{name} exited with status {code}: {_last_line(self.log(name))}")

    def wait(self) -> None:
        """Wait for every node still meant to run to finish; RoundsError for one that failed."""
        for name, process in self.processes.items():
            if name in self.killed:
                continue
            code = process.wait(timeout=NODE_TIMEOUT_SECONDS)
            if code != 0:
                raise RoundsError(f"{name} exited with status {code}: {_last_line(self.log(name))}")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
            process.wait()
        if self.server is not None:
            self.server.close()


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"
