"""Consortium roles: membership, the packed roles bitmap, pause, and role removal taking effect at once."""

import ape
import pytest
from eth_utils import keccak

from conftest import make_cid, role_members
from offchain.chain.roles import Role

ZERO = "0x0000000000000000000000000000000000000000"
ROLE_NAMES = [
    "GUARDIAN_ROLE",
    "DATA_OWNER_ROLE",
    "DOCTOR_ROLE",
    "RESEARCHER_ROLE",
    "PATIENT_ROLE",
    "EMERGENCY_ROLE",
    "COORDINATOR_ROLE",
    "PARTICIPANT_ROLE",
]


@pytest.mark.parametrize("name", ROLE_NAMES)
def test_role_ids_are_hashes_of_their_names(access, name):
    assert getattr(access, name)() == keccak(text=name)


def test_deployer_named_admin_holds_admin_role_only(access, admin):
    assert access.hasRole(access.DEFAULT_ADMIN_ROLE(), admin)
    assert access.rolesOf(admin) == 1
    assert role_members(access, Role.ADMIN) == [admin.address]
    assert access.totalAdmins() == 1


def test_constructor_refuses_zero_admin(project, access, admin):
    with ape.reverts(access.ZeroAddressMember):
        admin.deploy(project.MedicalAccess, ZERO)


def test_roles_bitmap_follows_grants_and_revocations(access, admin, stranger):
    bits = {name: 1 << (i + 1) for i, name in enumerate(ROLE_NAMES)}
    expected = 0
    for name in ROLE_NAMES:
        tx = access.grantRole(getattr(access, name)(), stranger, sender=admin)
        assert tx.events == [access.RoleGranted(getattr(access, name)(), stranger, admin)]
        expected |= bits[name]
        assert access.rolesOf(stranger) == expected
    for name in ROLE_NAMES:
        tx = access.revokeRole(getattr(access, name)(), stranger, sender=admin)
        assert tx.events == [access.RoleRevoked(getattr(access, name)(), stranger, admin)]
        expected &= ~bits[name]
        assert access.rolesOf(stranger) == expected
    assert expected == 0


def test_members_are_listed_per_role_from_events(access, doctor, stranger, admin):
    role = access.DOCTOR_ROLE()
    access.grantRole(role, stranger, sender=admin)
    assert role_members(access, Role.DOCTOR) == [doctor.address, stranger.address]
    access.revokeRole(role, doctor, sender=admin)
    assert role_members(access, Role.DOCTOR) == [stranger.address]
    access.grantRole(role, doctor, sender=admin)  # back, after the member who stayed
    assert role_members(access, Role.DOCTOR) == [stranger.address, doctor.address]
    assert access.rolesOf(doctor) & (1 << 3)


def test_admins_are_counted_on_chain(access, admin, doctor, stranger, hospital, other_hospital):
    admin_role = access.DEFAULT_ADMIN_ROLE()
    access.grantRole(admin_role, doctor, sender=admin)
    access.grantRole(admin_role, doctor, sender=admin)  # no change: counted once
    assert access.totalAdmins() == 2
    access.revokeRole(admin_role, stranger, sender=admin)  # not an admin: no change
    assert access.totalAdmins() == 2
    access.renounceRole(admin_role, admin, sender=admin)
    assert access.totalAdmins() == 1
    with ape.reverts(access.LastAdmin, account=doctor):
        access.renounceRole(admin_role, doctor, sender=doctor)
    # Data owners are counted too, their ids naming their accounts for good.
    owners = [access.dataOwnerAt(i) for i in range(1, access.dataOwnerCount() + 1)]
    assert hospital.address in owners and other_hospital.address in owners
    assert access.dataOwnerAt(access.dataOwnerCount() + 1) == "0x" + "00" * 20


def test_only_admin_grants_and_revokes(access, doctor, stranger):
    role = access.DOCTOR_ROLE()
    with ape.reverts(access.AccessControlUnauthorizedAccount, account=doctor, neededRole=access.DEFAULT_ADMIN_ROLE()):
        access.grantRole(role, stranger, sender=doctor)
    with ape.reverts(access.AccessControlUnauthorizedAccount, account=doctor, neededRole=access.DEFAULT_ADMIN_ROLE()):
        access.revokeRole(role, doctor, sender=doctor)
    assert not access.hasRole(role, stranger)


