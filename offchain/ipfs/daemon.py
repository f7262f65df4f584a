"""A local IPFS daemon for a site that has no Kubo: js-ipfs, which serves the same ``/api/v0`` RPC.

No Kubo binary can be had from the package registries, so the bootstrap
installs npm ``ipfs`` (js-ipfs) 0.66.1 into ``tools/ipfs-daemon`` (its own
folder and lockfile, apart from the product's npm tree). :class:`LocalDaemon`
makes it a repository (``IPFS_PATH``) and runs it on loopback only: no
bootstrap peers, no MDNS or other discovery, no delegated routing, no preload
nodes, no NAT port mapping, every address on 127.0.0.1. It meets other sites'
nodes only by ``swarm/connect`` to the peers the consortium lists
(:mod:`offchain.ipfs.consortium`).

Used by ``medshare ipfs up``/``down``, by the tests and the storage bench, and
by ``medshare fl run --sites separate`` (one daemon per site).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from offchain.ipfs.errors import StoreError

ROOT = Path(__file__).resolve().parents[2]
DAEMON_FOLDER = ROOT / "tools" / "ipfs-daemon"
JSIPFS = DAEMON_FOLDER / "node_modules" / "ipfs" / "src" / "cli.js"
DAEMON_SCRIPT = DAEMON_FOLDER / "daemon.mjs"
START_TIMEOUT_SECONDS = 90
STOP_TIMEOUT_SECONDS = 15
LOOPBACK = "127.0.0.1"
DEFAULT_API_PORT, DEFAULT_SWARM_PORT = 5001, 4001  # Kubo's


class DaemonError(StoreError):
    """The local daemon could not be installed, initialised, started or stopped."""


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def installed() -> bool:
    return JSIPFS.is_file()


def install(timeout: float = 900) -> None:
    """Install js-ipfs into tools/ipfs-daemon from its lockfile, as ``./run test`` does (idempotent)."""
    if installed():
        return
    script = f'ROOT={_quoted(ROOT)}; source "$ROOT/tools/bootstrap.sh"; medshare_ipfs_daemon'
    try:
        subprocess.run(["bash", "-c", script], check=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as error:
        raise DaemonError(f"could not install the IPFS daemon into {DAEMON_FOLDER}: {error}") from None
    if not installed():
        raise DaemonError(f"the IPFS daemon is not in {DAEMON_FOLDER} after its install")


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "'\\''") + "'"


@dataclass
class LocalDaemon:
    """A js-ipfs daemon with its repository at ``repo``, its API and swarm on loopback ports."""

    repo: Path
    api_port: int = 0  # 0: a free port, chosen when the repository is configured
    swarm_port: int = 0
    process: subprocess.Popen | None = None
    pid: int | None = None  # a detached daemon's (see ``detached``)

    @property
    def api(self) -> str:
        """The API's multiaddr, as ``IPFS_API`` takes it."""
        return f"/ip4/{LOOPBACK}/tcp/{self.api_port}/http"

    @property
    def peer_id(self) -> str:
        return self._config()["Identity"]["PeerID"]

    @property
    def swarm_address(self) -> str:
        """Where other sites' nodes dial this one: its swarm multiaddr with its peer ID."""
        return f"/ip4/{LOOPBACK}/tcp/{self.swarm_port}/p2p/{self.peer_id}"

    @property
    def log(self) -> Path:
        return self.repo / "daemon.log"

    def init(self) -> LocalDaemon:
        """Choose the ports and write the loopback-only configuration: into the repository's config if it
        exists (every start: the ports may change), else into the file the daemon's first start inits from."""
        install()
        self.repo.mkdir(parents=True, exist_ok=True)
        initialised = (self.repo / "config").exists()
        config = self._config() if initialised else {}
        if not self.api_port:
            self.api_port = _port_of(config.get("Addresses", {}).get("API")) or free_port()
        if not self.swarm_port:
            swarm = config.get("Addresses", {}).get("Swarm") or [None]
            self.swarm_port = _port_of(swarm[0]) or free_port()
        target = self.repo / "config" if initialised else self._init_config
        target.write_text(json.dumps(_offline_loopback(config, self.api_port, self.swarm_port), indent=2))
        return self

    @property
    def _init_config(self) -> Path:
        return self.repo / "medshare-init-config.json"

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> LocalDaemon:
        """Start the daemon and wait, at most ``timeout`` seconds, until its API answers."""
        from offchain.ipfs.kubo import KuboStore

        chosen = not (self.api_port and self.swarm_port)
        self.init()
        for port in (self.api_port, self.swarm_port):
            if not _port_free(port):
                if not chosen:
                    raise DaemonError(f"port {port} on {LOOPBACK} is taken: cannot start the IPFS daemon in {self.repo}")
                # Ports we picked (or found in its config) were taken since: pick others.
                self.api_port, self.swarm_port = free_port(), free_port()
                self.init()
                break
        # Its ports are free, so no daemon serves this repository: a lock left by one that was killed is
        # stale (js-ipfs would refuse to start for 20 s, proper-lockfile's staleness time; its lock is a folder).
        shutil.rmtree(self.repo / "repo.lock", ignore_errors=True)
        with self.log.open("ab") as out:
            # tools/ipfs-daemon/daemon.mjs starts js-ipfs's daemon as `jsipfs daemon --enable-preload=false
            # --init-profile test --init-config FILE` would (a first start inits the repository itself;
            # preload off: js-ipfs would announce every add to public preload nodes), with libp2p's Noise
            # cipher on Node's native ChaCha20-Poly1305 (see that file).
            self.process = subprocess.Popen(
                ["node", str(DAEMON_SCRIPT), str(self._init_config)],
                env=self._env(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C in the terminal is for the caller; it stops this on its way out
            )
        store = KuboStore(self.api, timeout=2)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise DaemonError(f"the IPFS daemon in {self.repo} exited with status {self.process.returncode}: "
                                  f"{_tail(self.log)}")
            try:
                store.version()
                return self
            except StoreError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise DaemonError(f"the IPFS daemon in {self.repo} did not answer at {self.api} "
                                      f"in {timeout:.0f} s: {_tail(self.log)}") from None
                time.sleep(0.25)

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Stop the daemon (SIGTERM, then SIGKILL after ``timeout`` seconds)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        self.process = None

    def __enter__(self) -> LocalDaemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # A daemon left running by `medshare ipfs up`, found again by `down` through its repository.

    @property
    def state_file(self) -> Path:
        return self.repo / "medshare-daemon.json"

    def detach(self) -> None:
        """Leave the started daemon running after this process; ``stop_detached`` ends it."""
        assert self.process is not None
        self.state_file.write_text(json.dumps({"pid": self.process.pid, "api_port": self.api_port,
                                               "swarm_port": self.swarm_port}))
        self.process = None

    @classmethod
    def detached(cls, repo: Path) -> LocalDaemon | None:
        """The daemon ``up`` left running on ``repo``, if it still runs."""
        daemon = cls(repo)
        try:
            state = json.loads(daemon.state_file.read_text())
            pid = int(state["pid"])
            os.kill(pid, 0)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        daemon.api_port, daemon.swarm_port = int(state["api_port"]), int(state["swarm_port"])
        daemon.pid = pid
        return daemon

    def stop_detached(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        pid = self.pid
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    os.kill(pid, 0)
                    time.sleep(0.2)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.state_file.unlink(missing_ok=True)

    def _config(self) -> dict:
        try:
            return json.loads((self.repo / "config").read_text())
        except (OSError, ValueError) as error:
            raise DaemonError(f"the IPFS repository {self.repo} has no readable config: {error}") from None

    def _env(self) -> dict[str, str]:
        return {**os.environ, "IPFS_PATH": str(self.repo), "DEBUG": ""}


def _offline_loopback(config: dict, api_port: int, swarm_port: int) -> dict:
    """``config`` with every way to reach beyond this machine shut, and the given loopback ports."""
    addresses = config.setdefault("Addresses", {})
    addresses["API"] = f"/ip4/{LOOPBACK}/tcp/{api_port}"
    addresses["Swarm"] = [f"/ip4/{LOOPBACK}/tcp/{swarm_port}"]
    addresses["Announce"] = []
    addresses["NoAnnounce"] = []
    addresses["Gateway"] = ""  # no HTTP gateway: the API is all a site's clients use
    addresses["RPC"] = ""  # js-ipfs's gRPC websocket server: unused
    addresses["Delegates"] = []  # no delegated routing nodes
    config["Bootstrap"] = []
    discovery = config.setdefault("Discovery", {})
    discovery["MDNS"] = {"Enabled": False, "Interval": 10}
    discovery["webRTCStar"] = {"Enabled": False}
    config.setdefault("Swarm", {})["DisableNatPortMap"] = True
    config["Routing"] = {"Type": "none"}  # no DHT: blocks move by bitswap between connected peers
    config.setdefault("Pubsub", {})["Enabled"] = False
    config["relay"] = {"enabled": False, "hop": {"enabled": False, "active": False}}  # js-ipfs: no circuit relay
    return config


def _port_of(multiaddr: object) -> int:
    parts = str(multiaddr or "").split("/")
    return int(parts[4]) if len(parts) > 4 and parts[3] == "tcp" and parts[4].isdigit() else 0


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(no output)"


@contextmanager
def start_all(daemons: Sequence[LocalDaemon]) -> Iterator[Sequence[LocalDaemon]]:
    """Start the daemons side by side (a start is mostly Node loading modules), stop them all on leaving."""
    taken: set[int] = set()
    for daemon in daemons:  # ports chosen one after another, so that no two daemons get the same
        daemon.init()
        while {daemon.api_port, daemon.swarm_port} & taken or daemon.api_port == daemon.swarm_port:
            daemon.api_port, daemon.swarm_port = free_port(), free_port()
            daemon.init()
        taken |= {daemon.api_port, daemon.swarm_port}
    try:
        with ThreadPoolExecutor(max_workers=len(daemons) or 1) as pool:
            for started in pool.map(lambda daemon: daemon.start(), daemons):
                pass
        yield daemons
    finally:
        for daemon in daemons:
            daemon.stop()
