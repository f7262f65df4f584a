"""A patient's EIP-712 grants and consents, relayed by anyone: deadline, nonce, domain, signer.

(Held-back signatures, cancellation and unordered nonces: test_access_hardening.py.)"""

import ape
import pytest
from eth_utils import keccak

from conftest import PatientSigner

DEADLINE_SLACK = 3600


@pytest.fixture
def deadline(chain):
    return chain.pending_timestamp + DEADLINE_SLACK


@pytest.fixture
def issued(chain):
    """The block a signature made now names: the chain's latest."""
    return chain.blocks.head.number


def _grant_message(record, grantee, expiry, nonce, deadline, issued):
    return {"record": record, "grantee": grantee.address, "expiry": expiry, "nonce": nonce,
            "issuedBlock": issued, "deadline": deadline}


def _consent_message(record, researcher, expiry, nonce, deadline, issued):
    return {"record": record, "researcher": researcher.address, "expiry": expiry, "nonce": nonce,
            "issuedBlock": issued, "deadline": deadline}


def test_domain_is_medical_access_v1_on_this_chain(access, chain):
    fields, name, version, chain_id, contract, *_ = access.eip712Domain()
    assert (name, version, chain_id, contract) == ("MedicalAccess", "1", chain.chain_id, access.address)


def test_a_signature_passes_up_to_its_deadline(access, chain, patient_signer, patient, doctor, stranger, record, in_a_day, issued):
    deadline = chain.pending_timestamp + 60
    signature = patient_signer.sign(patient, "Grant", _grant_message(record, doctor, in_a_day, 0, deadline, issued))
    chain.pending_timestamp = deadline  # the relay lands in the block at the deadline itself, not a second later
    access.grantAccessBySig(record, doctor, in_a_day, 0, issued, deadline, signature, sender=stranger)
    assert access.checkAccess(doctor, record)


def test_relayed_grant_passes_with_the_patients_consent(
    access, patient_signer, patient, researcher, stranger, record, in_a_day, deadline, issued
):
    signature = patient_signer.sign(patient, "Grant", _grant_message(record, researcher, in_a_day, 0, deadline, issued))
    tx = access.grantAccessBySig(record, researcher, in_a_day, 0, issued, deadline, signature, sender=stranger)
    assert tx.events == [access.AccessGranted(record, researcher, patient, in_a_day)]
    assert access.checkAccess(researcher, record)
    assert access.nonceUsed(patient, 0)


def test_replay_is_refused(access, patient_signer, patient, doctor, stranger, record, in_a_day, deadline, issued):
    signature = patient_signer.sign(patient, "Grant", _grant_message(record, doctor, in_a_day, 0, deadline, issued))
    access.grantAccessBySig(record, doctor, in_a_day, 0, issued, deadline, signature, sender=stranger)
    with ape.reverts(access.NonceAlreadyUsed, patient=patient, nonce=0):
        access.grantAccessBySig(record, doctor, in_a_day, 0, issued, deadline, signature, sender=stranger)


def test_any_unused_nonce_passes(access, patient_signer, patient, doctor, stranger, record, in_a_day, deadline, issued):
    nonce = 2**256 - 1
    signature = patient_signer.sign(patient, "Grant", _grant_message(record, doctor, in_a_day, nonce, deadline, issued))
    access.grantAccessBySig(record, doctor, in_a_day, nonce, issued, deadline, signature, sender=stranger)
    assert access.nonceUsed(patient, nonce) and not access.nonceUsed(patient, 0)


def test_wrong_signer_and_tampered_fields_are_refused(
    access, patient_signer, patient, other_patient, doctor, researcher, stranger, record, in_a_day, deadline, issued
):
    forged = patient_signer.sign(other_patient, "Grant", _grant_message(record, doctor, in_a_day, 0, deadline, issued))
    with ape.reverts(access.InvalidPatientSignature, record=record, patient=patient):
        access.grantAccessBySig(record, doctor, in_a_day, 0, issued, deadline, forged, sender=stranger)
    genuine = patient_signer.sign(patient, "Grant", _grant_message(record, doctor, in_a_day, 0, deadline, issued))
    with ape.reverts(access.InvalidPatientSignature, record=record, patient=patient):
        access.grantAccessBySig(record, researcher, in_a_day, 0, issued, deadline, genuine, sender=stranger)
    with ape.reverts(access.InvalidPatientSignature, record=record, patient=patient):
        access.grantAccessBySig(record, doctor, in_a_day + 1, 0, issued, deadline, genuine, sender=stranger)
    with ape.reverts(access.InvalidPatientSignature, record=record, patient=patient):
        access.grantAccessBySig(record, doctor, in_a_day, 0, issued, deadline, b"\x00" * 65, sender=stranger)
    assert not access.nonceUsed(patient, 0)


