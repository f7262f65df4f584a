"""Issue 11's contract defects, each as an attack or misuse that must now fail with its custom error."""

import ape
import pytest
from eth_utils import keccak

from conftest import ONE_DAY, make_cid

TEN_YEARS = 10 * 365 * ONE_DAY
REASON = b"\x07" * 32


@pytest.fixture
def deadline(chain):
    return chain.pending_timestamp + 30 * ONE_DAY


@pytest.fixture
def head(chain):
    """The block a patient signing now names as ``issuedBlock``."""
    return lambda: chain.blocks.head.number


def _grant(record, grantee, expiry, nonce, issued, deadline):
    return {"record": record, "grantee": grantee.address, "expiry": expiry, "nonce": nonce,
            "issuedBlock": issued, "deadline": deadline}


def _consent(record, researcher, expiry, nonce, issued, deadline):
    return {"record": record, "researcher": researcher.address, "expiry": expiry, "nonce": nonce,
            "issuedBlock": issued, "deadline": deadline}


# 1. Held-back patient signatures -------------------------------------------------------------------

def test_a_direct_revocation_voids_a_held_back_signed_grant(
    access, patient_signer, hospital, patient, doctor, stranger, record, in_a_day, deadline, head
):
    issued = head()
    held_back = patient_signer.sign(patient, "Grant", _grant(record, doctor, in_a_day, 1, issued, deadline))
    access.grantAccess(record, doctor, in_a_day, sender=patient)
    access.revokeAccess(record, doctor, sender=patient)
    with ape.reverts(access.SignatureSuperseded, record=record, grantee=doctor, issuedBlock=issued):
        access.grantAccessBySig(record, doctor, in_a_day, 1, issued, deadline, held_back, sender=doctor)
    assert not access.checkAccess(doctor, record)
    assert not access.nonceUsed(patient, 1)


def test_a_withdrawal_voids_a_held_back_signed_consent(
    access, patient_signer, hospital, patient, researcher, stranger, record, in_a_day, deadline, head
):
    access.grantAccess(record, researcher, in_a_day, sender=hospital)
    issued = head()
    held_back = patient_signer.sign(patient, "Consent", _consent(record, researcher, in_a_day, 7, issued, deadline))
    access.setConsent(record, researcher, in_a_day, sender=patient)
    tx = access.setConsent(record, researcher, 0, sender=patient)
    assert tx.events == [access.ConsentSet(record, researcher, patient, 0)]
    with ape.reverts(access.SignatureSuperseded, record=record, grantee=researcher, issuedBlock=issued):
        access.setConsentBySig(record, researcher, in_a_day, 7, issued, deadline, held_back, sender=researcher)
    assert not access.checkAccess(researcher, record)


def test_a_signature_from_before_the_grantees_role_loss_is_refused(
    access, patient_signer, admin, patient, doctor, record, in_a_day, deadline, head
):
    issued = head()
    held_back = patient_signer.sign(patient, "Grant", _grant(record, doctor, in_a_day, 3, issued, deadline))
    access.revokeRole(access.DOCTOR_ROLE(), doctor, sender=admin)
    access.grantRole(access.DOCTOR_ROLE(), doctor, sender=admin)
    with ape.reverts(access.SignatureSuperseded, record=record, grantee=doctor, issuedBlock=issued):
        access.grantAccessBySig(record, doctor, in_a_day, 3, issued, deadline, held_back, sender=doctor)
    assert not access.checkAccess(doctor, record)


def test_the_patient_cancels_an_outstanding_signature(
    access, patient_signer, guardian, patient, doctor, record, in_a_day, deadline, head
):
    issued = head()
    signature = patient_signer.sign(patient, "Grant", _grant(record, doctor, in_a_day, 42, issued, deadline))
    access.pause(sender=guardian)
    tx = access.cancelSignature(42, sender=patient)  # runs while paused
    assert tx.events == [access.SignatureCancelled(patient, 42)]
    access.unpause(sender=guardian)
    with ape.reverts(access.NonceAlreadyUsed, patient=patient, nonce=42):
        access.grantAccessBySig(record, doctor, in_a_day, 42, issued, deadline, signature, sender=doctor)
    with ape.reverts(access.NonceAlreadyUsed, patient=patient, nonce=42):
        access.cancelSignature(42, sender=patient)
    assert not access.checkAccess(doctor, record)


