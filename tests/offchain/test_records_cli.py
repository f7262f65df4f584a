"""``medshare keys`` and ``medshare record`` on anvil, run in-process on the test session's connection."""

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import CLI_PASSPHRASE as PASSPHRASE

from offchain.cli import main


def test_keys_publish_then_upload_grant_fetch_ls_revoke(medshare, hospital, patient, doctor, researcher, tmp_path):
    for index in (1, 2, 3):  # hospital, doctor, patient
        assert "published key version 1" in medshare(index, "keys", "publish")
    assert "already published" in medshare(1, "keys", "publish")
    assert "key version 1 0x" in medshare(2, "keys", "show", patient.address)

    report = tmp_path / "diagnosis_report.json"
    report.write_bytes(b'{"diagnosis": "benign"}' * 1000)
    uploaded = medshare(1, "record", "upload", str(report), "--patient", patient.address, "--name", "diagnosis_report")
    record_id = uploaded.split("record ")[1].split()[0]
    listed = medshare(1, "record", "ls")
    assert f"{patient.address}/diagnosis_report  {record_id}  v1" in listed

    assert "until" in medshare(1, "record", "grant", f"{patient.address}/diagnosis_report", doctor.address, "--days", "1")
    assert "shared the key" in medshare(1, "record", "share", record_id, doctor.address)
    assert "may not read" in medshare(1, "record", "share", record_id, researcher.address, ok=False)
    out = tmp_path / "fetched.json"
    assert "version 1" in medshare(2, "record", "fetch", record_id, "-o", str(out))
    assert out.read_bytes() == report.read_bytes()

    assert "now version 2" in medshare(1, "record", "revoke", record_id, doctor.address, "--rotate")
    refused = medshare(2, "record", "fetch", record_id, "-o", str(tmp_path / "again"), ok=False)
    assert "Error: " in refused and "no grant" in refused
    assert not (tmp_path / "again").exists()
    assert f"{record_id}  v2" in medshare(1, "record", "ls", "--rebuild")
    assert "only the record's owner" in medshare(2, "record", "rotate", record_id, ok=False)
    assert "now version 3" in medshare(1, "record", "rotate", f"{patient.address}/diagnosis_report")
    assert f"{record_id}  v3" in medshare(1, "record", "ls")


def test_cli_refusals_are_one_clear_line(medshare, access, doctor, tmp_path):
    medshare(1, "keys", "publish")
    medshare(2, "keys", "publish")
    bad_address = medshare(1, "record", "upload", __file__, "--patient", "0x1234", "--name", "x", ok=False)
    assert "is not an Ethereum address" in bad_address
    unknown = medshare(2, "record", "fetch", "0x" + "00" * 32, "-o", str(tmp_path / "x"), ok=False)
    assert "no record 0x00" in unknown and "Traceback" not in unknown
    not_a_record = medshare(2, "record", "fetch", "hello", "-o", str(tmp_path / "x"), ok=False)
    assert "is not a record id" in not_a_record
    both = medshare(1, "record", "grant", "0x" + "00" * 32, doctor.address, ok=False)
    assert "exactly one of --days and --until" in both
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the data folder should be")
    unusable = CliRunner().invoke(
        main, ["keys", "publish", "--account", "TEST::4", "--contract", access.address],
        env={"MEDSHARE_HOME": str(blocked), "MEDSHARE_PASSPHRASE": PASSPHRASE},
    )
    assert unusable.exit_code == 1 and "Error: " in unusable.output and "not-a-folder" in unusable.output
    assert "Traceback" not in unusable.output
    env = {"MEDSHARE_PASSPHRASE": "wrong", "MEDSHARE_HOME": os.environ["MEDSHARE_HOME"]}
    no_contract = CliRunner().invoke(main, ["keys", "show", "--account", "TEST::1", "--contract", "0x" + "11" * 20])
    assert no_contract.exit_code == 1 and "no contract code" in no_contract.output
    wrong = CliRunner().invoke(main, ["keys", "publish", "--account", "TEST::1", "--contract", access.address], env=env)
    assert wrong.exit_code == 1 and "wrong passphrase" in wrong.output


def upload_and_grant(medshare, patient, doctor, tmp_path) -> tuple[str, str, bytes]:
    """Keys for hospital, doctor and patient; a record of ``patient`` granted to ``doctor``: (record id, CID, bytes)."""
    for index in (1, 2, 3):
        medshare(index, "keys", "publish")
    report = tmp_path / "scan.bin"
    report.write_bytes(os.urandom(50_000))
    uploaded = medshare(1, "record", "upload", str(report), "--patient", patient.address, "--name", "scan")
    record_id, cid = uploaded.split("record ")[1].split()[0], uploaded.split("cid ")[1].split()[0]
    medshare(1, "record", "grant", record_id, doctor.address, "--days", "1")
    return record_id, cid, report.read_bytes()