def test_other_domains_are_refused(access, chain, patient, doctor, stranger, record, in_a_day, deadline, issued):
    message = _grant_message(record, doctor, in_a_day, 0, deadline, issued)
    other_chain = PatientSigner(access, chain.chain_id + 1).sign(patient, "Grant", message)
    other_contract = PatientSigner(access, chain.chain_id).sign(patient, "Grant", message, verifying_contract=stranger.address)
    for signature in (other_chain, other_contract):
        with ape.reverts(access.InvalidPatientSignature, record=record, patient=patient):
            access.grantAccessBySig(record, doctor, in_a_day, 0, issued, deadline, signature, sender=stranger)


def test_expired_signature_is_refused(access, chain, patient_signer, patient, doctor, stranger, record, in_a_day, issued):
    deadline = chain.pending_timestamp + 10
    signature = patient_signer.sign(patient, "Grant", _grant_message(record, doctor, in_a_day, 0, deadline, issued))
    chain.mine(timestamp=deadline + 1)
    with ape.reverts(access.SignatureExpired, deadline=deadline):
        access.grantAccessBySig(record, doctor, in_a_day, 0, issued, deadline, signature, sender=stranger)


def test_signed_grant_checks_expiry_and_patient_role(
    access, chain, admin, patient_signer, patient, doctor, stranger, record, deadline, issued
):
    past = chain.pending_timestamp - 1
    signature = patient_signer.sign(patient, "Grant", _grant_message(record, doctor, past, 0, deadline, issued))
    with ape.reverts(access.ExpiryNotInFuture, expiry=past):
        access.grantAccessBySig(record, doctor, past, 0, issued, deadline, signature, sender=stranger)
    access.revokeRole(access.PATIENT_ROLE(), patient, sender=admin)
    with ape.reverts(access.AccessControlUnauthorizedAccount, account=patient, neededRole=access.PATIENT_ROLE()):
        access.grantAccessBySig(record, doctor, past, 0, issued, deadline, signature, sender=stranger)


def test_signed_grant_checks_the_record_and_the_grantee(
    access, patient_signer, hospital, patient, doctor, stranger, record, in_a_day, deadline, issued
):
    unknown = (77).to_bytes(32, "big")
    signature = patient_signer.sign(patient, "Grant", _grant_message(unknown, doctor, in_a_day, 0, deadline, issued))
    with ape.reverts(access.UnknownRecord, record=unknown):
        access.grantAccessBySig(unknown, doctor, in_a_day, 0, issued, deadline, signature, sender=stranger)
    zero = "0x0000000000000000000000000000000000000000"
    message = {"record": record, "grantee": zero, "expiry": in_a_day, "nonce": 0, "issuedBlock": issued,
               "deadline": deadline}
    signature = patient_signer.sign(patient, "Grant", message)
    with ape.reverts(access.InvalidGrantee):
        access.grantAccessBySig(record, zero, in_a_day, 0, issued, deadline, signature, sender=stranger)
    access.retireRecord(record, sender=hospital)
    signature = patient_signer.sign(patient, "Grant", _grant_message(record, doctor, in_a_day, 0, deadline, issued))
    with ape.reverts(access.RecordIsRetired, record=record):
        access.grantAccessBySig(record, doctor, in_a_day, 0, issued, deadline, signature, sender=stranger)
    assert not access.nonceUsed(patient, 0)