def test_a_signature_naming_a_future_block_is_refused(
    access, patient_signer, patient, doctor, record, in_a_day, deadline, head
):
    issued = head() + 100
    signature = patient_signer.sign(patient, "Grant", _grant(record, doctor, in_a_day, 0, issued, deadline))
    with ape.reverts(access.SignatureFromFuture, issuedBlock=issued):
        access.grantAccessBySig(record, doctor, in_a_day, 0, issued, deadline, signature, sender=doctor)


# 2. Consent bounded by the patient's expiry ---------------------------------------------------------

def test_consent_does_not_ride_along_an_extended_grant(
    access, chain, hospital, patient, researcher, record, in_a_day
):
    access.grantAccess(record, researcher, in_a_day, sender=patient)
    access.grantAccess(record, researcher, in_a_day + TEN_YEARS, sender=hospital)
    assert access.grantOf(record, researcher) == (in_a_day + TEN_YEARS, in_a_day, 0)
    chain.mine(timestamp=in_a_day - 1)
    assert access.checkAccess(researcher, record)
    chain.mine(timestamp=in_a_day)
    assert not access.checkAccess(researcher, record)


def test_standalone_consent_has_its_own_expiry(access, chain, hospital, patient, researcher, record, in_a_day):
    access.grantAccess(record, researcher, in_a_day + TEN_YEARS, sender=hospital)
    tx = access.setConsent(record, researcher, in_a_day, sender=patient)
    assert tx.events == [access.ConsentSet(record, researcher, patient, in_a_day)]
    assert access.checkAccess(researcher, record)
    chain.mine(timestamp=in_a_day)
    assert not access.checkAccess(researcher, record)
    with ape.reverts(access.ExpiryNotInFuture):
        access.setConsent(record, researcher, in_a_day - 5, sender=patient)


# 3. Key-share slots ---------------------------------------------------------------------------------

def test_the_patient_cannot_publish_into_the_owners_slot(access, hospital, patient, record):
    with ape.reverts(access.MayNotShareWith, record=record, reader=hospital):
        access.shareDataKeys(record, 1, [hospital], [b"\x01" * 89], sender=patient)
    access.shareDataKeys(record, 1, [patient], [b"\x01" * 89], sender=patient)
    access.shareDataKeys(record, 1, [patient, hospital], [b"\x02" * 89, b"\x03" * 89], sender=hospital)


# 4. CID squatting -----------------------------------------------------------------------------------

def test_a_rival_registering_the_cid_first_does_not_block_the_owner(
    access, hospital, other_hospital, patient, other_patient
):
    cid = make_cid(555)
    squat = access.registerRecord(cid, other_patient, sender=other_hospital).return_value
    record = access.registerRecord(cid, patient, sender=hospital).return_value
    assert record != squat
    assert record == keccak(bytes.fromhex(hospital.address[2:]) + cid[-32:])
    assert access.recordIdOf(hospital, cid) == record
    assert access.recordOf(record)[:2] == (hospital, patient)
    with ape.reverts(access.CidAlreadyClaimed, digest=cid[-32:]):
        access.registerRecord(cid, other_patient, sender=hospital)


def test_a_rival_cannot_claim_the_cid_of_a_rotation_ahead_of_it(access, hospital, other_hospital, patient, record):
    new_cid = make_cid(556)
    access.registerRecord(new_cid, patient, sender=other_hospital)
    access.rotateRecord(record, new_cid, sender=hospital)
    assert access.currentCid(record) == (new_cid, 2)


# 5. No dormant grants --------------------------------------------------------------------------------

