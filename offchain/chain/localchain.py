"""A local anvil that outlives the command that started it: ``medshare chain up|down|status``.

Its process id, port, URL and chain id are recorded in
``$MEDSHARE_HOME/chain/anvil.json`` (its output goes to ``anvil.log`` beside
it), and every chain-touching command on the default local network connects
to it while it runs, so a session of commands shares one chain.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from offchain.errors import ChainUnavailable
from offchain.inputs import node_chain_id
from offchain.settings import Settings

DEFAULT_PORT = 8545
DEFAULT_CHAIN_ID = 31337
STARTUP_SECONDS = 20.0
OWNER_ENV = "MEDSHARE_CHAIN_HOME"
"""Set in the environment of the anvil ``chain up`` starts: which home's chain it is, so that
``chain down`` signals only that process, even with its record lost."""


@dataclass(frozen=True)
class LocalChain:
    """A running anvil started by ``chain up``."""

    pid: int
    port: int
    chain_id: int
    url: str
    log: str


def _folder(settings: Settings) -> Path:
    return settings.home / "chain"


def _state_file(settings: Settings) -> Path:
    return _folder(settings) / "anvil.json"


def _process(pid: int) -> tuple[list[str], dict[str, str]] | None:
    """The command line and environment of process ``pid`` (None: no such process, or not ours to read)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    pairs = (entry.decode(errors="replace").partition("=") for entry in environ if entry)
    return [arg.decode(errors="replace") for arg in argv if arg], {key: value for key, _, value in pairs}


def _owner(settings: Settings) -> str:
    return str(settings.home.resolve())


