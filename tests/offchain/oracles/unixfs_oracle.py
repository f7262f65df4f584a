"""npm's ipfs-unixfs-importer (run by node) as a CID oracle; see unixfs_oracle.mjs."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).with_name("unixfs_oracle.mjs")


def js_importer_cids(paths: list[Path], cid_version: int) -> list[str]:
    """The JS importer's CID of each file, with Kubo's options for ``cid_version``."""
    done = subprocess.run(
        ["node", str(SCRIPT), str(cid_version), *map(str, paths)], capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        raise RuntimeError(f"JS importer oracle failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout.split()