def test_a_grant_to_an_account_without_a_reading_role_is_refused(
    access, patient_signer, hospital, patient, medic, stranger, record, in_a_day, deadline, head
):
    for grantee in (stranger, medic, patient):
        with ape.reverts(access.GranteeCannotRead, grantee=grantee):
            access.grantAccess(record, grantee, in_a_day, sender=hospital)
        with ape.reverts(access.GranteeCannotRead, grantee=grantee):
            access.grantAccessBatch(record, [grantee], in_a_day, sender=patient)
    issued = head()
    signature = patient_signer.sign(patient, "Grant", _grant(record, stranger, in_a_day, 0, issued, deadline))
    with ape.reverts(access.GranteeCannotRead, grantee=stranger):
        access.grantAccessBySig(record, stranger, in_a_day, 0, issued, deadline, signature, sender=stranger)


def test_an_owners_grant_to_a_researcher_does_not_wake_when_it_becomes_a_doctor(
    access, admin, hospital, patient, researcher, record, in_a_day
):
    access.grantAccess(record, researcher, in_a_day, sender=hospital)
    access.grantRole(access.DOCTOR_ROLE(), researcher, sender=admin)
    assert not access.checkAccess(researcher, record), "no consent, and not granted as a doctor"
    access.setConsent(record, researcher, in_a_day, sender=patient)
    assert access.checkAccess(researcher, record)
    access.grantAccess(record, researcher, in_a_day, sender=hospital)
    access.setConsent(record, researcher, 0, sender=patient)
    assert access.checkAccess(researcher, record), "granted anew while a doctor"


# 6. Pause lets access-reducing actions through -------------------------------------------------------

def test_access_reducing_actions_run_while_paused(
    access, chain, guardian, hospital, patient, doctor, researcher, medic, record, in_a_day
):
    access.grantAccess(record, doctor, in_a_day, sender=hospital)
    access.grantAccess(record, researcher, in_a_day, sender=patient)
    access.openEmergencyAccess(record, REASON, 3600, sender=medic)
    other = access.registerRecord(make_cid(2), patient, sender=hospital).return_value
    access.pause(sender=guardian)
    assert not any(access.checkAccess(u, record) for u in (doctor, researcher, medic))
    access.revokeAccess(record, doctor, sender=hospital)
    access.setConsent(record, researcher, 0, sender=patient)
    access.closeEmergencyAccess(record, medic, sender=patient)
    access.rotateRecord(record, make_cid(3), sender=hospital)
    access.shareDataKeys(record, 2, [hospital, patient], [b"\x01" * 89, b"\x02" * 89], sender=hospital)
    access.retireRecord(other, sender=hospital)
    with ape.reverts(access.EnforcedPause):
        access.grantAccess(record, doctor, in_a_day, sender=hospital)
    with ape.reverts(access.EnforcedPause):
        access.setConsent(record, researcher, in_a_day, sender=patient)
    with ape.reverts(access.EnforcedPause):
        access.openEmergencyAccess(record, REASON, 3600, sender=medic)
    with ape.reverts(access.NotAReader, record=record, reader=researcher):
        access.shareDataKeys(record, 2, [researcher], [b"\x01" * 89], sender=hospital)
    access.unpause(sender=guardian)
    assert not any(access.checkAccess(u, record) for u in (doctor, researcher, medic))


def test_a_compromised_key_is_replaced_while_paused(access, guardian, doctor, researcher):
    """Replacing a key only narrows exposure: the old key opens no share made after it. A first key waits."""
    access.publishEncryptionKey(0x0020, b"\x11" * 32, sender=doctor)
    access.pause(sender=guardian)
    fresh = b"\x22" * 32
    tx = access.publishEncryptionKey(0x0020, fresh, sender=doctor)
    assert tx.events == [access.EncryptionKeyPublished(doctor, 2, 0x0020, fresh)]
    assert access.encryptionKeyOf(doctor) == (keccak(fresh), 0x0020, 2)
    with ape.reverts(access.EnforcedPause):
        access.publishEncryptionKey(0x0020, b"\x33" * 32, sender=researcher)
    assert access.encryptionKeyOf(researcher) == (b"\x00" * 32, 0, 0)


