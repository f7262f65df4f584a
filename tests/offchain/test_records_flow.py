"""The seed's workflow end to end on anvil, the embedded store and real keystores.

One embedded store stands for the IPFS network every member reads from; each
member has its own keystore and index.
"""

import os

import pytest

from conftest import ONE_DAY
from offchain.chain.access import AccessClient, record_id_for
from offchain.chain.contract import ChainRefusal
from offchain.crypto import IntegrityError, Keystore, decrypt_stream, encrypt_stream, new_data_key, wrap_data_key
from offchain.ipfs import CID, CorruptBlock, EmbeddedStore
from offchain.ipfs.store import open_cat
from offchain.records import AccessRefused, RecordError, RecordIndex, RecordIndexError, RecordService
from offchain.records.service import ZERO_RECORD_ID, stream_record_id

PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def store(tmp_path):
    return EmbeddedStore(tmp_path / "ipfs")


@pytest.fixture
def member(access, store, tmp_path):
    """``member(account)``: that account's RecordService, its key created and published on chain."""
    services = {}

    def make(account, *, publish=True):
        if account.address not in services:
            home = tmp_path / account.address
            home.mkdir()
            keystore = Keystore.create(home / "keystore.json", PASSPHRASE) if publish else None
            if keystore:
                access.publishEncryptionKey(keystore.suite().kem_id, keystore.public_key(), sender=account)
            index = RecordIndex(home / "index.json")
            services[account.address] = RecordService(AccessClient(access, account), store, keystore, index)
        return services[account.address]

    return make


@pytest.fixture
def scan(tmp_path):
    """A 1 MiB + 1 byte file: more than one stream segment and more than one IPFS chunk."""
    path = tmp_path / "MRI_scan.bin"
    path.write_bytes(os.urandom((1 << 20) + 1))
    return path


def test_upload_grant_fetch_round_trip(member, access, hospital, patient, doctor, scan, tmp_path, chain):
    owner = member(hospital)
    member(patient)
    entry = owner.upload(scan, patient.address, "MRI_scan")
    record_id = entry.record_bytes
    assert access.recordOf(record_id) == (hospital.address, patient.address, 1, False)
    assert owner.index.get(patient.address, "MRI_scan") == entry

    reader = member(doctor)
    owner.grant(record_id, [doctor.address], chain.pending_timestamp + ONE_DAY)
    out = tmp_path / "out" / "scan.bin"
    out.parent.mkdir()
    fetched = reader.fetch(record_id, out)
    assert out.read_bytes() == scan.read_bytes()
    assert (fetched.version, fetched.size) == (1, scan.stat().st_size)
    reads = list(access.AccessLogged.range(0, None, search_topics={"record": record_id}))
    assert [(log.reader, log.version) for log in reads] == [(doctor.address, 1)]

    # The patient got the key at upload and may share it on; the patient's own grant carries consent.
    assert member(patient).client.shared_keys(record_id, patient.address, 1)
    assert record_id == record_id_for(hospital.address, CID.parse(entry.cid))


