"""Two-step admin handover: an admin proposes its successor, who accepts; nothing changes hands before."""

import ape
import pytest

from conftest import role_members
from offchain.chain.roles import Role

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
    assert role_members(access, Role.ADMIN) == [stranger.address]
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
    assert role_members(access, Role.ADMIN) == [admin.address, doctor.address]


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
    assert role_members(access, Role.ADMIN) == [stranger.address]


def test_the_seat_moves_but_other_roles_stay(access, admin, admin_role, doctor, hospital):
    """The handover moves the admin role only: the old admin's and the successor's other roles stay."""
    access.grantRole(access.GUARDIAN_ROLE(), admin, sender=admin)
    access.proposeAdminHandover(doctor, sender=admin)
    access.acceptAdminHandover(sender=doctor)
    assert access.rolesOf(admin) == 1 << 1  # guardian
    assert access.rolesOf(doctor) == 1 | 1 << 3  # admin, doctor
    assert access.rolesOf(hospital) == 1 << 2


# -- the library and `medshare members handover` ----------------------------------------------------


def test_the_library_checks_before_it_sends(access, admin, guardian, doctor, stranger):
    from offchain.chain.access import AccessClient
    from offchain.errors import InvalidInput
    from offchain.members import (
        AdminHandover,
        HandoverRefused,
        NotAdmin,
        accept_admin_handover,
        cancel_admin_handover,
        pending_admin_handover,
        propose_admin_handover,
    )

    by_admin, by_stranger = AccessClient(access, admin), AccessClient(access, stranger)
    with pytest.raises(NotAdmin):
        propose_admin_handover(by_stranger, doctor.address)
    with pytest.raises(HandoverRefused, match="is a consortium admin already"):
        propose_admin_handover(by_admin, admin.address)
    with pytest.raises(InvalidInput, match="zero address"):
        propose_admin_handover(by_admin, ZERO)
    with pytest.raises(InvalidInput, match="not an Ethereum address"):
        propose_admin_handover(by_admin, "0x1234")
    with pytest.raises(HandoverRefused, match="no admin handover is pending"):
        cancel_admin_handover(by_admin)
    with pytest.raises(HandoverRefused, match=f"no admin handover is proposed to {stranger.address}"):
        accept_admin_handover(by_stranger)
    assert by_admin.sent == [] and by_stranger.sent == []  # every refusal above was local

    assert propose_admin_handover(by_admin, doctor.address) == AdminHandover(admin.address, doctor.address)
    with pytest.raises(HandoverRefused, match=f"the pending one names {doctor.address}"):
        accept_admin_handover(by_stranger)
    assert cancel_admin_handover(by_admin) == AdminHandover(admin.address, doctor.address)
    assert pending_admin_handover(by_admin) is None

    propose_admin_handover(by_admin, stranger.address)
    access.pause(sender=guardian)
    with pytest.raises(HandoverRefused, match="paused"):
        accept_admin_handover(by_stranger)
    access.unpause(sender=guardian)
    assert accept_admin_handover(by_stranger) == AdminHandover(admin.address, stranger.address)
    assert role_members(access, Role.ADMIN) == [stranger.address]
    assert len(by_admin.sent) == 3 and len(by_stranger.sent) == 1


def test_the_handover_commands(access, admin, stranger):
    from click.testing import CliRunner

    from offchain.cli import main

    def medshare(account: int, *args: str, ok: bool = True) -> str:
        full = ["members", "handover", *args, "--account", f"TEST::{account}", "--contract", access.address]
        result = CliRunner().invoke(main, full)
        assert (result.exit_code == 0) == ok, result.output
        assert "Traceback" not in result.output
        return result.output

    assert "no admin handover is pending" in medshare(0, "show")
    proposed = medshare(0, "propose", stranger.address)
    assert f"{admin.address} proposed {stranger.address} as its successor" in proposed and "tx 0x" in proposed
    assert f"{admin.address} proposes {stranger.address}" in medshare(9, "show")
    refused = medshare(9, "propose", admin.address, ok=False)
    assert "is not a consortium admin" in refused and len(refused.strip().splitlines()) == 1
    accepted = medshare(9, "accept")
    assert f"{stranger.address} holds the admin role; {admin.address} no longer does" in accepted
    assert "no admin handover is proposed" in medshare(9, "accept", ok=False)
    assert "not an Ethereum address" in medshare(9, "propose", "0x12", ok=False)
