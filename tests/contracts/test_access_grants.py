"""Grants: expiry, batches, revocation, researcher consent, and pause on the read path."""

import ape

from conftest import ONE_DAY

UNKNOWN = (77).to_bytes(32, "big")

ZERO = "0x0000000000000000000000000000000000000000"


def test_owner_grant_passes_until_expiry(access, chain, hospital, doctor, record, in_a_day):
    tx = access.grantAccess(record, doctor, in_a_day, sender=hospital)
    assert tx.events == [access.AccessGranted(record, doctor, hospital, in_a_day)]
    assert access.grantOf(record, doctor) == (in_a_day, 0, 0)
    assert access.checkAccess(doctor, record)
    chain.mine(timestamp=in_a_day - 1)
    assert access.checkAccess(doctor, record)
    chain.mine(timestamp=in_a_day)
    assert not access.checkAccess(doctor, record)


def test_expired_grant_passes_again_only_when_granted_anew(access, chain, hospital, doctor, record, in_a_day):
    access.grantAccess(record, doctor, in_a_day, sender=hospital)
    chain.mine(timestamp=in_a_day + 10)
    assert not access.checkAccess(doctor, record)
    later = in_a_day + ONE_DAY
    access.grantAccess(record, doctor, later, sender=hospital)
    assert access.checkAccess(doctor, record)


def test_expiry_must_be_in_the_future(access, chain, hospital, doctor, record):
    now = chain.pending_timestamp
    for expiry in (0, now):
        with ape.reverts(access.ExpiryNotInFuture, expiry=expiry):
            access.grantAccess(record, doctor, expiry, sender=hospital)
        with ape.reverts(access.ExpiryNotInFuture, expiry=expiry):
            access.grantAccessBatch(record, [doctor], expiry, sender=hospital)


def test_only_owner_or_patient_grants(access, doctor, other_hospital, other_patient, stranger, record, in_a_day):
    for caller in (doctor, other_hospital, other_patient, stranger):
        with ape.reverts(access.NotOwnerOrPatient, record=record, caller=caller):
            access.grantAccess(record, doctor, in_a_day, sender=caller)
        with ape.reverts(access.NotOwnerOrPatient, record=record, caller=caller):
            access.grantAccessBatch(record, [doctor], in_a_day, sender=caller)
        with ape.reverts(access.NotOwnerOrPatient, record=record, caller=caller):
            access.revokeAccess(record, doctor, sender=caller)


def test_zero_grantee_and_empty_batch_are_refused(access, hospital, doctor, record, in_a_day):
    with ape.reverts(access.InvalidGrantee):
        access.grantAccess(record, ZERO, in_a_day, sender=hospital)
    with ape.reverts(access.InvalidGrantee):
        access.grantAccessBatch(record, [doctor, ZERO], in_a_day, sender=hospital)
    with ape.reverts(access.NoGrantees):
        access.grantAccessBatch(record, [], in_a_day, sender=hospital)
    assert not access.checkAccess(doctor, record)


def test_batch_grants_every_grantee(access, admin, hospital, doctor, medic, stranger, record, in_a_day):
    access.grantRole(access.DOCTOR_ROLE(), stranger, sender=admin)
    access.grantRole(access.DOCTOR_ROLE(), medic, sender=admin)
    grantees = [doctor, stranger, medic]
    tx = access.grantAccessBatch(record, grantees, in_a_day, sender=hospital)
    assert tx.events == [access.AccessGranted(record, g, hospital, in_a_day) for g in grantees]
    assert all(access.checkAccess(g, record) for g in grantees)


def test_revoke_ends_access_at_once_and_regrant_works(access, hospital, patient, doctor, record, in_a_day):
    access.grantAccess(record, doctor, in_a_day, sender=hospital)
    tx = access.revokeAccess(record, doctor, sender=patient)
    assert tx.events == [access.AccessRevoked(record, doctor, patient)]
    assert not access.checkAccess(doctor, record)
    assert access.grantOf(record, doctor) == (0, 0, 0)
    with ape.reverts(access.NoGrant, record=record, grantee=doctor):
        access.revokeAccess(record, doctor, sender=hospital)
    access.grantAccess(record, doctor, in_a_day, sender=hospital)
    assert access.checkAccess(doctor, record)


def test_an_expired_grant_can_still_be_revoked(access, chain, hospital, doctor, record, in_a_day):
    access.grantAccess(record, doctor, in_a_day, sender=hospital)
    chain.mine(timestamp=in_a_day + 1)
    access.revokeAccess(record, doctor, sender=hospital)
    assert access.grantOf(record, doctor) == (0, 0, 0)


