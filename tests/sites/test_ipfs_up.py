"""`medshare ipfs up` / `down`: a site's own local node (js-ipfs) for sites with no Kubo, started in the
background on loopback ports, found again by its repository, and used through MEDSHARE_IPFS_BACKEND=kubo."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from offchain.cli import main as medshare
from offchain.ipfs.daemon import LocalDaemon, free_port

pytestmark = pytest.mark.sites


def test_up_add_cat_status_down(tmp_path):
    repo = tmp_path / "node"
    api_port, swarm_port = free_port(), free_port()
    runner = CliRunner()
    up = runner.invoke(medshare, ["ipfs", "up", "--repo", str(repo), "--api-port", str(api_port),
                                  "--swarm-port", str(swarm_port)])
    try:
        assert up.exit_code == 0, up.output
        api = f"/ip4/127.0.0.1/tcp/{api_port}/http"
        assert f"export MEDSHARE_IPFS_BACKEND=kubo IPFS_API={api}" in up.output
        assert re.search(rf"/ip4/127.0.0.1/tcp/{swarm_port}/p2p/12D3Koo\w+", up.output)
        again = runner.invoke(medshare, ["ipfs", "up", "--repo", str(repo)])  # already up: the same node
        assert again.exit_code == 0 and api in again.output
        moved = runner.invoke(medshare, ["ipfs", "up", "--repo", str(repo), "--api-port", str(free_port())])
        assert moved.exit_code == 2 and "already runs on API port" in moved.output
        env = {"MEDSHARE_HOME": str(tmp_path / "home"), "MEDSHARE_IPFS_BACKEND": "kubo", "IPFS_API": api}
        added = runner.invoke(medshare, ["ipfs", "add", "-"], input=b"held by this site's node", env=env)
        assert added.exit_code == 0, added.output
        cid = added.output.strip()
        cat = runner.invoke(medshare, ["ipfs", "cat", cid], env=env)
        assert cat.stdout_bytes == b"held by this site's node"
        status = runner.invoke(medshare, ["ipfs", "status", cid], env=env)
        assert status.exit_code == 0 and "this site" in status.output and "1 of 1 hold it" in status.output
    finally:
        down = runner.invoke(medshare, ["ipfs", "down", "--repo", str(repo)])
    assert down.exit_code == 0 and "stopped" in down.output
    assert LocalDaemon.detached(repo) is None
    assert "no IPFS node" in runner.invoke(medshare, ["ipfs", "down", "--repo", str(repo)]).output
