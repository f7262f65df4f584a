"""A local anvil that outlives the command that started it: ``medshare chain up|down|status``.

Its process id, port, URL and chain id are recorded in
``$MEDSHARE_HOME/chain/anvil.json`` (its output goes to ``anvil.log`` beside
it), and every chain-touching command on the default local network connects
to it while it runs, so a session of commands shares one chain.
"""

from __future__ import annotations

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


def _is_our_anvil(pid: int) -> bool:
    """Whether ``pid`` is still an anvil process (not a recycled pid)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True
    return Path(command.decode(errors="replace")).name == "anvil"


def recorded(settings: Settings | None = None) -> LocalChain | None:
    """The chain recorded by ``chain up``, if its file exists (whether or not it still runs)."""
    settings = settings or Settings.from_env()
    try:
        return LocalChain(**json.loads(_state_file(settings).read_text()))
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None


def running(settings: Settings | None = None) -> LocalChain | None:
    """The chain ``chain up`` started, if it still runs and answers."""
    local = recorded(settings)
    if local is None or not _is_our_anvil(local.pid):
        return None
    try:
        node_chain_id(local.url, timeout=2.0)
    except ChainUnavailable:
        return None
    return local


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def spawn(port: int, chain_id: int, log: Path, *, block_time: float | None = None,
          base_fee: int | None = None, hardfork: str | None = None) -> tuple[subprocess.Popen, str]:
    """Start anvil on 127.0.0.1:``port`` (output appended to ``log``) and wait until it answers;
    returns the process and its URL. ``base_fee`` (wei) sets the first block's base fee."""
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
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as output:
        process = subprocess.Popen(arguments, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            node_chain_id(url, timeout=1.0)
            return process, url
        except ChainUnavailable:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise ChainUnavailable(f"anvil did not start on {url}; see {log}") from None
            time.sleep(0.1)


@contextmanager
def throwaway(chain_id: int, log: Path, *, block_time: float | None = None, base_fee: int | None = None,
              hardfork: str | None = None) -> Iterator[str]:
    """An anvil on a free loopback port for the duration of the block (its URL); stopped on leaving."""
    process, url = spawn(free_port(), chain_id, log, block_time=block_time, base_fee=base_fee, hardfork=hardfork)
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

    A chain that already runs is returned as it is.
    """
    settings = settings or Settings.from_env()
    local = running(settings)
    if local is not None:
        return local, False
    log = _folder(settings) / "anvil.log"
    process, url = spawn(port, chain_id, log, block_time=block_time)
    local = LocalChain(process.pid, port, chain_id, url, str(log))
    _state_file(settings).write_text(json.dumps(asdict(local), indent=2) + "\n")
    return local, True


def down(settings: Settings | None = None) -> LocalChain | None:
    """Stop the chain ``chain up`` started (and forget it); returns it, or None if none was recorded."""
    settings = settings or Settings.from_env()
    local = recorded(settings)
    if local is None:
        return None
    if _is_our_anvil(local.pid):
        os.kill(local.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _is_our_anvil(local.pid) and time.monotonic() < deadline:
            try:
                if os.waitpid(local.pid, os.WNOHANG)[0]:
                    break
            except ChildProcessError:
                pass
            time.sleep(0.05)
    _state_file(settings).unlink(missing_ok=True)
    return local
