"""Readers with X25519 and hybrid post-quantum keys side by side in one record, through the workflow."""

import os

import pytest

from conftest import ONE_DAY
from offchain.chain.access import AccessClient
from offchain.crypto import KeySuite, Keystore, parse_wrapped_key
from offchain.ipfs import EmbeddedStore
from offchain.records import AccessRefused, RecordIndex, RecordService

PASSPHRASE = "side by side"


@pytest.fixture
def member(access, tmp_path):
    """``member(account, suite)``: that account's RecordService, its key of ``suite`` published (via the client)."""
    store = EmbeddedStore(tmp_path / "ipfs")
    services = {}

    def make(account, suite=KeySuite.X25519):
        if account.address not in services:
            home = tmp_path / account.address
            home.mkdir()
            keystore = Keystore.create(home / "keystore.json", PASSPHRASE, suite=suite)
            client = AccessClient(access, account)
            client.publish_encryption_key(keystore.public_key(), keystore.suite())
            services[account.address] = RecordService(client, store, keystore, RecordIndex(home / "index.json"))
        return services[account.address]

    return make


def test_hybrid_and_x25519_readers_in_one_record_then_rotation(member, hospital, patient, doctor, researcher,
                                                                tmp_path, chain):
    owner = member(hospital)
    member(patient, KeySuite.MLKEM768_X25519)
    hybrid, classic = member(doctor, KeySuite.MLKEM768_X25519), member(researcher)
    scan = tmp_path / "scan.bin"
    scan.write_bytes(os.urandom(300_000))
    record_id = owner.upload(scan, patient.address, "scan").record_bytes
    until = chain.pending_timestamp + ONE_DAY
    member(patient).grant(record_id, [doctor.address, researcher.address], until)  # with consent

    for service, suite in [(hybrid, KeySuite.MLKEM768_X25519), (classic, KeySuite.X25519),
                           (member(patient), KeySuite.MLKEM768_X25519), (owner, KeySuite.X25519)]:
        wrapped = service.client.shared_keys(record_id, service.client.address, 1)[0]
        assert parse_wrapped_key(wrapped).suite is suite and len(wrapped) == suite.wrapped_key_size
    for service in (hybrid, classic):
        out = tmp_path / f"{service.client.address}.bin"
        service.fetch(record_id, out)
        assert out.read_bytes() == scan.read_bytes()

    # The hybrid reader rotates to a new hybrid key, then the record rotates on a revocation:
    # the new version's key goes to the new key version.
    hybrid.keystore.rotate()
    assert hybrid.client.publish_encryption_key(hybrid.keystore.public_key(), hybrid.keystore.suite()) == 2
    rotated = owner.revoke(record_id, researcher.address, rotate=True)
    wrapped = hybrid.client.shared_keys(record_id, doctor.address, rotated.version)[0]
    header = parse_wrapped_key(wrapped)
    assert (header.suite, header.recipient_key_version) == (KeySuite.MLKEM768_X25519, 2)
    out = tmp_path / "v2.bin"
    hybrid.fetch(record_id, out)
    assert out.read_bytes() == scan.read_bytes()
    with pytest.raises(AccessRefused):
        classic.fetch(record_id, tmp_path / "revoked.bin")
