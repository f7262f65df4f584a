"""Records: registration by CID, ids bound to their owner, one claim per digest and owner, rotation, retirement."""

import ape
import pytest

from conftest import make_cid, record_id

KINDS = ["v0", "v1-raw", "v1-dag-pb"]


@pytest.mark.parametrize("kind", KINDS)
def test_register_binds_cid_owner_and_patient(access, hospital, patient, kind):
    cid = make_cid(7, kind)
    tx = access.registerRecord(cid, patient, sender=hospital)
    record = tx.return_value
    assert record == record_id(hospital, cid)
    assert tx.events == [access.RecordRegistered(record, hospital, patient, cid)]
    assert access.recordOf(record) == (hospital.address, patient.address, 1, False)
    assert access.ownerOf(record) == hospital
    assert access.currentCid(record) == (cid, 1)
    assert access.recordIdOf(hospital, cid) == record


@pytest.mark.parametrize(
    "cid",
    [
        b"",
        bytes.fromhex("1220") + bytes(31),  # v0, digest one byte short
        bytes.fromhex("1220") + bytes(33),  # v0, one byte too many
        bytes.fromhex("1320") + bytes(32),  # sha3-512 multihash code
        bytes.fromhex("1210") + bytes(32),  # wrong digest length byte
        bytes.fromhex("01711220") + bytes(32),  # dag-cbor codec
        bytes.fromhex("02551220") + bytes(32),  # CID version 2
        bytes.fromhex("01551320") + bytes(32),  # v1 with a non-sha2-256 hash
        bytes.fromhex("0155122000") + bytes(32),  # v1, one byte too many
    ],
)
def test_invalid_cids_are_refused(access, hospital, patient, cid):
    with ape.reverts(access.InvalidCid, cid=cid):
        access.registerRecord(cid, patient, sender=hospital)
    with ape.reverts(access.InvalidCid, cid=cid):
        access.recordIdOf(hospital, cid)


def test_a_digest_is_claimed_once_per_owner_in_any_format(access, hospital, other_hospital, patient, record):
    digest = (1).to_bytes(32, "big")
    for kind in KINDS:
        with ape.reverts(access.CidAlreadyClaimed, digest=digest):
            access.registerRecord(make_cid(1, kind), patient, sender=hospital)
    access.registerRecord(make_cid(1, "v0"), patient, sender=other_hospital)  # its own id: no squatting


def test_only_data_owners_register_for_enrolled_patients(access, doctor, hospital, stranger, patient):
    with ape.reverts(access.AccessControlUnauthorizedAccount, account=doctor, neededRole=access.DATA_OWNER_ROLE()):
        access.registerRecord(make_cid(5), patient, sender=doctor)
    with ape.reverts(access.PatientNotEnrolled, patient=stranger):
        access.registerRecord(make_cid(5), stranger, sender=hospital)


def test_rotation_moves_the_cid_and_keeps_grants(access, hospital, doctor, record, in_a_day):
    access.grantAccess(record, doctor, in_a_day, sender=hospital)
    new_cid = make_cid(2, "v0")
    tx = access.rotateRecord(record, new_cid, sender=hospital)
    assert tx.return_value == 2
    assert tx.events == [access.RecordRotated(record, hospital, 2, new_cid)]
    assert access.currentCid(record) == (new_cid, 2)
    assert access.recordOf(record)[2] == 2
    assert access.checkAccess(doctor, record)
    newer_cid = make_cid(3, "v1-dag-pb")
    access.rotateRecord(record, newer_cid, sender=hospital)
    assert access.currentCid(record) == (newer_cid, 3)
    assert access.checkAccess(doctor, record)


def test_rotated_cids_stay_claimed_and_are_not_records(access, hospital, patient, record):
    access.rotateRecord(record, make_cid(2), sender=hospital)
    access.rotateRecord(record, make_cid(3), sender=hospital)
    for n in (1, 2, 3):
        with ape.reverts(access.CidAlreadyClaimed, digest=(n).to_bytes(32, "big")):
            access.registerRecord(make_cid(n, "v0"), patient, sender=hospital)
        with ape.reverts(access.CidAlreadyClaimed, digest=(n).to_bytes(32, "big")):
            access.rotateRecord(record, make_cid(n), sender=hospital)
    alias = record_id(hospital, make_cid(2))
    with ape.reverts(access.UnknownRecord, record=alias):
        access.recordOf(alias)
    access.registerRecord(make_cid(9), patient, sender=hospital)
    with ape.reverts(access.CidAlreadyClaimed, digest=(9).to_bytes(32, "big")):
        access.rotateRecord(record, make_cid(9), sender=hospital)


