"""The library pieces the demo added, on the session's MedicalAccess: a patient's EIP-712 grant signed
in Python and relayed, a record's audit trail, break-glass; and the demo's cast against README's session."""

import re
from pathlib import Path

import pytest
from eth_utils import keccak

from offchain.chain.access import AccessClient
from offchain.chain.contract import ChainRefusal
from offchain.scenarios.demo import HOSPITALS, OTHERS, PATIENTS, ROLES
from offchain.chain.roles import Role
from offchain.chain.signatures import sign_grant

README = Path(__file__).resolve().parents[1] / "README.md"


def test_a_grant_the_patient_signs_in_python_is_relayed_by_anyone(access, record, patient, doctor, stranger, in_a_day):
    signed = sign_grant(patient, AccessClient(access, patient), record, doctor.address, in_a_day)
    assert not access.checkAccess(doctor, record)
    relayer = AccessClient(access, stranger)
    relayer.grant_by_signature(signed, 1, [])
    assert access.checkAccess(doctor, record)
    granted = [entry for entry in relayer.audit_trail(record) if entry.event == "AccessGranted"]
    assert [(entry.account, entry.fields["grantedBy"]) for entry in granted] == [(doctor.address, patient.address)]
    assert granted[0].tx_hash == relayer.sent[-1].tx_hash
    with pytest.raises(ChainRefusal) as replay:
        relayer.grant_by_signature(signed, 1, [])
    assert replay.value.error == "NonceAlreadyUsed"


def test_a_grant_signed_by_anyone_but_the_patient_is_refused(access, record, hospital, doctor, in_a_day):
    forged = sign_grant(hospital, AccessClient(access, hospital), record, doctor.address, in_a_day)
    with pytest.raises(ChainRefusal) as refusal:
        AccessClient(access, hospital).grant_by_signature(forged, 1, [])
    assert refusal.value.error == "InvalidPatientSignature"
    assert not access.checkAccess(doctor, record)


def test_break_glass_returns_its_end_and_the_audit_trail_shows_opening_and_read(access, record, medic, chain):
    client = AccessClient(access, medic)
    until = client.open_emergency_access(record, keccak(text="unconscious, allergies unknown"), 3600)
    assert until == client.grant_of(record, medic.address).emergency_expiry
    assert until == chain.blocks.head.timestamp + 3600
    client.log_access(record)
    trail = client.audit_trail(record)
    assert [(entry.event, entry.account) for entry in trail] == [
        ("EmergencyAccessOpened", medic.address), ("AccessLogged", medic.address)]
    assert trail[0].fields["reasonHash"] == keccak(text="unconscious, allergies unknown")
    assert trail[0].block < trail[1].block


def test_the_demo_gives_readme_s_accounts_the_roles_readme_s_session_gives_them(accounts):
    session = [(Role.parse(role), address) for role, address in
               re.findall(r"ape run members add ([a-z-]+) (0x[0-9a-fA-F]{40})", README.read_text())]
    cli_session = session[:3]  # the first session: a hospital, a doctor, a patient
    assert [role for role, _ in cli_session] == [Role.DATA_OWNER, Role.DOCTOR, Role.PATIENT]
    cast = {accounts[index].address: name for name, index in {**HOSPITALS, **PATIENTS, **OTHERS}.items()}
    for role, address in cli_session:
        assert address in cast, f"README's {address} plays no part in the demo"
        assert role in ROLES[cast[address]], f"the demo's {cast[address]} lacks README's {role.label}"
