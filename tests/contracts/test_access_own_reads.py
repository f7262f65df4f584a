"""The record's owner and patient may log reading their own record back; checkAccess stays for grantees."""

import ape


def test_owner_and_patient_log_their_own_reads(access, hospital, patient, record):
    for reader in (hospital, patient):
        assert not access.checkAccess(reader, record)
        tx = access.logAccess(record, sender=reader)
        assert tx.return_value == 1
        assert tx.events == [access.AccessLogged(record, reader, 1, tx.timestamp)]


def test_others_and_former_members_are_still_denied(access, admin, hospital, other_hospital, patient,
                                                    other_patient, record):
    for reader in (other_hospital, other_patient):
        with ape.reverts(access.AccessDenied, record=record, user=reader):
            access.logAccess(record, sender=reader)
    access.revokeRole(access.PATIENT_ROLE(), patient, sender=admin)
    access.revokeRole(access.DATA_OWNER_ROLE(), hospital, sender=admin)
    for reader in (hospital, patient):
        with ape.reverts(access.AccessDenied, record=record, user=reader):
            access.logAccess(record, sender=reader)


def test_a_retired_record_or_a_paused_contract_logs_no_read(access, guardian, hospital, patient, record):
    access.pause(sender=guardian)
    with ape.reverts(access.EnforcedPause):
        access.logAccess(record, sender=hospital)
    access.unpause(sender=guardian)
    access.retireRecord(record, sender=hospital)
    for reader in (hospital, patient):
        with ape.reverts(access.AccessDenied, record=record, user=reader):
            access.logAccess(record, sender=reader)
