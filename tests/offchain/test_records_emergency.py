"""The owner's break-glass to-do list: live openings on its own records whose reader holds no key yet,
and nothing else (shared already, closed early, expired, another owner's record, a lost role)."""

from __future__ import annotations

import pytest

from offchain.chain.access import AccessClient
from offchain.crypto import Keystore
from offchain.ipfs import EmbeddedStore
from offchain.records import RecordIndex, RecordService
from offchain.records.emergency import pending_key_shares

PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def member(access, tmp_path):
    store = EmbeddedStore(tmp_path / "ipfs")
    services = {}

    def make(account):
        if account.address not in services:
            home = tmp_path / account.address
            home.mkdir()
            keystore = Keystore.create(home / "keystore.json", PASSPHRASE)
            access.publishEncryptionKey(keystore.suite().kem_id, keystore.public_key(), sender=account)
            services[account.address] = RecordService(AccessClient(access, account), store, keystore,
                                                      RecordIndex(home / "index.json"))
        return services[account.address]

    return make


def _record(service, patient, name: str, tmp_path) -> bytes:
    path = tmp_path / name
    path.write_bytes(name.encode() * 100)
    return service.upload(path, patient.address, name).record_bytes


def test_pending_key_shares_lists_only_the_owners_live_openings_without_a_key(
        member, access, admin, hospital, other_hospital, patient, medic, stranger, chain, tmp_path):
    owner, other, reader = member(hospital), member(other_hospital), member(medic)
    member(patient)
    first = _record(owner, patient, "first", tmp_path)
    second = _record(owner, patient, "second", tmp_path)
    elsewhere = _record(other, patient, "elsewhere", tmp_path)
    assert pending_key_shares(owner.client) == []

    for record_id in (first, second, elsewhere):
        reader.open_emergency_access(record_id, "unconscious, allergies unknown", 3600)
    pending = pending_key_shares(owner.client)
    assert [(entry.record_id, entry.reader) for entry in pending] == [(second, medic.address), (first, medic.address)]
    assert pending[0].version == 1 and pending[0].patient == patient.address
    assert pending[0].until == access.grantOf(second, medic)[2]
    assert [entry.record_id for entry in pending_key_shares(other.client)] == [elsewhere]

    owner.share(first, [medic.address])  # shared: off the list
    assert [entry.record_id for entry in pending_key_shares(owner.client)] == [second]
    access.closeEmergencyAccess(second, medic, sender=hospital)  # closed early: off the list
    assert pending_key_shares(owner.client) == []

    access.grantRole(access.EMERGENCY_ROLE(), stranger, sender=admin)
    member(stranger).open_emergency_access(elsewhere, "second responder", 3600)
    access.revokeRole(access.EMERGENCY_ROLE(), medic, sender=admin)  # a lost role: off the list
    assert [entry.reader for entry in pending_key_shares(other.client)] == [stranger.address]
    chain.mine(deltatime=3601)  # expired: off the list
    assert pending_key_shares(other.client) == []