def test_researcher_needs_a_grant_and_the_patients_consent(access, hospital, patient, researcher, record, in_a_day):
    access.grantAccess(record, researcher, in_a_day, sender=hospital)
    assert not access.checkAccess(researcher, record)
    tx = access.setConsent(record, researcher, in_a_day, sender=patient)
    assert tx.events == [access.ConsentSet(record, researcher, patient, in_a_day)]
    assert access.grantOf(record, researcher) == (in_a_day, in_a_day, 0)
    assert access.checkAccess(researcher, record)
    tx = access.setConsent(record, researcher, 0, sender=patient)
    assert tx.events == [access.ConsentSet(record, researcher, patient, 0)]
    assert not access.checkAccess(researcher, record)


def test_consent_before_the_grant_and_across_renewals(access, hospital, patient, researcher, record, in_a_day):
    access.setConsent(record, researcher, in_a_day + ONE_DAY, sender=patient)
    assert not access.checkAccess(researcher, record)
    access.grantAccess(record, researcher, in_a_day, sender=hospital)
    assert access.checkAccess(researcher, record)
    access.grantAccess(record, researcher, in_a_day + ONE_DAY, sender=hospital)
    assert access.checkAccess(researcher, record)


def test_revocation_drops_consent(access, hospital, patient, researcher, record, in_a_day):
    access.grantAccess(record, researcher, in_a_day, sender=hospital)
    access.setConsent(record, researcher, in_a_day, sender=patient)
    access.revokeAccess(record, researcher, sender=hospital)
    access.grantAccess(record, researcher, in_a_day, sender=hospital)
    assert not access.checkAccess(researcher, record), "a new grant needs new consent"


def test_a_patients_grant_carries_consent(access, patient, researcher, record, in_a_day):
    tx = access.grantAccess(record, researcher, in_a_day, sender=patient)
    assert tx.events == [access.AccessGranted(record, researcher, patient, in_a_day)]
    assert access.checkAccess(researcher, record)


def test_only_the_patient_consents_and_only_for_researchers(
    access, hospital, other_patient, patient, doctor, researcher, record, in_a_day
):
    for caller in (hospital, other_patient, researcher):
        with ape.reverts(access.NotRecordPatient, record=record, caller=caller):
            access.setConsent(record, researcher, in_a_day, sender=caller)
    with ape.reverts(access.NotAResearcher, account=doctor):
        access.setConsent(record, doctor, in_a_day, sender=patient)
    access.setConsent(record, doctor, 0, sender=patient)  # withdrawing is always allowed


def test_a_doctor_who_is_also_a_researcher_needs_no_consent(access, admin, hospital, doctor, record, in_a_day):
    access.grantRole(access.RESEARCHER_ROLE(), doctor, sender=admin)
    access.grantAccess(record, doctor, in_a_day, sender=hospital)
    assert access.checkAccess(doctor, record)
    access.revokeRole(access.DOCTOR_ROLE(), doctor, sender=admin)
    assert not access.checkAccess(doctor, record)


def test_pause_denies_reads_and_stops_what_widens_access(
    access, guardian, hospital, patient, doctor, researcher, record, in_a_day
):
    access.grantAccess(record, doctor, in_a_day, sender=hospital)
    access.pause(sender=guardian)
    assert not access.checkAccess(doctor, record)
    assert access.grantOf(record, doctor) == (in_a_day, 0, 0)
    for call in (
        lambda: access.grantAccess(record, doctor, in_a_day, sender=hospital),
        lambda: access.grantAccessBatch(record, [doctor], in_a_day, sender=hospital),
        lambda: access.setConsent(record, researcher, in_a_day, sender=patient),
        lambda: access.logAccess(record, sender=doctor),
    ):
        with ape.reverts(access.EnforcedPause):
            call()
    access.unpause(sender=guardian)
    assert access.checkAccess(doctor, record)


def test_batch_and_consent_refuse_unknown_and_retired_records(
    access, hospital, patient, doctor, researcher, record, in_a_day
):
    with ape.reverts(access.UnknownRecord, record=UNKNOWN):
        access.grantAccessBatch(UNKNOWN, [doctor], in_a_day, sender=hospital)
    access.retireRecord(record, sender=hospital)
    with ape.reverts(access.RecordIsRetired, record=record):
        access.grantAccessBatch(record, [doctor], in_a_day, sender=hospital)
    with ape.reverts(access.RecordIsRetired, record=record):
        access.setConsent(record, researcher, in_a_day, sender=patient)


def test_a_grant_voided_by_role_loss_reads_as_none_and_can_still_be_revoked(
    access, admin, hospital, doctor, record, in_a_day
):
    access.grantAccess(record, doctor, in_a_day, sender=hospital)
    access.revokeRole(access.DOCTOR_ROLE(), doctor, sender=admin)
    assert access.grantOf(record, doctor) == (0, 0, 0)
    access.revokeAccess(record, doctor, sender=hospital)
    with ape.reverts(access.NoGrant, record=record, grantee=doctor):
        access.revokeAccess(record, doctor, sender=hospital)
