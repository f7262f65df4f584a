"""Key shares: wrapped data keys published beside grants, and multicall making a step atomic."""

import ape

from conftest import make_cid, record_id

WRAPPED = b"\x42" * 89


def test_owner_shares_with_itself_the_patient_and_a_granted_reader(access, hospital, patient, doctor, record, in_a_day):
    access.grantAccess(record, doctor, in_a_day, sender=hospital)
    tx = access.shareDataKeys(record, 1, [hospital, patient, doctor], [b"a" * 89, b"b" * 89, b"c" * 89], sender=hospital)
    assert tx.events == [
        access.DataKeyShared(record, hospital, 1, hospital, b"a" * 89),
        access.DataKeyShared(record, patient, 1, hospital, b"b" * 89),
        access.DataKeyShared(record, doctor, 1, hospital, b"c" * 89),
    ]
    found = list(access.DataKeyShared.range(0, None, search_topics={"record": record, "reader": doctor, "version": 1}))
    assert [bytes(log.wrappedKey) for log in found] == [b"c" * 89]


def test_patient_may_share_too(access, hospital, patient, doctor, record, in_a_day):
    access.grantAccess(record, doctor, in_a_day, sender=patient)
    tx = access.shareDataKeys(record, 1, [doctor], [WRAPPED], sender=patient)
    assert tx.events == [access.DataKeyShared(record, doctor, 1, patient, WRAPPED)]


def test_only_owner_or_patient_shares(access, doctor, other_hospital, stranger, record):
    for caller in (doctor, other_hospital, stranger):
        with ape.reverts(access.NotOwnerOrPatient, record=record, caller=caller):
            access.shareDataKeys(record, 1, [caller], [WRAPPED], sender=caller)


def test_keys_go_only_to_readers(access, hospital, doctor, researcher, stranger, record, in_a_day):
    for reader in (doctor, stranger):
        with ape.reverts(access.NotAReader, record=record, reader=reader):
            access.shareDataKeys(record, 1, [hospital, reader], [WRAPPED, WRAPPED], sender=hospital)
    access.grantAccess(record, researcher, in_a_day, sender=hospital)  # no consent yet: no access
    with ape.reverts(access.NotAReader, record=record, reader=researcher):
        access.shareDataKeys(record, 1, [researcher], [WRAPPED], sender=hospital)


def test_unknown_record_refuses_shares(access, hospital):
    unknown = (77).to_bytes(32, "big")
    with ape.reverts(access.UnknownRecord, record=unknown):
        access.shareDataKeys(unknown, 1, [hospital], [WRAPPED], sender=hospital)


def test_stale_version_is_refused(access, hospital, record):
    with ape.reverts(access.StaleRecordVersion, record=record, version=2, current=1):
        access.shareDataKeys(record, 2, [hospital], [WRAPPED], sender=hospital)
    access.rotateRecord(record, make_cid(99), sender=hospital)
    with ape.reverts(access.StaleRecordVersion, record=record, version=1, current=2):
        access.shareDataKeys(record, 1, [hospital], [WRAPPED], sender=hospital)
    access.shareDataKeys(record, 2, [hospital], [WRAPPED], sender=hospital)


def test_malformed_share_lists_and_keys_are_refused(access, hospital, patient, record):
    with ape.reverts(access.KeySharesMismatch, readers=0, wrappedKeys=0):
        access.shareDataKeys(record, 1, [], [], sender=hospital)
    with ape.reverts(access.KeySharesMismatch, readers=2, wrappedKeys=1):
        access.shareDataKeys(record, 1, [hospital, patient], [WRAPPED], sender=hospital)
    limit = access.MAX_WRAPPED_KEY_SIZE()
    for bad in (b"", b"x" * (limit + 1)):
        with ape.reverts(access.InvalidWrappedKey, reader=patient):
            access.shareDataKeys(record, 1, [hospital, patient], [WRAPPED, bad], sender=hospital)
    access.shareDataKeys(record, 1, [hospital], [b"x" * limit], sender=hospital)


def test_while_paused_only_the_owner_and_patient_get_keys(access, hospital, patient, doctor, guardian, record, in_a_day):
    access.grantAccess(record, doctor, in_a_day, sender=hospital)
    access.pause(sender=guardian)
    access.shareDataKeys(record, 1, [hospital, patient], [WRAPPED, WRAPPED], sender=hospital)
    with ape.reverts(access.NotAReader, record=record, reader=doctor):
        access.shareDataKeys(record, 1, [doctor], [WRAPPED], sender=hospital)


def test_retired_record_refuses_shares(access, hospital, record):
    access.retireRecord(record, sender=hospital)
    with ape.reverts(access.RecordIsRetired, record=record):
        access.shareDataKeys(record, 1, [hospital], [WRAPPED], sender=hospital)


def test_multicall_registers_and_shares_in_one_transaction(access, hospital, patient):
    cid = make_cid(7)
    record = access.recordIdOf(hospital, cid)
    assert record == record_id(hospital, cid)
    tx = access.multicall(
        [
            access.registerRecord.encode_input(cid, patient),
            access.shareDataKeys.encode_input(record, 1, [hospital], [WRAPPED]),
        ],
        sender=hospital,
    )
    assert tx.events == [
        access.RecordRegistered(record, hospital, patient, cid),
        access.DataKeyShared(record, hospital, 1, hospital, WRAPPED),
    ]


def test_a_refused_part_undoes_the_whole_multicall(access, hospital, doctor, stranger, record, in_a_day):
    with ape.reverts(access.NotAReader, record=record, reader=stranger):
        access.multicall(
            [
                access.grantAccess.encode_input(record, doctor, in_a_day),
                access.shareDataKeys.encode_input(record, 1, [doctor, stranger], [WRAPPED, WRAPPED]),
            ],
            sender=hospital,
        )
    assert not access.checkAccess(doctor, record)
    # A multicall cannot borrow another caller's rights: each part runs as the sender.
    with ape.reverts(access.NotOwnerOrPatient, record=record, caller=stranger):
        access.multicall([access.grantAccess.encode_input(record, stranger, in_a_day)], sender=stranger)