def test_rotation_refuses_an_invalid_cid(access, hospital, record):
    dag_cbor = bytes.fromhex("01711220") + bytes(32)
    with ape.reverts(access.InvalidCid, cid=dag_cbor):
        access.rotateRecord(record, dag_cbor, sender=hospital)
    assert access.currentCid(record) == (make_cid(1), 1)


def test_only_the_owner_rotates_and_retires(access, patient, other_hospital, stranger, record):
    for caller in (patient, other_hospital, stranger):
        with ape.reverts(access.NotRecordOwner, record=record, caller=caller):
            access.rotateRecord(record, make_cid(2), sender=caller)
        with ape.reverts(access.NotRecordOwner, record=record, caller=caller):
            access.retireRecord(record, sender=caller)


def test_retired_record_never_passes_and_is_frozen(access, hospital, patient, doctor, medic, record, in_a_day):
    access.grantAccess(record, doctor, in_a_day, sender=hospital)
    tx = access.retireRecord(record, sender=hospital)
    assert tx.events == [access.RecordRetired(record, hospital)]
    assert not access.checkAccess(doctor, record)
    assert access.recordOf(record) == (hospital.address, patient.address, 1, True)
    retired = access.RecordIsRetired
    with ape.reverts(retired, record=record):
        access.retireRecord(record, sender=hospital)
    with ape.reverts(retired, record=record):
        access.rotateRecord(record, make_cid(2), sender=hospital)
    with ape.reverts(retired, record=record):
        access.grantAccess(record, doctor, in_a_day, sender=hospital)
    with ape.reverts(retired, record=record):
        access.revokeAccess(record, doctor, sender=hospital)
    with ape.reverts(retired, record=record):
        access.openEmergencyAccess(record, b"\x01" * 32, 3600, sender=medic)
    with ape.reverts(access.AccessDenied, record=record, user=doctor):
        access.logAccess(record, sender=doctor)


def test_unknown_record_is_refused_everywhere(access, hospital, doctor, medic, patient):
    unknown = (77).to_bytes(32, "big")
    missing = access.UnknownRecord
    with ape.reverts(missing, record=unknown):
        access.recordOf(unknown)
    with ape.reverts(missing, record=unknown):
        access.ownerOf(unknown)
    with ape.reverts(missing, record=unknown):
        access.currentCid(unknown)
    with ape.reverts(missing, record=unknown):
        access.grantAccess(unknown, doctor, 2**40, sender=hospital)
    with ape.reverts(missing, record=unknown):
        access.revokeAccess(unknown, doctor, sender=hospital)
    with ape.reverts(missing, record=unknown):
        access.rotateRecord(unknown, make_cid(2), sender=hospital)
    with ape.reverts(missing, record=unknown):
        access.retireRecord(unknown, sender=hospital)
    with ape.reverts(missing, record=unknown):
        access.setConsent(unknown, doctor, 0, sender=patient)
    with ape.reverts(missing, record=unknown):
        access.openEmergencyAccess(unknown, b"\x01" * 32, 60, sender=medic)
    assert not access.checkAccess(doctor, unknown)


def test_pause_stops_registration_but_not_rotation_retirement_or_views(access, guardian, hospital, patient, record):
    access.pause(sender=guardian)
    with ape.reverts(access.EnforcedPause):
        access.registerRecord(make_cid(2), patient, sender=hospital)
    assert access.recordOf(record) == (hospital.address, patient.address, 1, False)
    access.rotateRecord(record, make_cid(3), sender=hospital)
    assert access.currentCid(record) == (make_cid(3), 2)
    access.retireRecord(record, sender=hospital)
    assert access.recordOf(record) == (hospital.address, patient.address, 2, True)
