"""Reads through an endpoint that refuses wide eth_getLogs ranges, as public Polygon endpoints do.

The proxy refuses ranges over 100 blocks and the clients page by 100 (MEDSHARE_LOG_PAGE_BLOCKS): the
same shape as a public endpoint's 1,000 with the default page, on fewer blocks (anvil mines a few
dozen blocks a second on a shared machine)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from web3 import HTTPProvider, Web3

from offchain.chain import localchain
from offchain.chain.rpcproxy import LogRangeProxy
from offchain.settings import Settings

HOSPITAL, DOCTOR, PATIENT = ("0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
                             "0x90F79bf6EB2c4f870365E785982E1f101E93b906")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def home(tmp_path):
    settings = Settings(home=tmp_path / "home")
    localchain.up(settings, port=_free_port())
    yield settings
    localchain.down(settings)


def test_a_grant_and_fetch_hundreds_of_blocks_after_deployment(project, home, tmp_path):
    local = localchain.recorded(home)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSHARE_")}
    env.update(MEDSHARE_HOME=str(home.home), MEDSHARE_PASSPHRASE="a passphrase", MEDSHARE_LOG_PAGE_BLOCKS="100")

    def medshare(*args: str, rpc: str | None = None) -> str:
        command = [str(Path(sys.executable).parent / "medshare"), *args, *(["--rpc", rpc] if rpc else [])]
        done = subprocess.run(command, cwd=project.path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    medshare("deploy")
    members = tmp_path / "members.csv"
    members.write_text(f"data-owner,{HOSPITAL}\ndoctor,{DOCTOR}\npatient,{PATIENT}\n")
    medshare("members", "add", "--csv", str(members))
    for index in (1, 2, 3):
        medshare("keys", "publish", "--account", f"TEST::{index}")
    scan = tmp_path / "scan.dcm"
    scan.write_bytes(os.urandom(50_000))
    record_id = medshare("record", "upload", str(scan), "--patient", PATIENT, "--name", "scan",
                         "--account", "TEST::1").split("record ")[1].split()[0]
    web3 = Web3(HTTPProvider(local.url))
    web3.provider.make_request("anvil_mine", [hex(250)])

    with LogRangeProxy(local.url, max_log_blocks=100) as proxy:
        wide = Web3(HTTPProvider(proxy.url)).provider.make_request(
            "eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest"}])
        assert "too wide" in wide["error"]["message"] and proxy.refused == 1
        medshare("record", "grant", record_id, DOCTOR, "--days", "1", "--account", "TEST::1", rpc=proxy.url)
        granted = list(proxy.log_ranges[1:])
        deployed = granted[0][0]
        assert granted[-1][1] >= deployed + 250 and all(stop - start < 100 for start, stop in granted)
        read_to = max(stop for _, stop in granted)
        copy = tmp_path / "copy.dcm"
        medshare("record", "fetch", record_id, "-o", str(copy), "--account", "TEST::2", rpc=proxy.url)
        assert copy.read_bytes() == scan.read_bytes()
        assert proxy.refused == 1 and proxy.log_queries >= 3  # the reads went out in pages, none refused
        # The fetch, another process, found the grant's log cache on disk and read only the blocks since.
        fetched = proxy.log_ranges[1 + len(granted):]
        assert fetched and all(start > read_to for start, _ in fetched)
        assert sum(stop - start + 1 for start, stop in fetched) < 10
        assert list((home.home / "cache" / "events" / str(local.chain_id)).glob("0x*.sqlite"))
