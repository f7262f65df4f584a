"""Node processes forked from one preloaded server, so a run pays Python's and torch's imports once.

``fl run`` starts a coordinator and K hospitals (and starts killed ones again), each
``medshare fl ...`` in a process of its own. Started from scratch, every one of them
imports torch, Ape and the library again: seconds of CPU each, all at once. The
:class:`NodeServer` is one process that imports those once, then forks a child per node;
the child sets the node's own environment, arguments and log, and runs the same CLI
command a fresh process would. The parties stay separate OS processes (kill one and
the others go on); only the start-up is shared.

A forked node's command line is the server's (``ps -e`` shows its node's name).

Fork-safety: the server only imports (it opens no connection, database or file, and
checks it runs no thread) before it forks; each child draws fresh seeds for torch's and
numpy's generators (Python's ``random`` reseeds itself after a fork).

Protocol, one JSON object a line: the runner writes ``{"argv", "env", "log", "mode"}``
to the server's stdin; the server answers ``{"pid"}`` on its stdout, and
``{"exited", "code"}`` when a child ends (``code`` as :attr:`subprocess.Popen.returncode`).
Closing stdin stops the server (its children keep running until killed or done).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from importlib.metadata import entry_points
from pathlib import Path

# What every node command imports; a child imports anything else itself.
PRELOAD = ("torch", "ape", "offchain.cli", "offchain.rounds.coordinator", "offchain.rounds.participant",
           "offchain.rounds.runner", "offchain.rounds.node_settings", "offchain.rounds.local_data")
START_TIMEOUT_SECONDS = 300


class NodeServerError(RuntimeError):
    """The server could not start or stopped answering."""


def preloads_safely(env: dict[str, str]) -> bool:
    """Whether nodes started with ``env`` can come from a preloaded server: not if ``PYTHONPATH``
    holds a ``sitecustomize``, which Python runs at a process's start-up (reading that process's own
    arguments) and a forked child would never run again."""
    return not any((Path(folder) / "sitecustomize.py").exists()
                   for folder in env.get("PYTHONPATH", "").split(os.pathsep) if folder)


class NodeProcess:
    """One forked node, as much of :class:`subprocess.Popen` as the runner uses."""

    def __init__(self, server: NodeServer, pid: int) -> None:
        self.server, self.pid = server, pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.server.exit_code(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        give_up = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if give_up is not None and time.monotonic() > give_up:
                raise subprocess.TimeoutExpired(f"node {self.pid}", timeout)
            self.server.wait_for_news(0.1)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, 9)
            except ProcessLookupError:
                pass


class NodeServer:
    """The server process, started with the environment every node shares."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "offchain.rounds.node_server"], env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self._exits: dict[int, int] = {}
        self._started: list[int] = []
        self._news = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="node-server", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            message = json.loads(line)
            with self._news:
                if "exited" in message:
                    self._exits[message["exited"]] = message["code"]
                else:
                    self._started.append(message.get("pid", -1))
                self._news.notify_all()
        with self._news:
            self._started.append(-1)  # the server is gone: whoever waits for a pid gives up
            self._news.notify_all()

    def wait_for_news(self, seconds: float) -> None:
        with self._news:
            self._news.wait(seconds)

    def exit_code(self, pid: int) -> int | None:
        with self._news:
            return self._exits.get(pid)

    def start(self, argv: list[str], env: dict[str, str], log: Path, mode: str) -> NodeProcess:
        """Fork ``medshare <argv>`` with ``env``, its output going to ``log`` (opened with ``mode``)."""
        request = json.dumps({"argv": argv, "env": env, "log": str(log), "mode": mode})
        try:
            self.process.stdin.write(request + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError) as error:
            raise NodeServerError(f"the node server is gone: {error}") from None
        with self._news:
            if not self._news.wait_for(lambda: self._started, START_TIMEOUT_SECONDS):
                raise NodeServerError("the node server did not answer")
            pid = self._started.pop(0)
        if pid < 0:
            raise NodeServerError("the node server could not fork a node")
        return NodeProcess(self, pid)

    def close(self) -> None:
        if self.process.stdin and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _name_process(name: str) -> None:
    """Name the process (its ``comm``, what ``ps -e`` and ``top`` show) after its node; its command
    line stays the server's, since rewriting it would overwrite the environment the kernel shows."""
    import ctypes

    try:
        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


def _child(request: dict) -> None:
    """In the forked child: become the node the request describes, run it, exit with its status."""
    code = 1
    try:
        _name_process(Path(request["log"]).stem)
        import signal

        signal.signal(signal.SIGINT, signal.default_int_handler)  # a node takes Ctrl-C as a fresh process would
        os.environ.clear()
        os.environ.update(request["env"])
        with open(request["log"], request["mode"]) as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        sys.stdin = open(0, closefd=False)
        sys.argv = ["medshare", *request["argv"]]
        import numpy
        import torch

        torch.seed()
        numpy.random.seed()
        # The installed `medshare` command, as a fresh process runs it (the library imports no front end).
        (command,) = entry_points(group="console_scripts", name="medshare")
        try:
            command.load()(args=request["argv"], prog_name="medshare")
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve() -> None:
    """Preload, then fork a node per request until stdin closes."""
    import importlib
    import signal

    # Ctrl-C reaches the whole process group: the runner stops the nodes, then this server by closing stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in PRELOAD:
        importlib.import_module(name)
    answer = sys.stdout
    children: set[int] = set()

    def say(message: dict) -> None:
        answer.write(json.dumps(message) + "\n")
        answer.flush()

    def reap() -> None:
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                children.discard(pid)
                say({"exited": pid, "code": os.waitstatus_to_exitcode(status)})

    requests = sys.stdin.buffer
    pending = b""
    while True:
        readable, _, _ = select.select([requests], [], [], 0.05)
        reap()
        if not readable:
            continue
        chunk = os.read(requests.fileno(), 1 << 16)
        if not chunk:
            break
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if threading.active_count() > 1:  # a thread's locks would be held for ever in the child
                say({"pid": -1})
                continue
            answer.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(json.loads(line))
            children.add(pid)
            say({"pid": pid})
    while children:  # stdin closed: go on reporting until the last child ends or the runner stops reading
        try:
            time.sleep(0.05)
            reap()
        except BrokenPipeError:
            break


if __name__ == "__main__":
    serve()
