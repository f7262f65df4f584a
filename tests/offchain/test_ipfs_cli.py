"""`medshare ipfs`: CIDs alone on stdout, binary-safe cat, clear errors with non-zero exits."""

import os
import random
import shutil
import socket
import subprocess

import pytest
from click.testing import CliRunner

from offchain.cli import main

CHUNK = 262_144


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return {"MEDSHARE_HOME": str(tmp_path / "home"), "MEDSHARE_IPFS_BACKEND": "embedded"}


@pytest.fixture
def invoke(env):
    runner = CliRunner(mix_stderr=False)

    def run(*args: str, input: bytes | None = None):
        return runner.invoke(main, list(args), env=env, input=input, catch_exceptions=False)

    return run


@pytest.fixture
def binary_file(tmp_path):
    path = tmp_path / "scan.bin"
    path.write_bytes(random.Random(3).randbytes(CHUNK + 10) + b"\r\n\x00\xff")
    return path


def test_add_prints_the_cid_alone_and_cat_writes_the_bytes_back(invoke, binary_file):
    added = invoke("ipfs", "add", str(binary_file))
    assert added.exit_code == 0
    cid = added.stdout.strip()
    assert added.stdout == cid + "\n" and cid.startswith("bafy")
    shown = invoke("ipfs", "cat", cid)
    assert shown.exit_code == 0
    assert shown.stdout_bytes == binary_file.read_bytes()


def test_version_0_and_only_hash(invoke, binary_file):
    v0 = invoke("ipfs", "add", "--cid-version", "0", "--only-hash", str(binary_file)).stdout.strip()
    assert v0.startswith("Qm")
    missing = invoke("ipfs", "cat", v0)
    assert missing.exit_code == 1
    assert f"block {v0} is not in the store" in missing.stderr
    assert invoke("ipfs", "add", "--cid-version", "0", str(binary_file)).stdout.strip() == v0


def test_add_reads_standard_input_for_a_dash(invoke):
    assert invoke("ipfs", "add", "-", input=b"").stdout.strip() == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def test_pin_add_rm_ls(invoke, binary_file):
    cid = invoke("ipfs", "add", str(binary_file)).stdout.strip()
    assert invoke("ipfs", "pin", "ls").stdout.split() == [cid]
    assert invoke("ipfs", "pin", "rm", cid).stdout.strip() == f"unpinned {cid}"
    assert invoke("ipfs", "pin", "ls").stdout == ""
    again = invoke("ipfs", "pin", "rm", cid)
    assert again.exit_code == 1 and f"{cid} is not pinned" in again.stderr
    assert invoke("ipfs", "pin", "add", cid).stdout.strip() == f"pinned {cid}"
    assert invoke("ipfs", "pin", "ls").stdout.split() == [cid]


@pytest.mark.parametrize(
    "args, message",
    [
        (["ipfs", "add", "/nonexistent/record.bin"], "No such file or directory"),
        (["ipfs", "add", "--cid-version", "2", "-"], "'2' is not one of '0', '1'"),
        (["ipfs", "cat", "not-a-cid"], "is not a CID"),
        (["ipfs", "cat", "QmTooShort"], "46 base58 characters"),
        (["ipfs", "pin", "add", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"], "is not in the store"),
    ],
)
def test_bad_input_is_a_clear_error_and_a_non_zero_exit(invoke, args, message):
    result = invoke(*args)
    assert result.exit_code != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_directory_is_refused(invoke, tmp_path):
    result = invoke("ipfs", "add", str(tmp_path))
    assert result.exit_code == 2 and "Is a directory" in result.stderr


def test_an_unknown_backend_is_a_clear_error(invoke, env):
    env["MEDSHARE_IPFS_BACKEND"] = "filecoin"
    result = invoke("ipfs", "pin", "ls")
    assert result.exit_code == 2 and "MEDSHARE_IPFS_BACKEND must be one of embedded, kubo" in result.stderr


def test_an_unreachable_kubo_node_is_a_clear_error(invoke, env):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env.update(MEDSHARE_IPFS_BACKEND="kubo", IPFS_API=f"/ip4/127.0.0.1/tcp/{port}/http")
    result = invoke("ipfs", "pin", "ls")
    assert result.exit_code == 1
    assert f"Kubo at /ip4/127.0.0.1/tcp/{port}/http" in result.stderr


def test_a_malformed_kubo_address_is_a_clear_error(invoke, env):
    env.update(MEDSHARE_IPFS_BACKEND="kubo", IPFS_API="http://127.0.0.1:5001")
    result = invoke("ipfs", "pin", "ls")
    assert result.exit_code == 1
    assert "Kubo at http://127.0.0.1:5001: Unsupported Multiaddr pattern" in result.stderr


@pytest.mark.parametrize("command", [["ipfs", "add", "-"], ["ipfs", "pin", "ls"]], ids=" ".join)
def test_an_unusable_data_folder_is_a_clear_error(invoke, env, tmp_path, command):
    home = tmp_path / "a-file"
    home.write_text("not a folder")
    env["MEDSHARE_HOME"] = str(home)
    result = invoke(*command, input=b"x")
    assert result.exit_code == 1
    assert result.stderr == f"Error: {home / 'ipfs'}: Not a directory\n"


def test_a_damaged_index_is_a_clear_error(invoke, env, binary_file):
    cid = invoke("ipfs", "add", str(binary_file)).stdout.strip()
    blocks = os.path.join(env["MEDSHARE_HOME"], "ipfs", "blocks")
    for name in ("index.sqlite-wal", "index.sqlite-shm"):
        if os.path.exists(os.path.join(blocks, name)):
            os.remove(os.path.join(blocks, name))
    with open(os.path.join(blocks, "index.sqlite"), "wb") as index:
        index.write(b"not a database" * 100)
    result = invoke("ipfs", "cat", cid)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == f"Error: block index {os.path.join(blocks, 'index.sqlite')}: file is not a database\n"


def test_the_console_script_streams_binary_content(env, binary_file):
    medshare = shutil.which("medshare")
    assert medshare, "the medshare console script is not installed"
    full_env = {**os.environ, **env}
    cid = subprocess.run([medshare, "ipfs", "add", str(binary_file)], env=full_env, capture_output=True, check=True).stdout
    shown = subprocess.run([medshare, "ipfs", "cat", cid.decode().strip()], env=full_env, capture_output=True, check=True)
    assert shown.stdout == binary_file.read_bytes()


def test_cat_into_a_pipe_closed_early_stops_quietly(env, tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(random.Random(4).randbytes(8 * CHUNK))
    full_env = {**os.environ, **env}
    cid = subprocess.run(["medshare", "ipfs", "add", str(big)], env=full_env, capture_output=True, check=True).stdout
    reader = subprocess.run(
        f"medshare ipfs cat {cid.decode().strip()} | head -c 10 >/dev/null; echo ${{PIPESTATUS[0]}}",
        shell=True, executable="/bin/bash", env=full_env, capture_output=True, text=True,
    )
    assert reader.stdout.strip() == "141"
    assert reader.stderr == ""
