"""``medshare chain up|status|down``: an anvil that outlives the command, recorded under MEDSHARE_HOME."""

import json
import os
import socket

from click.testing import CliRunner
from web3 import HTTPProvider, Web3

from offchain.cli import main


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_up_status_down(tmp_path):
    env = {"MEDSHARE_HOME": str(tmp_path)}
    port = _free_port()

    def medshare(*args: str, status: int = 0) -> str:
        result = CliRunner().invoke(main, ["chain", *args], env=env)
        assert result.exit_code == status, result.output
        return result.output

    assert "no local chain runs" in medshare("status", status=1)
    assert f"local chain started: http://127.0.0.1:{port} (chain id 80002" in medshare(
        "up", "--port", str(port), "--chain-id", "80002")
    state = json.loads((tmp_path / "chain" / "anvil.json").read_text())
    try:
        assert Web3(HTTPProvider(state["url"])).eth.chain_id == 80002  # it outlived the command
        assert "already running" in medshare("up", "--port", str(port))
        assert f"running: http://127.0.0.1:{port}" in medshare("status")
        other = {"MEDSHARE_HOME": str(tmp_path / "other")}
        taken = CliRunner().invoke(main, ["chain", "up", "--port", str(port)], env=other)
        assert taken.exit_code == 1 and f"port {port} on 127.0.0.1 is taken" in taken.output
    finally:
        assert f"stopped (pid {state['pid']})" in medshare("down")
    assert not (tmp_path / "chain" / "anvil.json").exists()
    assert "no local chain runs" in medshare("status", status=1)
    assert not Web3(HTTPProvider(state["url"], request_kwargs={"timeout": 2})).is_connected()
    assert "no local chain was recorded" in medshare("down")
    assert not os.path.exists(f"/proc/{state['pid']}/cmdline") or not open(
        f"/proc/{state['pid']}/cmdline", "rb").read()