def test_unknown_role_and_zero_address_are_refused(access, admin, stranger):
    made_up = keccak(text="JANITOR_ROLE")
    with ape.reverts(access.UnknownRole, role=made_up):
        access.grantRole(made_up, stranger, sender=admin)
    with ape.reverts(access.ZeroAddressMember):
        access.grantRole(access.DOCTOR_ROLE(), ZERO, sender=admin)


def test_guardian_pauses_and_unpauses(access, guardian, admin, stranger):
    with ape.reverts(access.AccessControlUnauthorizedAccount, account=admin, neededRole=access.GUARDIAN_ROLE()):
        access.pause(sender=admin)
    tx = access.pause(sender=guardian)
    assert tx.events == [access.Paused(guardian)]
    assert access.paused()
    with ape.reverts(access.EnforcedPause):
        access.pause(sender=guardian)
    with ape.reverts(access.EnforcedPause):
        access.grantRole(access.DOCTOR_ROLE(), stranger, sender=admin)
    tx = access.unpause(sender=guardian)
    assert tx.events == [access.Unpaused(guardian)]
    with ape.reverts(access.ExpectedPause):
        access.unpause(sender=guardian)


def test_role_removal_works_while_paused(access, guardian, admin, doctor):
    access.pause(sender=guardian)
    access.revokeRole(access.DOCTOR_ROLE(), doctor, sender=admin)
    assert access.rolesOf(doctor) == 0


def test_evicting_the_only_guardian_while_paused_does_not_pause_for_good(access, guardian, admin, stranger):
    access.pause(sender=guardian)
    access.revokeRole(access.GUARDIAN_ROLE(), guardian, sender=admin)
    assert role_members(access, Role.GUARDIAN) == []
    with ape.reverts(access.EnforcedPause):
        access.grantRole(access.DOCTOR_ROLE(), stranger, sender=admin)
    tx = access.grantRole(access.GUARDIAN_ROLE(), stranger, sender=admin)
    assert tx.events == [access.RoleGranted(access.GUARDIAN_ROLE(), stranger, admin)]
    assert access.rolesOf(stranger) == 1 << 1
    access.unpause(sender=stranger)
    assert not access.paused()


def test_renouncing_for_someone_else_is_refused(access, doctor, stranger):
    with ape.reverts(access.AccessControlBadConfirmation):
        access.renounceRole(access.DOCTOR_ROLE(), doctor, sender=stranger)
    assert access.hasRole(access.DOCTOR_ROLE(), doctor)


def test_losing_doctor_role_ends_access_at_once_and_for_good(access, admin, hospital, doctor, record, in_a_day):
    access.grantAccess(record, doctor, in_a_day, sender=hospital)
    assert access.checkAccess(doctor, record)
    access.revokeRole(access.DOCTOR_ROLE(), doctor, sender=admin)
    assert not access.checkAccess(doctor, record)
    access.grantRole(access.DOCTOR_ROLE(), doctor, sender=admin)
    assert not access.checkAccess(doctor, record), "re-admission must not revive old grants"
    assert access.grantOf(record, doctor) == (0, 0, 0)
    access.grantAccess(record, doctor, in_a_day, sender=hospital)
    assert access.checkAccess(doctor, record)


def test_what_was_given_in_the_block_of_the_role_loss_is_void(access, admin, doctor, researcher, in_a_day):
    """Role losses are compared with grants, consents and break-glass openings by block, so what was
    given in the very block of the loss (here: the same transaction, before the loss) stays void after
    re-admission. The admin acts as owner, patient and emergency user to do it all in one multicall."""
    for role in ("DATA_OWNER_ROLE", "PATIENT_ROLE", "EMERGENCY_ROLE"):
        access.grantRole(getattr(access, role)(), admin, sender=admin)
    record = access.registerRecord(make_cid(5), admin, sender=admin).return_value
    losses = [(access.DOCTOR_ROLE(), doctor), (access.RESEARCHER_ROLE(), researcher), (access.EMERGENCY_ROLE(), admin)]
    access.multicall(
        [
            access.grantAccess.encode_input(record, doctor, in_a_day),
            access.setConsent.encode_input(record, researcher, in_a_day),
            access.openEmergencyAccess.encode_input(record, b"\x01" * 32, 3600),
            *(access.revokeRole.encode_input(role, member) for role, member in losses),
        ],
        sender=admin,
    )
    for role, member in losses:
        access.grantRole(role, member, sender=admin)
    access.grantAccess(record, researcher, in_a_day, sender=admin)  # the owner's grant: consent still needed
    for reader in (doctor, researcher, admin):
        assert not access.checkAccess(reader, record), reader
    assert access.grantOf(record, doctor) == (0, 0, 0)
    assert access.grantOf(record, researcher) == (in_a_day, 0, 0)
    assert access.grantOf(record, admin) == (0, 0, 0)


