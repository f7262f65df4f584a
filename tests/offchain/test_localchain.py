"""``medshare chain up|status|down``: an anvil that outlives the command, recorded under MEDSHARE_HOME."""

import json
import os
import socket
from pathlib import Path

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


def test_a_port_in_time_wait_is_free_for_a_server():
    """`chain up` right after `chain down`: the sockets the old chain closed linger in TIME-WAIT."""
    from offchain.chain.localchain import _port_free

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    assert not _port_free(port)  # someone listens
    accepted.close()  # the server closes first: its side of the connection goes to TIME-WAIT
    client.close()
    server.close()
    assert _port_free(port)


def test_up_right_after_down_on_the_same_port(tmp_path):
    env = {"MEDSHARE_HOME": str(tmp_path)}
    port = _free_port()
    for _ in range(2):
        result = CliRunner().invoke(main, ["chain", "up", "--port", str(port)], env=env)
        assert result.exit_code == 0 and "local chain started" in result.output, result.output
        Web3(HTTPProvider(f"http://127.0.0.1:{port}")).eth.block_number  # a client connection to close
        assert "local chain stopped" in CliRunner().invoke(main, ["chain", "down"], env=env).output


def test_two_ups_at_once_start_one_chain(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from offchain.chain import localchain
    from offchain.errors import ChainUnavailable
    from offchain.settings import Settings

    port = _free_port()
    same, other = Settings(home=tmp_path / "a"), Settings(home=tmp_path / "b")

    def up(settings):
        try:
            return localchain.up(settings, port=port)
        except ChainUnavailable as error:
            return error

    try:
        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(up, [same, same, other]))
        started = [r for r in results if isinstance(r, tuple) and r[1]]
        assert len(started) == 1, results  # one anvil listens on the port; nobody else says "started"
        refused = [r for r in results if isinstance(r, Exception)]
        running = [r for r in results if isinstance(r, tuple) and not r[1]]
        assert all(f"port {port}" in str(error) for error in refused)
        assert all(r[0].pid == started[0][0].pid for r in running)
    finally:
        localchain.down(same)
        localchain.down(other)


def test_a_damaged_record_neither_orphans_the_chain_nor_signals_another_process(tmp_path):
    import subprocess
    import sys

    env = {"MEDSHARE_HOME": str(tmp_path)}
    state = tmp_path / "chain" / "anvil.json"
    assert CliRunner().invoke(main, ["chain", "up", "--port", str(_free_port())], env=env).exit_code == 0
    pid = json.loads(state.read_text())["pid"]
    state.write_text("{ damaged")
    assert f"pid {pid}" in CliRunner().invoke(main, ["chain", "status"], env=env).output  # found by its process
    assert f"local chain stopped (pid {pid})" in CliRunner().invoke(main, ["chain", "down"], env=env).output
    assert not Path(f"/proc/{pid}/cmdline").exists() or not Path(f"/proc/{pid}/cmdline").read_bytes()

    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for victim in (1, bystander.pid):
            state.write_text(json.dumps({"pid": victim, "port": 1, "chain_id": 1, "url": "http://127.0.0.1:1",
                                         "log": "x"}))
            output = CliRunner().invoke(main, ["chain", "down"], env=env).output
            assert f"(pid {victim}) was not running" in output and not state.exists()
        assert bystander.poll() is None  # never signalled
    finally:
        bystander.kill()
        bystander.wait()