def _is_our_anvil(pid: int, settings: Settings) -> bool:
    """Whether ``pid`` is the anvil ``chain up`` started for this home: an anvil process whose
    environment names the home. A recycled pid, pid 1 or any other process never passes."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
        return False
    found = _process(pid)
    if found is None:
        return False
    argv, environ = found
    return bool(argv) and Path(argv[0]).name == "anvil" and environ.get(OWNER_ENV) == _owner(settings)


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv[:-1] else None


def _find_ours(settings: Settings) -> LocalChain | None:
    """The anvil started for this home, found among the processes (when its record is lost or damaged)."""
    for entry in Path("/proc").glob("[0-9]*"):
        pid = int(entry.name)
        if not _is_our_anvil(pid, settings):
            continue
        argv = _process(pid)[0]
        try:
            port, chain_id = int(_option(argv, "--port") or 0), int(_option(argv, "--chain-id") or 0)
        except ValueError:
            continue
        if port and chain_id:
            return LocalChain(pid, port, chain_id, f"http://127.0.0.1:{port}", str(_folder(settings) / "anvil.log"))
    return None


def _read_record(settings: Settings) -> LocalChain | None:
    """The record ``chain up`` wrote, checked field by field; None if missing or damaged."""
    try:
        fields = json.loads(_state_file(settings).read_text())
        local = LocalChain(**fields)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError):
        return None
    kinds = {"pid": int, "port": int, "chain_id": int, "url": str, "log": str}
    if any(type(getattr(local, name)) is not kind for name, kind in kinds.items()):
        return None
    return local


def recorded(settings: Settings | None = None) -> LocalChain | None:
    """The chain ``chain up`` started (whether or not it still runs); from its record, or, if the
    record is missing or damaged, from the anvil process started for this home."""
    settings = settings or Settings.from_env()
    return _read_record(settings) or _find_ours(settings)


def running(settings: Settings | None = None) -> LocalChain | None:
    """The chain ``chain up`` started, if it still runs and answers."""
    settings = settings or Settings.from_env()
    local = recorded(settings)
    if local is None or not _is_our_anvil(local.pid, settings):
        return None
    try:
        node_chain_id(local.url, timeout=2.0)
    except ChainUnavailable:
        return None
    return local


def _port_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:``port`` now: bound as anvil binds it, with
    SO_REUSEADDR, so the TIME-WAIT sockets a chain just stopped leaves behind do not count."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen(1)
        except OSError:
            return False
    return True


def _listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` itself listens on ``port`` (not some other node that answers there)."""
    try:
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
        sockets = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
    except OSError:
        return True  # no /proc to ask: the caller has checked that the process is alive
    for line in table:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port and f"socket:[{fields[9]}]" in sockets:
            return True
    return False


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def spawn(port: int, chain_id: int, log: Path, *, block_time: float | None = None,
          base_fee: int | None = None, hardfork: str | None = None,
          owner: str | None = None, load_state: Path | None = None) -> tuple[subprocess.Popen, str]:
    """Start anvil on 127.0.0.1:``port`` (output appended to ``log``) and wait until it answers;
    returns the process and its URL. ``base_fee`` (wei) sets the first block's base fee; ``owner``
    marks it as the chain of that home (:data:`OWNER_ENV`); ``load_state``: a chain anvil dumped
    (its JSON state: blocks, transactions and logs) to start from."""
    binary = shutil.which("anvil")
    if binary is None:
        raise ChainUnavailable("no `anvil` on PATH; run the command through ./run, which installs it")
    if not _port_free(port):
        raise ChainUnavailable(f"port {port} on 127.0.0.1 is taken; choose another with --port")
    arguments = [binary, "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(chain_id)]
    if block_time:
        arguments += ["--block-time", str(block_time)]
    if base_fee is not None:
        arguments += ["--block-base-fee-per-gas", str(base_fee)]
    if hardfork is not None:
        arguments += ["--hardfork", hardfork]
    if load_state is not None:
        arguments += ["--load-state", str(load_state)]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as output:
        environment = {**os.environ, OWNER_ENV: owner} if owner else None
        process = subprocess.Popen(arguments, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True, env=environment)
    url = f"http://127.0.0.1:{port}"
    try:
        # A saved chain is read before anvil answers: allow for reading it (a few MB/s on a busy machine).
        extra = 0.0 if load_state is None else load_state.stat().st_size / 2e6
        _wait_until_it_answers(process, url, port, log, STARTUP_SECONDS + extra)
    except BaseException:  # an error, Ctrl-C or SIGTERM while it starts: it must not outlive us
        process.kill()
        process.wait()
        raise
    return process, url


def _wait_until_it_answers(process: subprocess.Popen, url: str, port: int, log: Path,
                           seconds: float = STARTUP_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while True:
        # Another node started on the port at the same moment may answer; only our own process counts.
        if process.poll() is None and _answers(url) and _listens(process.pid, port):
            return
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            if not _port_free(port):
                raise ChainUnavailable(f"port {port} on 127.0.0.1 is taken; choose another with --port")
            raise ChainUnavailable(f"anvil did not start on {url}; see {log}")
        time.sleep(0.1)


def _answers(url: str) -> bool:
    try:
        node_chain_id(url, timeout=1.0)
    except ChainUnavailable:
        return False
    return True


@contextmanager
def throwaway(chain_id: int, log: Path, *, block_time: float | None = None, base_fee: int | None = None,
              hardfork: str | None = None, load_state: Path | None = None) -> Iterator[str]:
    """An anvil on a free loopback port for the duration of the block (its URL); stopped on leaving."""
    process, url = spawn(free_port(), chain_id, log, block_time=block_time, base_fee=base_fee, hardfork=hardfork,
                         load_state=load_state)
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def up(settings: Settings | None = None, *, port: int = DEFAULT_PORT, chain_id: int = DEFAULT_CHAIN_ID,
       block_time: float | None = None) -> tuple[LocalChain, bool]:
    """Start anvil on ``port`` in the background; returns it and whether it was started now.

    A chain that already runs is returned as it is. Two ``up`` at once on one home take turns (the
    second finds the first's chain running).
    """
    settings = settings or Settings.from_env()
    folder = _folder(settings)
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder / "up.lock"):
        local = running(settings)
        if local is not None:
            if _read_record(settings) != local:
                _write_record(settings, local)  # its record was damaged: found by its process, written again
            return local, False
        log = folder / "anvil.log"
        process, url = spawn(port, chain_id, log, block_time=block_time, owner=_owner(settings))
        local = LocalChain(process.pid, port, chain_id, url, str(log))
        _write_record(settings, local)
        return local, True


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_record(settings: Settings, local: LocalChain) -> None:
    path = _state_file(settings)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(asdict(local), indent=2) + "\n")
    os.replace(temporary, path)


@dataclass(frozen=True)
class Stopped:
    """What ``chain down`` did: the chain it found recorded, and whether that anvil was still running."""

    chain: LocalChain
    was_running: bool


def down(settings: Settings | None = None) -> Stopped | None:
    """Stop the chain ``chain up`` started (and forget it); None if none was recorded or runs.

    Only an anvil started for this home is signalled: a record naming any other process (a damaged
    file, a recycled pid) is forgotten without signalling anything.
    """
    settings = settings or Settings.from_env()
    local = recorded(settings)
    if local is None:
        return None
    was_running = _is_our_anvil(local.pid, settings)
    if was_running:
        os.kill(local.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _is_our_anvil(local.pid, settings) and time.monotonic() < deadline:
            try:
                if os.waitpid(local.pid, os.WNOHANG)[0]:
                    break
            except ChildProcessError:
                pass
            time.sleep(0.05)
    _state_file(settings).unlink(missing_ok=True)
    return Stopped(local, was_running)
