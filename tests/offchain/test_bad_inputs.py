"""The bad inputs a new user tried, each through the front ends: one clear line, an exit status, nothing sent.

In-process rows run on the test session's chain; the rows about reaching a node run the real
commands in a subprocess, where nothing is connected yet.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from offchain.cli import main

DOCTOR = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
TYPO = DOCTOR[:-1] + "c"  # one character's case flipped: the EIP-55 checksum no longer holds


@pytest.fixture
def medshare(access, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSHARE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDSHARE_PASSPHRASE", "a passphrase")
    monkeypatch.delenv("MEDSHARE_DEPLOYMENTS", raising=False)

    def run(*args: str, status: int, env: dict | None = None) -> str:
        result = CliRunner().invoke(main, list(args), env=env)
        assert result.exit_code == status, result.output
        assert "Traceback" not in result.output and not isinstance(result.exception, AssertionError)
        lines = [line for line in result.output.splitlines() if line.startswith("Error")]
        assert len(lines) == 1, result.output
        return result.output

    return run


def _grant(access, *extra: str) -> list[str]:
    return ["record", "grant", "0x" + "ab" * 32, DOCTOR, "--account", "TEST::1", "--contract", access.address, *extra]


def test_a_broken_checksum_is_refused_everywhere(medshare, access, stranger, tmp_path):
    before = access.rolesOf(stranger)
    for args in (
        ["record", "grant", "0x" + "ab" * 32, TYPO, "--days", "1", "--contract", access.address],
        ["members", "add", "doctor", TYPO, "--contract", access.address],
        ["keys", "show", TYPO, "--contract", access.address],
        ["record", "upload", __file__, "--patient", TYPO, "--name", "x", "--contract", access.address],
        ["deploy", "--admin", TYPO],
        ["keys", "show", "--contract", TYPO],
    ):
        assert "checksum" in medshare(*args, status=2)
    assert access.rolesOf(stranger) == before


@pytest.mark.parametrize("option,value", [("--days", "1e300"), ("--days", "inf"), ("--days", "nan"),
                                          ("--days", "-2"), ("--until", "1e23"), ("--until", "yesterday")])
def test_expiries_out_of_range_or_not_finite(medshare, access, option, value):
    output = medshare(*_grant(access, option, value), status=1)
    assert option in output


def test_a_contract_that_is_not_an_address(medshare):
    assert "'0xzz' is not an Ethereum address" in medshare("keys", "show", "--contract", "0xzz", status=2)


def test_an_unknown_network_names_the_choices(medshare, access):
    output = medshare("keys", "show", "--network", "bogus:net", "--contract", access.address, status=1)
    (line,) = output.splitlines()
    assert "'bogus:net'" in line and "ethereum:local:foundry" in line and "polygon:amoy:node" in line


def test_an_unknown_account(medshare, access):
    assert "no such Ape account" in medshare("keys", "show", "--account", "nobody", "--contract", access.address,
                                             status=1)
    assert "no such test account" in medshare("keys", "show", "--account", "TEST::x", "--contract", access.address,
                                              status=1)


def test_a_missing_passphrase_in_a_run_that_cannot_ask(medshare, access):
    output = medshare("keys", "publish", "--account", "TEST::4", "--contract", access.address, status=1,
                      env={"MEDSHARE_PASSPHRASE": ""})
    assert "set MEDSHARE_PASSPHRASE" in output


def test_an_unknown_ipfs_backend(medshare, access):
    output = medshare("record", "ls", "--account", "TEST::1", "--contract", access.address, status=1,
                      env={"MEDSHARE_IPFS_BACKEND": "bogus"})
    assert "MEDSHARE_IPFS_BACKEND must be one of embedded, kubo, not 'bogus'" in output


def test_both_or_neither_of_a_grant_and_a_file(medshare, access, tmp_path):
    rows = tmp_path / "grants.csv"
    rows.write_text(f"0x{'ab' * 32},{DOCTOR},1\n")
    assert "not both" in medshare(*_grant(access, "--csv", str(rows)), status=2)
    assert "give RECORD" in medshare("record", "revoke", "--contract", access.address, status=2)
    rows.write_text(f"0x{'ab' * 32},{DOCTOR},inf\n")
    output = medshare("record", "grant", "--csv", str(rows), "--account", "TEST::1", "--contract", access.address,
                      status=1)
    assert "row 1, column 'days'" in output


def test_help_texts_are_never_cut():
    def walk(command: click.Command, path: list[str]):
        yield path
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from walk(sub, path + [name])

    for path in walk(main, []):
        output = CliRunner().invoke(main, [*path, "--help"], terminal_width=80).output
        listing = output.partition("\nCommands:\n")[2]
        assert not any(line.rstrip().endswith("...") for line in listing.splitlines()), output
    assert "plaintext" in CliRunner().invoke(main, ["ipfs", "add", "--help"]).output


# -- reaching a node: the real commands, nothing connected yet ------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run(project, tmp_path, *command: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MEDSHARE_")}
    environment.update(MEDSHARE_HOME=str(tmp_path / "home"), **(env or {}))
    return subprocess.run([str(Path(sys.executable).parent / command[0]), *command[1:]], cwd=project.path,
                          env=environment, capture_output=True, text=True, timeout=300)


def test_an_rpc_endpoint_that_does_not_answer_starts_nothing(project, tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}"
    for command in (["ape", "run", "deploy", "--rpc", url], ["medshare", "deploy", "--rpc", url],
                    ["medshare", "keys", "show", "--rpc", url]):
        done = _run(project, tmp_path, *command)
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"no Ethereum node answers at {url}" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "home" / "deployments.json").exists()


def test_a_configured_network_that_does_not_answer(project, tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}"
    done = _run(project, tmp_path, "medshare", "deploy", "--network", "polygon:amoy:node", "--account", "nobody",
                env={"POLYGON_AMOY_RPC_URL": url})
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert url in done.stderr or "polygon:amoy:node" in done.stderr
    assert not (tmp_path / "home" / "deployments.json").exists()