def test_signed_consent_refusals(
    access, chain, patient_signer, patient, other_patient, doctor, researcher, stranger, record, in_a_day, issued
):
    deadline = chain.pending_timestamp + 600
    to_doctor = patient_signer.sign(patient, "Consent", _consent_message(record, doctor, in_a_day, 0, deadline, issued))
    with ape.reverts(access.NotAResearcher, account=doctor):
        access.setConsentBySig(record, doctor, in_a_day, 0, issued, deadline, to_doctor, sender=stranger)
    forged = patient_signer.sign(other_patient, "Consent", _consent_message(record, researcher, in_a_day, 0, deadline, issued))
    with ape.reverts(access.InvalidPatientSignature, record=record, patient=patient):
        access.setConsentBySig(record, researcher, in_a_day, 0, issued, deadline, forged, sender=stranger)
    genuine = patient_signer.sign(patient, "Consent", _consent_message(record, researcher, in_a_day, 0, deadline, issued))
    chain.mine(timestamp=deadline + 1)
    with ape.reverts(access.SignatureExpired, deadline=deadline):
        access.setConsentBySig(record, researcher, in_a_day, 0, issued, deadline, genuine, sender=stranger)
    assert not access.nonceUsed(patient, 0)
    assert access.grantOf(record, researcher) == (0, 0, 0)


def test_relayed_consent_given_and_withdrawn(
    access, chain, patient_signer, hospital, patient, researcher, stranger, record, in_a_day, deadline
):
    access.grantAccess(record, researcher, in_a_day, sender=hospital)
    issued = chain.blocks.head.number
    give = patient_signer.sign(patient, "Consent", _consent_message(record, researcher, in_a_day, 0, deadline, issued))
    tx = access.setConsentBySig(record, researcher, in_a_day, 0, issued, deadline, give, sender=stranger)
    assert tx.events == [access.ConsentSet(record, researcher, patient, in_a_day)]
    assert access.checkAccess(researcher, record)
    with ape.reverts(access.NonceAlreadyUsed, patient=patient, nonce=0):
        access.setConsentBySig(record, researcher, in_a_day, 0, issued, deadline, give, sender=stranger)
    issued = chain.blocks.head.number
    flipped = patient_signer.sign(patient, "Consent", _consent_message(record, researcher, in_a_day, 1, deadline, issued))
    with ape.reverts(access.InvalidPatientSignature, record=record, patient=patient):
        access.setConsentBySig(record, researcher, 0, 1, issued, deadline, flipped, sender=stranger)
    withdraw = patient_signer.sign(patient, "Consent", _consent_message(record, researcher, 0, 1, deadline, issued))
    access.setConsentBySig(record, researcher, 0, 1, issued, deadline, withdraw, sender=stranger)
    assert not access.checkAccess(researcher, record)


def test_paused_contract_refuses_relays_that_widen_access(
    access, guardian, patient_signer, patient, doctor, researcher, stranger, record, in_a_day, deadline, issued
):
    grant = patient_signer.sign(patient, "Grant", _grant_message(record, doctor, in_a_day, 0, deadline, issued))
    consent = patient_signer.sign(patient, "Consent", _consent_message(record, researcher, in_a_day, 0, deadline, issued))
    access.pause(sender=guardian)
    with ape.reverts(access.EnforcedPause):
        access.grantAccessBySig(record, doctor, in_a_day, 0, issued, deadline, grant, sender=stranger)
    with ape.reverts(access.EnforcedPause):
        access.setConsentBySig(record, researcher, in_a_day, 0, issued, deadline, consent, sender=stranger)
    withdraw = patient_signer.sign(patient, "Consent", _consent_message(record, researcher, 0, 1, deadline, issued))
    access.setConsentBySig(record, researcher, 0, 1, issued, deadline, withdraw, sender=stranger)


def test_typehashes_match_the_documented_types(access):
    assert access.GRANT_TYPEHASH() == keccak(
        text="Grant(bytes32 record,address grantee,uint64 expiry,uint256 nonce,uint64 issuedBlock,uint256 deadline)"
    )
    assert access.CONSENT_TYPEHASH() == keccak(
        text="Consent(bytes32 record,address researcher,uint64 expiry,uint256 nonce,uint64 issuedBlock,"
        "uint256 deadline)"
    )