# 7. Break-glass bounded ------------------------------------------------------------------------------

def test_break_glass_is_capped_per_record_and_user(access, chain, medic, patient, record):
    cap = access.MAX_EMERGENCY_OPENINGS()
    for opening in range(1, cap + 1):
        tx = access.openEmergencyAccess(record, REASON, 12 * 3600, sender=medic)
        assert tx.events[0].opening == opening
        chain.mine(timestamp=chain.pending_timestamp + 12 * 3600)
    with ape.reverts(access.EmergencyOpeningsExhausted, record=record, user=medic):
        access.openEmergencyAccess(record, REASON, 60, sender=medic)
    other = access.registerRecord(make_cid(2), patient, sender=access.ownerOf(record)).return_value
    access.openEmergencyAccess(other, REASON, 60, sender=medic)


def test_closing_break_glass_starts_a_cooldown(access, chain, medic, patient, record):
    access.openEmergencyAccess(record, REASON, 3600, sender=medic)
    closed = access.closeEmergencyAccess(record, medic, sender=patient)
    until = chain.blocks[closed.block_number].timestamp + access.EMERGENCY_COOLDOWN()
    with ape.reverts(access.EmergencyCooldown, record=record, user=medic, until=until):
        access.openEmergencyAccess(record, REASON, 3600, sender=medic)
    chain.mine(timestamp=until)
    access.openEmergencyAccess(record, REASON, 3600, sender=medic)
    access.closeEmergencyAccess(record, medic, sender=medic)  # closing one's own: no cooldown
    access.openEmergencyAccess(record, REASON, 3600, sender=medic)


# 8. Unordered nonces ---------------------------------------------------------------------------------

def test_signatures_for_different_records_do_not_wait_for_each_other(
    access, patient_signer, hospital, patient, doctor, record, in_a_day, deadline, head
):
    other = access.registerRecord(make_cid(2), patient, sender=hospital).return_value
    issued = head()
    first = patient_signer.sign(patient, "Grant", _grant(record, doctor, in_a_day, 900, issued, deadline))
    second = patient_signer.sign(patient, "Grant", _grant(other, doctor, in_a_day, 17, issued, deadline))
    access.grantAccessBySig(other, doctor, in_a_day, 17, issued, deadline, second, sender=doctor)
    access.grantAccessBySig(record, doctor, in_a_day, 900, issued, deadline, first, sender=doctor)
    assert access.checkAccess(doctor, record) and access.checkAccess(doctor, other)
    assert access.nonceUsed(patient, 17) and access.nonceUsed(patient, 900) and not access.nonceUsed(patient, 0)


# 10. Admins, expiries, rotated CIDs -------------------------------------------------------------------

def test_the_last_admin_can_neither_be_removed_nor_renounce(access, admin, doctor):
    admin_role = access.DEFAULT_ADMIN_ROLE()
    with ape.reverts(access.LastAdmin, account=admin):
        access.revokeRole(admin_role, admin, sender=admin)
    with ape.reverts(access.LastAdmin, account=admin):
        access.renounceRole(admin_role, admin, sender=admin)
    access.grantRole(admin_role, doctor, sender=admin)
    access.renounceRole(admin_role, admin, sender=admin)
    assert access.totalAdmins() == 1


def test_an_expiry_beyond_forty_bits_is_refused(access, hospital, doctor, record):
    too_far = 2**40
    with ape.reverts(access.ExpiryTooFar, expiry=too_far):
        access.grantAccess(record, doctor, too_far, sender=hospital)
    access.grantAccess(record, doctor, too_far - 1, sender=hospital)
    assert access.grantOf(record, doctor)[0] == too_far - 1


def test_record_id_of_a_rotated_versions_cid(access, hospital, other_hospital, record):
    new_cid = make_cid(7)
    access.rotateRecord(record, new_cid, sender=hospital)
    assert access.recordIdOf(hospital, new_cid) == record
    assert access.recordIdOf(hospital, make_cid(1)) == record
    assert access.recordIdOf(other_hospital, new_cid) != record
