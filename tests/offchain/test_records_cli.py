"""``medshare keys`` and ``medshare record`` on anvil, run in-process on the test session's connection."""

import os

import pytest
from click.testing import CliRunner

from offchain.cli import main

PASSPHRASE = "a passphrase for the tests"


@pytest.fixture
def medshare(access, tmp_path, monkeypatch):
    """``medshare(account_index, *args)``: run the CLI as that test account against ``access``."""
    monkeypatch.setenv("MEDSHARE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDSHARE_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("MEDSHARE_DEPLOYMENTS", raising=False)

    def run(account_index: int, *args: str, ok: bool = True):
        command, sub, *rest = args
        full = [command, sub, "--account", f"TEST::{account_index}", "--contract", access.address, *rest]
        result = CliRunner().invoke(main, full)
        assert (result.exit_code == 0) == ok, result.output
        return result.output

    return run


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
