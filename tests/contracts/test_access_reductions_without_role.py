"""Access-reducing actions need no role (issue 18, item 8): a patient or owner who lost its role can still
revoke, withdraw consent, close break-glass access or retire, while what widens access still needs the role;
and admins can revoke and retire on an evicted owner's records, never on a live owner's."""

import ape
import pytest


@pytest.fixture
def granted(access, hospital, doctor, researcher, record, in_a_day):
    """The record, with a grant to the doctor and a grant (with the patient's consent) to the researcher."""
    access.grantAccess(record, doctor, in_a_day, sender=hospital)
    access.grantAccess(record, researcher, in_a_day, sender=hospital)
    return record


def test_a_patient_without_its_role_revokes_and_withdraws(access, admin, patient, doctor, researcher, granted, in_a_day):
    access.setConsent(granted, researcher, in_a_day, sender=patient)
    assert access.checkAccess(researcher, granted)
    access.revokeRole(access.PATIENT_ROLE(), patient, sender=admin)
    assert access.checkAccess(doctor, granted)  # its grants keep passing: it must be able to end them
    tx = access.setConsent(granted, researcher, 0, sender=patient)
    assert tx.events == [access.ConsentSet(granted, researcher, patient, 0)]
    assert not access.checkAccess(researcher, granted)
    tx = access.revokeAccess(granted, doctor, sender=patient)
    assert tx.events == [access.AccessRevoked(granted, doctor, patient)]
    assert not access.checkAccess(doctor, granted)
    # Widening still needs the role.
    with ape.reverts(access.AccessControlUnauthorizedAccount, account=patient, neededRole=access.PATIENT_ROLE()):
        access.setConsent(granted, researcher, in_a_day, sender=patient)
    with ape.reverts(access.AccessControlUnauthorizedAccount, account=patient, neededRole=access.PATIENT_ROLE()):
        access.grantAccess(granted, doctor, in_a_day, sender=patient)


def test_a_patient_without_its_role_withdraws_by_signature(access, admin, chain, patient_signer, patient, researcher,
                                                           stranger, granted, in_a_day):
    access.setConsent(granted, researcher, in_a_day, sender=patient)
    access.revokeRole(access.PATIENT_ROLE(), patient, sender=admin)
    deadline, issued = chain.pending_timestamp + 600, chain.blocks.head.number
    message = {"record": granted, "researcher": researcher.address, "expiry": 0, "nonce": 5, "issuedBlock": issued,
               "deadline": deadline}
    withdraw = patient_signer.sign(patient, "Consent", message)
    access.setConsentBySig(granted, researcher, 0, 5, issued, deadline, withdraw, sender=stranger)
    assert not access.checkAccess(researcher, granted)
    issued = chain.blocks.head.number  # after the withdrawal, which supersedes older signatures
    give = patient_signer.sign(patient, "Consent", {**message, "expiry": in_a_day, "nonce": 6, "issuedBlock": issued})
    with ape.reverts(access.AccessControlUnauthorizedAccount, account=patient, neededRole=access.PATIENT_ROLE()):
        access.setConsentBySig(granted, researcher, in_a_day, 6, issued, deadline, give, sender=stranger)


def test_an_owner_without_its_role_revokes_closes_and_retires(access, admin, hospital, doctor, medic, granted):
    access.openEmergencyAccess(granted, b"\x01" * 32, 3600, sender=medic)
    access.revokeRole(access.DATA_OWNER_ROLE(), hospital, sender=admin)
    access.revokeAccess(granted, doctor, sender=hospital)
    tx = access.closeEmergencyAccess(granted, medic, sender=hospital)
    assert tx.events == [access.EmergencyAccessClosed(granted, medic, hospital)]
    tx = access.retireRecord(granted, sender=hospital)
    assert tx.events == [access.RecordRetired(granted, hospital)]
    assert access.recordOf(granted)[3] is True


def test_admins_revoke_and_retire_an_evicted_owners_records(access, admin, hospital, doctor, researcher, granted):
    with ape.reverts(access.NotOwnerOrPatient, record=granted, caller=admin):
        access.revokeAccess(granted, doctor, sender=admin)  # the owner is live: it manages its own records
    with ape.reverts(access.NotRecordOwner, record=granted, caller=admin):
        access.retireRecord(granted, sender=admin)
    access.revokeRole(access.DATA_OWNER_ROLE(), hospital, sender=admin)
    tx = access.revokeAccess(granted, doctor, sender=admin)
    assert tx.events == [access.AccessRevoked(granted, doctor, admin)]
    assert not access.checkAccess(doctor, granted)
    tx = access.retireRecord(granted, sender=admin)
    assert tx.events == [access.RecordRetired(granted, admin)]


def test_strangers_and_other_members_still_cannot_reduce(access, admin, hospital, other_hospital, other_patient,
                                                         stranger, doctor, granted):
    access.revokeRole(access.DATA_OWNER_ROLE(), hospital, sender=admin)  # evicted: only admins step in
    for caller in (stranger, other_hospital, other_patient, doctor):
        with ape.reverts(access.NotOwnerOrPatient, record=granted, caller=caller):
            access.revokeAccess(granted, doctor, sender=caller)
        with ape.reverts(access.NotRecordOwner, record=granted, caller=caller):
            access.retireRecord(granted, sender=caller)