def test_a_fetch_that_would_fail_is_refused_before_anything_is_sent(medshare, patient, doctor, tmp_path):
    """Failed reads must not fill the audit trail: every local check runs before logAccess."""
    from offchain.ipfs import CID, EmbeddedStore

    record_id, cid, data = upload_and_grant(medshare, patient, doctor, tmp_path)
    store = EmbeddedStore(tmp_path / "home" / "ipfs")
    nonce = doctor.nonce

    def refused(output: Path, *more: str) -> str:
        said = medshare(2, "record", "fetch", record_id, "-o", str(output), *more, ok=False)
        assert said.startswith("Error: ") and said.count("\n") == 1 and "Traceback" not in said
        assert doctor.nonce == nonce, f"a refused fetch sent a transaction: {said}"
        return said

    assert "output folder" in refused(tmp_path / "no-such-folder" / "scan.bin")
    assert "does not exist" in refused(tmp_path / "no-such-folder" / "scan.bin")
    existing = tmp_path / "existing.bin"
    existing.write_bytes(b"keep me")
    assert "already exists; use --force" in refused(existing)
    assert existing.read_bytes() == b"keep me"

    assert "version 1" in medshare(2, "record", "fetch", record_id, "-o", str(existing), "--force")
    assert existing.read_bytes() == data
    assert doctor.nonce == nonce + 1  # the one read that succeeded is the one logged
    nonce = doctor.nonce

    location = store.blocks.locate(CID.parse(cid))
    with location.path.open("r+b") as pack:
        pack.seek(location.offset + 100)
        byte = pack.read(1)
        pack.seek(location.offset + 100)
        pack.write(bytes([byte[0] ^ 1]))
    assert "is corrupt" in refused(tmp_path / "corrupt.bin")
    store.unpin(CID.parse(cid))
    store.gc()
    assert "is not in the store" in refused(tmp_path / "missing.bin")
    assert not list(tmp_path.glob("*.part")) and not (tmp_path / "missing.bin").exists()


def test_keys_publish_checks_the_chain_before_making_a_keystore(medshare, access, doctor, stranger, tmp_path):
    medshare(2, "keys", "publish")
    elsewhere = tmp_path / "another-home"
    result = CliRunner().invoke(
        main, ["keys", "publish", "--account", "TEST::2", "--contract", access.address],
        env={"MEDSHARE_HOME": str(elsewhere), "MEDSHARE_PASSPHRASE": PASSPHRASE},
    )
    assert result.exit_code == 1 and "already holds key version 1" in result.output, result.output
    assert "restore the keystore" in result.output
    assert not (elsewhere / "keys").exists() or not list((elsewhere / "keys").iterdir())
    stranger = medshare(9, "keys", "publish", ok=False)
    assert "holds no role" in stranger
    keys = tmp_path / "home" / "keys"
    assert sorted(path.name for path in keys.iterdir()) == [f"{doctor.address.lower()}.json"]


def test_keys_rotate_publishes_a_new_key_and_old_shares_still_open(medshare, patient, doctor, tmp_path):
    from offchain.crypto import Keystore

    record_id, _, data = upload_and_grant(medshare, patient, doctor, tmp_path)
    assert "published key version 2" in medshare(2, "keys", "rotate")
    assert "key version 2 0x" in medshare(2, "keys", "show")
    keystore = Keystore.open(tmp_path / "home" / "keys" / f"{doctor.address.lower()}.json", PASSPHRASE)
    assert keystore.versions == (1, 2)
    assert f"key version 2 0x{keystore.public_key(2).hex()}" in medshare(2, "keys", "show")
    first = tmp_path / "first.bin"
    medshare(2, "record", "fetch", record_id, "-o", str(first))  # its key was wrapped for key version 1
    assert first.read_bytes() == data
    medshare(1, "record", "share", record_id, doctor.address)  # now wrapped for version 2
    second = tmp_path / "second.bin"
    medshare(2, "record", "fetch", record_id, "-o", str(second))
    assert second.read_bytes() == data
    assert "already published" in medshare(2, "keys", "publish")
    no_keystore = medshare(4, "keys", "rotate", ok=False)
    assert "no keystore" in no_keystore and "medshare keys publish" in no_keystore


@pytest.mark.parametrize(
    "command",
    [["record", "ls"], ["record", "fetch", "0x" + "00" * 32, "-o", "out"], ["keys", "show"], ["keys", "publish"],
     ["ipfs", "pin", "ls"], ["ipfs", "add", "-"]],
    ids=lambda command: "-".join(command[:2]),
)
def test_a_bad_ipfs_backend_is_one_line_under_every_command(command, tmp_path):
    result = CliRunner().invoke(
        main, command, input=b"x",
        env={"MEDSHARE_IPFS_BACKEND": "bogus", "MEDSHARE_HOME": str(tmp_path), "MEDSHARE_PASSPHRASE": PASSPHRASE},
    )
    assert result.exit_code == 2, result.output  # a bad setting is bad input
    assert result.output == "Error: MEDSHARE_IPFS_BACKEND must be one of embedded, kubo, not 'bogus'\n"
    assert list(tmp_path.iterdir()) == []


def test_a_compromised_key_is_rotated_while_paused_but_a_first_key_waits(medshare, access, guardian, doctor):
    assert "published key version 1" in medshare(2, "keys", "publish")
    access.pause(sender=guardian)
    assert "published key version 2" in medshare(2, "keys", "rotate")
    first = medshare(4, "keys", "publish", ok=False)
    assert "paused" in first and "first key" in first
    access.unpause(sender=guardian)
    assert "published key version 1" in medshare(4, "keys", "publish")
