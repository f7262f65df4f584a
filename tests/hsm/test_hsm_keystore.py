"""A keystore sealed by an AES key inside the SoftHSM2 token: it opens a record; with the token removed or
the PIN wrong it cannot, and the failed read leaves no trace; converting a passphrase keystore keeps every
key, both ways."""

import json
import os

import pytest
from click.testing import CliRunner
from hsm.softhsm import REMOVABLE_LABEL

from offchain.chain.access import AccessClient
from offchain.cli import main
from offchain.crypto import Keystore, KeystoreError
from offchain.hsm import HsmError, TokenSealer, TokenSettings, open_token
from offchain.hsm.token import PIN_ENV
from offchain.ipfs import EmbeddedStore
from offchain.records import RecordIndex, RecordService

ONE_DAY = 24 * 3600


def _private_keys(keystore: Keystore) -> dict[int, bytes]:
    return {version: keystore.recipient_key(version).private_bytes_raw() for version in keystore.versions}


def _reads(access, record_id: bytes) -> int:
    return len(list(access.AccessLogged.range(0, None, search_topics={"record": record_id})))


def _upload_and_grant(medshare, patient, doctor, tmp_path) -> tuple[str, bytes]:
    report = tmp_path / "scan.bin"
    report.write_bytes(os.urandom(50_000))
    uploaded = medshare(1, "record", "upload", str(report), "--patient", patient.address, "--name", "scan")
    record_id = uploaded.split("record ")[1].split()[0]
    medshare(1, "record", "grant", record_id, doctor.address, "--days", "1")
    return record_id, report.read_bytes()


def test_a_keystore_sealed_by_the_token_opens_a_record_and_a_wrong_pin_reads_nothing(
        medshare, access, patient, doctor, tmp_path, monkeypatch, fresh_login, softhsm):
    medshare(1, "keys", "publish")
    assert "sealed by the HSM token" in medshare(2, "keys", "create", "--hsm")
    passphrase = os.environ["MEDSHARE_PASSPHRASE"]  # the hospital's
    monkeypatch.setenv("MEDSHARE_PASSPHRASE", "not the one: a token-sealed keystore needs none")
    assert "published key version 1" in medshare(2, "keys", "publish")
    monkeypatch.setenv("MEDSHARE_PASSPHRASE", passphrase)
    path = tmp_path / "home" / "keys" / f"{doctor.address.lower()}.json"
    document = json.loads(path.read_text())
    assert document["format_version"] == 2 and "kdf" not in document
    assert document["token_key"]["name"] == "pkcs11-aes-256-gcm" and document["token_key"]["label"]
    with pytest.raises(KeystoreError, match="sealed by a key inside an HSM token"):
        Keystore.open(path, "any passphrase")

    record_id, content = _upload_and_grant(medshare, patient, doctor, tmp_path)
    out = tmp_path / "read.bin"
    assert "version 1" in medshare(2, "record", "fetch", record_id, "-o", str(out))
    assert out.read_bytes() == content and _reads(access, bytes.fromhex(record_id[2:])) == 1

    from offchain.hsm import close_tokens

    close_tokens()
    monkeypatch.setenv(PIN_ENV, "00000000")
    again = tmp_path / "again.bin"
    refused = CliRunner().invoke(main, ["record", "fetch", record_id, "-o", str(again), "--account", "TEST::2",
                                        "--contract", access.address])
    assert refused.exit_code == 2, refused.output
    assert refused.output.strip() == f"Error: wrong PIN for token 'medshare-test' (from {PIN_ENV})"
    assert "00000000" not in refused.output and softhsm.pin not in refused.output
    assert not again.exists() and _reads(access, bytes.fromhex(record_id[2:])) == 1


def test_after_the_token_is_removed_the_keystore_opens_nothing(
        access, hospital, doctor, patient, tmp_path, chain, softhsm):
    token = open_token(TokenSettings.from_env({**os.environ, "MEDSHARE_HSM_TOKEN": REMOVABLE_LABEL}))
    store = EmbeddedStore(tmp_path / "ipfs")
    owner_keystore = Keystore.create(tmp_path / "owner.json", "owner's passphrase")
    reader_keystore = Keystore.create(tmp_path / "reader.json", TokenSealer(token, create=True))
    for account, keystore in ((hospital, owner_keystore), (doctor, reader_keystore)):
        access.publishEncryptionKey(keystore.suite().kem_id, keystore.public_key(), sender=account)
    owner = RecordService(AccessClient(access, hospital), store, owner_keystore, RecordIndex(tmp_path / "o.json"))
    reader = RecordService(AccessClient(access, doctor), store, reader_keystore, RecordIndex(tmp_path / "r.json"))
    scan = tmp_path / "scan.bin"
    scan.write_bytes(os.urandom(70_000))
    record_id = owner.upload(scan, patient.address, "scan").record_bytes
    owner.grant(record_id, [doctor.address], chain.pending_timestamp + ONE_DAY)
    reader.fetch(record_id, tmp_path / "read.bin")
    assert (tmp_path / "read.bin").read_bytes() == scan.read_bytes()

    softhsm.delete_token(REMOVABLE_LABEL)
    with pytest.raises(HsmError, match="is no longer available"):
        reader.fetch(record_id, tmp_path / "after.bin")
    assert not (tmp_path / "after.bin").exists() and _reads(access, record_id) == 1
    with pytest.raises(HsmError):  # opened anew, too
        Keystore.open(tmp_path / "reader.json", TokenSealer(token))


def test_converting_a_passphrase_keystore_keeps_every_key_both_ways(
        medshare, access, patient, doctor, tmp_path, monkeypatch):
    medshare(1, "keys", "publish")
    medshare(2, "keys", "publish")
    medshare(2, "keys", "rotate")
    path = tmp_path / "home" / "keys" / f"{doctor.address.lower()}.json"
    passphrase = os.environ["MEDSHARE_PASSPHRASE"]
    before = _private_keys(Keystore.open(path, passphrase))
    assert sorted(before) == [1, 2]
    record_id, content = _upload_and_grant(medshare, patient, doctor, tmp_path)

    assert "now sealed by key 'medshare-keystore'" in _hsm_command("seal-keystore").output
    sealed = Keystore.open(path, TokenSealer(open_token()))
    assert sealed.token_sealed and _private_keys(sealed) == before
    already = _hsm_command("seal-keystore")
    assert already.exit_code == 2 and "already sealed" in already.output
    monkeypatch.setenv("MEDSHARE_PASSPHRASE", "wrong: the token opens it now")
    medshare(2, "record", "fetch", record_id, "-o", str(tmp_path / "sealed.bin"))
    assert (tmp_path / "sealed.bin").read_bytes() == content
    assert "published key version 3" in medshare(2, "keys", "rotate")  # a rotation saves through the token too
    rotated = Keystore.open(path, TokenSealer(open_token()))
    assert rotated.versions == (1, 2, 3) and json.loads(path.read_text())["format_version"] == 2
    after = _private_keys(rotated)
    assert {version: after[version] for version in before} == before

    monkeypatch.setenv("MEDSHARE_PASSPHRASE", passphrase)
    assert "now sealed by a passphrase" in _hsm_command("unseal-keystore").output
    assert _private_keys(Keystore.open(path, passphrase)) == after
    medshare(2, "record", "fetch", record_id, "-o", str(tmp_path / "unsealed.bin"))
    assert (tmp_path / "unsealed.bin").read_bytes() == content


def _hsm_command(name: str, account: str = "TEST::2"):
    return CliRunner().invoke(main, ["keys", "hsm", name, "--account", account])