def test_losing_a_role_that_is_not_a_reading_role_keeps_grants(access, admin, hospital, doctor, record, in_a_day):
    access.grantRole(access.PARTICIPANT_ROLE(), doctor, sender=admin)
    access.grantAccess(record, doctor, in_a_day, sender=hospital)
    access.revokeRole(access.PARTICIPANT_ROLE(), doctor, sender=admin)
    assert access.checkAccess(doctor, record)


def test_renouncing_a_reading_role_voids_grants(access, hospital, doctor, record, in_a_day):
    access.grantAccess(record, doctor, in_a_day, sender=hospital)
    access.renounceRole(access.DOCTOR_ROLE(), doctor, sender=doctor)
    assert not access.checkAccess(doctor, record)


def test_losing_researcher_role_voids_consent_too(access, admin, patient, researcher, record, in_a_day):
    access.grantAccess(record, researcher, in_a_day, sender=patient)
    assert access.checkAccess(researcher, record)
    access.revokeRole(access.RESEARCHER_ROLE(), researcher, sender=admin)
    access.grantRole(access.RESEARCHER_ROLE(), researcher, sender=admin)
    assert access.grantOf(record, researcher) == (0, 0, 0)


def test_losing_data_owner_role_ends_every_owner_power(access, admin, hospital, patient, doctor, record, in_a_day):
    access.grantAccess(record, doctor, in_a_day, sender=hospital)
    role = access.DATA_OWNER_ROLE()
    access.revokeRole(role, hospital, sender=admin)
    refused = access.AccessControlUnauthorizedAccount
    with ape.reverts(refused, account=hospital, neededRole=role):
        access.grantAccess(record, doctor, in_a_day, sender=hospital)
    with ape.reverts(refused, account=hospital, neededRole=role):
        access.rotateRecord(record, make_cid(2), sender=hospital)
    with ape.reverts(refused, account=hospital, neededRole=role):
        access.registerRecord(make_cid(3), patient, sender=hospital)
    # Reducing access needs no role: the evicted owner can still take back what it gave
    # (tests/contracts/test_access_reductions_without_role.py covers every reduction).
    access.revokeAccess(record, doctor, sender=hospital)
    assert not access.checkAccess(doctor, record)
    # Re-admitted, the hospital gets its records back (its owner id never changes).
    access.grantRole(role, hospital, sender=admin)
    access.grantAccess(record, doctor, in_a_day, sender=hospital)
    assert access.ownerOf(record) == hospital


def test_losing_patient_role_ends_patient_powers(access, admin, hospital, patient, researcher, record, in_a_day):
    role = access.PATIENT_ROLE()
    access.revokeRole(role, patient, sender=admin)
    refused = access.AccessControlUnauthorizedAccount
    with ape.reverts(refused, account=patient, neededRole=role):
        access.grantAccess(record, researcher, in_a_day, sender=patient)
    with ape.reverts(refused, account=patient, neededRole=role):
        access.setConsent(record, researcher, in_a_day, sender=patient)
    with ape.reverts(access.PatientNotEnrolled, patient=patient):
        access.registerRecord(make_cid(4), patient, sender=hospital)


def test_supports_access_control_interface_not_enumerable(access):
    # IAccessControl's interface id; IAccessControlEnumerable's is not claimed (members come from events).
    assert not access.supportsInterface(bytes.fromhex("5a05180f"))
    assert access.supportsInterface(bytes.fromhex("7965db0b"))
    assert not access.supportsInterface(bytes.fromhex("ffffffff"))
