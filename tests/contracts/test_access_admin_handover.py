"""Two-step admin handover: an admin proposes its successor, who accepts; nothing changes hands before."""

import ape
import pytest

ZERO = "0x0000000000000000000000000000000000000000"


@pytest.fixture
def admin_role(access):
    return access.DEFAULT_ADMIN_ROLE()


def test_the_successor_takes_the_seat_only_when_it_accepts(access, admin, admin_role, doctor, stranger):
    tx = access.proposeAdminHandover(stranger, sender=admin)
    assert tx.events == [access.AdminHandoverProposed(admin, stranger)]
    assert access.pendingAdminHandover() == (admin.address, stranger.address)
    assert access.hasRole(admin_role, admin) and not access.hasRole(admin_role, stranger)

    tx = access.acceptAdminHandover(sender=stranger)
    assert tx.events == [
        access.RoleGranted(admin_role, stranger, stranger),
        access.RoleRevoked(admin_role, admin, stranger),
        access.AdminHandedOver(admin, stranger),
    ]
    assert access.getRoleMembers(admin_role) == [stranger.address]
    assert (access.rolesOf(admin), access.rolesOf(stranger)) == (0, 1)
    assert access.pendingAdminHandover() == (ZERO, ZERO)
    with ape.reverts(access.AccessControlUnauthorizedAccount, account=admin, neededRole=admin_role):
        access.grantRole(access.DOCTOR_ROLE(), admin, sender=admin)
    access.revokeRole(access.DOCTOR_ROLE(), doctor, sender=stranger)
    # The new admin is the last one: the guard against an unmanageable consortium still holds.
    with ape.reverts(access.LastAdmin, account=stranger):
        access.renounceRole(admin_role, stranger, sender=stranger)


def test_only_the_named_successor_accepts(access, admin, doctor, stranger):
    with ape.reverts(access.NotPendingAdmin, account=stranger):
        access.acceptAdminHandover(sender=stranger)  # nothing pending
    access.proposeAdminHandover(stranger, sender=admin)
    for other in (doctor, admin):
        with ape.reverts(access.NotPendingAdmin, account=other):
            access.acceptAdminHandover(sender=other)
    assert access.pendingAdminHandover() == (admin.address, stranger.address)


def test_proposal_refusals(access, admin, admin_role, guardian, stranger):
    with ape.reverts(access.AccessControlUnauthorizedAccount, account=stranger, neededRole=admin_role):
        access.proposeAdminHandover(stranger, sender=stranger)
    with ape.reverts(access.AccessControlUnauthorizedAccount, account=guardian, neededRole=admin_role):
        access.proposeAdminHandover(ZERO, sender=guardian)
    with ape.reverts(access.InvalidNewAdmin, account=admin):
        access.proposeAdminHandover(admin, sender=admin)
    access.grantRole(admin_role, guardian, sender=admin)
    with ape.reverts(access.InvalidNewAdmin, account=guardian):
        access.proposeAdminHandover(guardian, sender=admin)
    with ape.reverts(access.NoAdminHandover):
        access.proposeAdminHandover(ZERO, sender=admin)
    assert access.pendingAdminHandover() == (ZERO, ZERO)


def test_a_proposal_is_cancelled_or_replaced(access, admin, admin_role, doctor, stranger):
    """A mistyped successor costs nothing: cancel it (the zero address) or name another."""
    access.proposeAdminHandover(doctor, sender=admin)
    tx = access.proposeAdminHandover(stranger, sender=admin)
    assert tx.events == [access.AdminHandoverCancelled(admin, doctor), access.AdminHandoverProposed(admin, stranger)]
    with ape.reverts(access.NotPendingAdmin, account=doctor):
        access.acceptAdminHandover(sender=doctor)
    # Any admin may cancel, not only the proposer.
    access.grantRole(admin_role, doctor, sender=admin)
    tx = access.proposeAdminHandover(ZERO, sender=doctor)
    assert tx.events == [access.AdminHandoverCancelled(admin, stranger)]
    with ape.reverts(access.NotPendingAdmin, account=stranger):
        access.acceptAdminHandover(sender=stranger)
    assert access.getRoleMembers(admin_role) == [admin.address, doctor.address]


def test_a_removed_admin_cannot_hand_its_seat_on(access, admin, admin_role, guardian, stranger):
    access.grantRole(admin_role, guardian, sender=admin)
    access.proposeAdminHandover(stranger, sender=admin)
    tx = access.revokeRole(admin_role, admin, sender=guardian)
    assert tx.events == [access.RoleRevoked(admin_role, admin, guardian), access.AdminHandoverCancelled(admin, stranger)]
    assert access.pendingAdminHandover() == (ZERO, ZERO)
    access.grantRole(admin_role, admin, sender=guardian)  # re-admitted: the old proposal stays void
    with ape.reverts(access.NotPendingAdmin, account=stranger):
        access.acceptAdminHandover(sender=stranger)
    assert not access.hasRole(admin_role, stranger)


def test_renouncing_voids_the_proposers_handover(access, admin, admin_role, guardian, stranger):
    access.grantRole(admin_role, guardian, sender=admin)
    access.proposeAdminHandover(stranger, sender=admin)
    tx = access.renounceRole(admin_role, admin, sender=admin)
    assert access.AdminHandoverCancelled(admin, stranger) in tx.events
    with ape.reverts(access.NotPendingAdmin, account=stranger):
        access.acceptAdminHandover(sender=stranger)


def test_a_handover_is_proposed_but_not_accepted_while_paused(access, admin, admin_role, guardian, stranger):
    access.pause(sender=guardian)
    access.proposeAdminHandover(stranger, sender=admin)
    with ape.reverts(access.EnforcedPause):
        access.acceptAdminHandover(sender=stranger)
    assert access.pendingAdminHandover() == (admin.address, stranger.address)
    access.unpause(sender=guardian)
    access.acceptAdminHandover(sender=stranger)
    assert access.getRoleMembers(admin_role) == [stranger.address]


def test_the_seat_moves_but_other_roles_stay(access, admin, admin_role, doctor, hospital):
    """The handover moves the admin role only: the old admin's and the successor's other roles stay."""
    access.grantRole(access.GUARDIAN_ROLE(), admin, sender=admin)
    access.proposeAdminHandover(doctor, sender=admin)
    access.acceptAdminHandover(sender=doctor)
    assert access.rolesOf(admin) == 1 << 1  # guardian
    assert access.rolesOf(doctor) == 1 | 1 << 3  # admin, doctor
    assert access.rolesOf(hospital) == 1 << 2