def test_patient_grants_a_researcher_who_then_reads(member, hospital, patient, researcher, scan, tmp_path, chain):
    member(patient)  # publishes the patient's key, so the upload shares the data key with the patient
    entry = member(hospital).upload(scan, patient.address, "MRI_scan")
    member(researcher)
    member(patient).grant(entry.record_bytes, [researcher.address], chain.pending_timestamp + ONE_DAY)
    member(researcher).fetch(entry.record_bytes, tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == scan.read_bytes()


def test_owner_cannot_grant_a_researcher_without_consent(member, access, hospital, patient, researcher, scan, chain):
    owner = member(hospital)
    member(researcher), member(patient)
    record_id = owner.upload(scan, patient.address, "MRI_scan").record_bytes
    until = chain.pending_timestamp + ONE_DAY
    with pytest.raises(AccessRefused, match="needs the patient's consent"):
        owner.grant(record_id, [researcher.address], until)
    assert access.grantOf(record_id, researcher) == (0, 0, 0)
    access.setConsent(record_id, researcher, until, sender=patient)
    owner.grant(record_id, [researcher.address], until)
    assert access.checkAccess(researcher, record_id)


def test_break_glass_reader_gets_the_key_from_the_owner_and_reads(
    member, access, hospital, patient, medic, stranger, scan, tmp_path
):
    owner, emergency = member(hospital), member(medic)
    record_id = owner.upload(scan, patient.address, "MRI_scan").record_bytes
    with pytest.raises(AccessRefused, match="may not read"):
        owner.share(record_id, [medic.address])
    access.openEmergencyAccess(record_id, b"\x01" * 32, 3600, sender=medic)
    owner.share(record_id, [medic.address])
    emergency.fetch(record_id, tmp_path / "er.bin")
    assert (tmp_path / "er.bin").read_bytes() == scan.read_bytes()
    with pytest.raises(AccessRefused, match="neither the owner"):
        member(stranger, publish=False).share(record_id, [medic.address])


def test_ungranted_revoked_and_expired_readers_are_refused(member, hospital, patient, doctor, scan, tmp_path, chain):
    owner = member(hospital)
    record_id = owner.upload(scan, patient.address, "MRI_scan").record_bytes
    out = tmp_path / "never"

    with pytest.raises(AccessRefused, match="no grant"):
        member(doctor).fetch(record_id, out)

    expiry = chain.pending_timestamp + ONE_DAY
    owner.grant(record_id, [doctor.address], expiry)
    owner.revoke(record_id, doctor.address)
    with pytest.raises(AccessRefused, match="no grant"):
        member(doctor).fetch(record_id, out)

    owner.grant(record_id, [doctor.address], chain.pending_timestamp + ONE_DAY)
    chain.mine(timestamp=chain.pending_timestamp + ONE_DAY + 60)
    with pytest.raises(AccessRefused, match="expired"):
        member(doctor).fetch(record_id, out)
    assert not out.exists()


def test_a_stranger_cannot_get_a_key_or_read(member, access, hospital, patient, stranger, scan, tmp_path, chain):
    owner = member(hospital)
    record_id = owner.upload(scan, patient.address, "MRI_scan").record_bytes
    with pytest.raises(AccessRefused, match="does not hold the doctor or researcher role"):
        owner.grant(record_id, [stranger.address], chain.pending_timestamp + ONE_DAY)
    outsider = RecordService(AccessClient(access, stranger), owner.store,
                             Keystore.create(tmp_path / "stranger.json", PASSPHRASE), RecordIndex(tmp_path / "i.json"))
    with pytest.raises(AccessRefused, match="no grant"):
        outsider.fetch(record_id, tmp_path / "loot")
    assert not (tmp_path / "loot").exists()


def test_tampered_ciphertext_fails_and_leaves_nothing(member, access, hospital, patient, doctor, scan, tmp_path, chain):
    """An owner-side flipped bit (so the CID is right but the stream is not) fails authentication."""
    owner, reader = member(hospital), member(doctor)
    data_key = new_data_key()
    with scan.open("rb") as source, owner.store.writer() as sink:
        encrypt_stream(source, sink, data_key, ZERO_RECORD_ID, 1)
    ciphertext = bytearray(b"".join(owner.store.iter_cat(sink.cid)))
    ciphertext[len(ciphertext) // 2] ^= 0x01
    tampered = tmp_path / "tampered"
    tampered.write_bytes(ciphertext)
    with tampered.open("rb") as file:
        cid = owner.store.add(file)
    record_id = record_id_for(hospital.address, cid)
    keys = [owner.client.encryption_key(who.address) for who in (hospital, doctor)]
    shares = [(key.member, wrap_data_key(data_key, key.public_key, key.version, record_id, 1)) for key in keys]
    owner.client.register_record(cid, patient.address, shares[:1])
    owner.client.grant(record_id, [doctor.address], chain.pending_timestamp + ONE_DAY, 1, shares[1:])

    out = tmp_path / "report.bin"
    out.write_bytes(b"previous contents")
    with pytest.raises(IntegrityError):
        reader.fetch(record_id, out, overwrite=True)  # even where replacing is allowed, a failed read replaces nothing
    assert out.read_bytes() == b"previous contents"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report")] == []


def test_corrupt_block_on_disk_is_named_and_leaves_nothing(member, hospital, patient, doctor, scan, tmp_path, chain):
    owner, reader = member(hospital), member(doctor)
    entry = owner.upload(scan, patient.address, "MRI_scan")
    owner.grant(entry.record_bytes, [doctor.address], chain.pending_timestamp + ONE_DAY)
    root = owner.store.blocks.locate(CID.parse(entry.cid))
    with open(root.path, "r+b") as pack:
        pack.seek(root.offset + root.length // 2)
        byte = pack.read(1)[0]
        pack.seek(-1, os.SEEK_CUR)
        pack.write(bytes([byte ^ 0xFF]))
    out = tmp_path / "out.bin"
    with pytest.raises(CorruptBlock, match=entry.cid):
        reader.fetch(entry.record_bytes, out)
    assert not out.exists()


def test_revoke_with_rotation_locks_out_the_revoked_reader(
    member, access, hospital, patient, doctor, researcher, scan, tmp_path, chain
):
    owner = member(hospital)
    member(doctor), member(researcher), member(patient)
    entry = owner.upload(scan, patient.address, "MRI_scan")
    record_id = entry.record_bytes
    until = chain.pending_timestamp + ONE_DAY
    owner.grant(record_id, [doctor.address], until)
    member(patient).grant(record_id, [researcher.address], until)
    old_wrapped = member(doctor).client.shared_keys(record_id, doctor.address, 1)[0]
    old_key = member(doctor).keystore.unwrap_data_key(old_wrapped, record_id, 1)

    rotated = owner.revoke(record_id, doctor.address, rotate=True)
    assert rotated.version == 2 and str(rotated.cid) != entry.cid
    assert owner.index.find(record_id).version == 2
    assert CID.parse(entry.cid) not in owner.store.pins()

    # Those who keep access read the new version; the owner can rotate again later.
    member(researcher).fetch(record_id, tmp_path / "r.bin")
    assert (tmp_path / "r.bin").read_bytes() == scan.read_bytes()
    assert owner.client.shared_keys(record_id, hospital.address, 2)
    # The revoked doctor: refused on chain, no key for version 2, and the old key opens nothing new.
    with pytest.raises(AccessRefused):
        member(doctor).fetch(record_id, tmp_path / "d.bin")
    assert member(doctor).client.shared_keys(record_id, doctor.address, 2) == []
    with open_cat(owner.store, rotated.cid) as source, pytest.raises(IntegrityError):
        decrypt_stream(source, open(os.devnull, "wb"), old_key, stream_record_id(record_id, 2), 2)


def test_bad_inputs_are_refused_and_change_nothing(member, access, hospital, patient, doctor, stranger, scan, tmp_path, chain):
    owner = member(hospital)
    member(doctor, publish=False)
    with pytest.raises(RecordError, match="not a readable file"):
        owner.upload(tmp_path / "missing", patient.address, "x")
    with pytest.raises(RecordIndexError, match="record name"):
        owner.upload(scan, patient.address, "../etc/passwd")
    with pytest.raises(AccessRefused, match="patient role"):
        owner.upload(scan, stranger.address, "scan")
    with pytest.raises(AccessRefused, match="data-owner role"):
        member(patient).upload(scan, patient.address, "scan")
    assert owner.store.pins() == []

    entry = owner.upload(scan, patient.address, "scan")
    with pytest.raises(RecordError, match="already has a record named 'scan'"):
        owner.upload(scan, patient.address, "scan")
    record_id = entry.record_bytes
    with pytest.raises(RecordError, match="not in the future"):
        owner.grant(record_id, [doctor.address], chain.pending_timestamp - 1)
    with pytest.raises(RecordError, match="published no encryption key"):
        owner.grant(record_id, [doctor.address], chain.pending_timestamp + ONE_DAY)
    assert not access.checkAccess(doctor, record_id)
    with pytest.raises(RecordError, match="no record 0x00"):
        owner.grant(bytes(32), [doctor.address], chain.pending_timestamp + ONE_DAY)
    with pytest.raises(RecordError, match="holds no grant"):
        owner.revoke(record_id, doctor.address)
    with pytest.raises(RecordError, match="is a directory"):
        owner.fetch(record_id, tmp_path)


def test_refused_registration_unpins_the_upload(member, access, hospital, patient, guardian, scan):
    owner = member(hospital)
    access.pause(sender=guardian)
    with pytest.raises(ChainRefusal, match="EnforcedPause"):
        owner.upload(scan, patient.address, "scan")
    assert owner.store.pins() == []
    assert owner.index.entries() == []


def test_index_is_rebuilt_from_chain_events(member, hospital, patient, other_patient, scan, tmp_path, chain, doctor):
    owner = member(hospital)
    member(other_patient)
    first = owner.upload(scan, patient.address, "MRI_scan")
    second = owner.upload(scan, other_patient.address, "diagnosis_report")
    owner.grant(first.record_bytes, [member(doctor).client.address], chain.pending_timestamp + ONE_DAY)
    owner.revoke(first.record_bytes, doctor.address, rotate=True)
    before = owner.index.entries()

    owner.index.path.unlink()
    owner.index.path.write_text(
        '{"%s": {"MRI_scan": {"record_id": "%s", "version": 1, "cid": "%s"}}}'
        % (patient.address, first.record_id, first.cid)
    )
    rebuilt = owner.index.rebuild(owner.client.record_versions(hospital.address))
    assert len(rebuilt) == len(before) == 2
    by_id = {entry.record_id: entry for entry in rebuilt}
    assert by_id[first.record_id].name == "MRI_scan" and by_id[first.record_id].version == 2
    assert by_id[second.record_id].name == f"record-{second.record_id[2:14]}"
    assert by_id[second.record_id].cid == second.cid


def test_a_wrong_key_shared_later_does_not_lock_a_reader_out(member, access, hospital, patient, doctor, scan, tmp_path,
                                                             chain):
    """The patient publishes a wrong data key for the doctor after the owner's right one: the newest
    share is not trusted, the one matching the ciphertext's key commitment is used."""
    owner, reader = member(hospital), member(doctor)
    member(patient)
    record_id = owner.upload(scan, patient.address, "MRI_scan").record_bytes
    owner.grant(record_id, [doctor.address], chain.pending_timestamp + ONE_DAY)
    key = owner.client.encryption_key(doctor.address)
    poison = wrap_data_key(new_data_key(), key.public_key, key.version, record_id, 1, key.suite)
    access.shareDataKeys(record_id, 1, [doctor], [poison], sender=patient)
    assert reader.client.shared_keys(record_id, doctor.address, 1)[0] == poison
    reader.fetch(record_id, tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == scan.read_bytes()


def test_a_revocation_goes_through_even_when_the_rotation_cannot(member, access, hospital, patient, doctor, scan,
                                                                 tmp_path, chain):
    """The owner holds no key share of its own here, so the rotation fails off chain; the revocation,
    sent on its own first, has still ended the doctor's access."""
    owner = member(hospital)
    member(doctor)
    data_key = new_data_key()
    with scan.open("rb") as source, owner.store.writer() as sink:
        encrypt_stream(source, sink, data_key, ZERO_RECORD_ID, 1)
    record_id = owner.client.register_record(sink.cid, patient.address, [])
    key = owner.client.encryption_key(doctor.address)
    wrapped = wrap_data_key(data_key, key.public_key, key.version, record_id, 1, key.suite)
    owner.client.grant(record_id, [doctor.address], chain.pending_timestamp + ONE_DAY, 1, [(doctor.address, wrapped)])
    assert access.checkAccess(doctor, record_id)
    with pytest.raises(RecordError, match="no data key"):
        owner.revoke(record_id, doctor.address, rotate=True)
    assert not access.checkAccess(doctor, record_id)
    assert access.grantOf(record_id, doctor) == (0, 0, 0)


def test_a_reader_whose_grant_was_voided_is_rotated_out(member, access, admin, hospital, patient, doctor, scan,
                                                        tmp_path, chain):
    owner = member(hospital)
    member(doctor)
    record_id = owner.upload(scan, patient.address, "MRI_scan").record_bytes
    owner.grant(record_id, [doctor.address], chain.pending_timestamp + ONE_DAY)
    access.revokeRole(access.DOCTOR_ROLE(), doctor, sender=admin)
    access.grantRole(access.DOCTOR_ROLE(), doctor, sender=admin)  # re-admitted: the old grant stays void
    with pytest.raises(RecordError, match="holds no grant"):
        owner.revoke(record_id, doctor.address)
    rotated = owner.revoke(record_id, doctor.address, rotate=True)
    assert rotated.version == 2
    assert member(doctor).client.shared_keys(record_id, doctor.address, 2) == []
    assert owner.rotate(record_id).version == 3  # the owner's own key of version 2 opened it
    with pytest.raises(AccessRefused, match="only the record's owner"):
        member(patient).rotate(record_id)


def test_owner_and_patient_read_their_own_record_back_and_the_reads_are_logged(
    member, access, admin, hospital, other_hospital, patient, other_patient, scan, tmp_path
):
    owner, own_patient = member(hospital), member(patient)
    record_id = owner.upload(scan, patient.address, "MRI_scan").record_bytes
    assert not access.checkAccess(hospital, record_id) and not access.checkAccess(patient, record_id)
    owner.fetch(record_id, tmp_path / "owner.bin")
    own_patient.fetch(record_id, tmp_path / "patient.bin")
    assert (tmp_path / "owner.bin").read_bytes() == (tmp_path / "patient.bin").read_bytes() == scan.read_bytes()
    reads = list(access.AccessLogged.range(0, None, search_topics={"record": record_id}))
    assert [(log.reader, log.version) for log in reads] == [(hospital.address, 1), (patient.address, 1)]

    # Another hospital and another patient are still refused, and their refusals log nothing.
    for stranger in (other_hospital, other_patient):
        with pytest.raises(AccessRefused, match="has no grant"):
            member(stranger).fetch(record_id, tmp_path / "stranger.bin")
        with pytest.raises(ChainRefusal, match="AccessDenied"):
            member(stranger).client.log_access(record_id)
    # Reading one's own record back needs the role still: a patient who left the consortium is refused.
    access.revokeRole(access.PATIENT_ROLE(), patient, sender=admin)
    with pytest.raises(AccessRefused, match="no longer holds the patient role"):
        own_patient.fetch(record_id, tmp_path / "again.bin")
    assert len(list(access.AccessLogged.range(0, None, search_topics={"record": record_id}))) == 2
