"""What MedicalAccess tells the round registry: which of a list hold a role, and whether a
federated-learning role was lost since."""

import ape


def test_holders_of_a_list(access, admin, hospital, doctor, researcher, stranger):
    doctor_bit, researcher_bit, owner_bit = 1 << 3, 1 << 4, 1 << 2
    members = [doctor, stranger, researcher, hospital, doctor]
    assert access.holdersOf(members, doctor_bit) == 0b10001
    assert access.holdersOf(members, doctor_bit | researcher_bit) == 0b10101
    assert access.holdersOf(members, owner_bit) == 0b01000
    assert access.holdersOf([], doctor_bit) == 0
    assert access.holdersOf([stranger] * 256, doctor_bit) == 0
    assert access.holdersOf([doctor] * 256, doctor_bit) == (1 << 256) - 1
    with ape.reverts(access.TooManyAccounts, count=257):
        access.holdersOf([doctor] * 257, doctor_bit)


def test_learning_role_losses_count_only_coordinator_and_participant_losses(access, admin, doctor, stranger):
    before = access.learningRoleLosses()
    access.revokeRole(access.DOCTOR_ROLE(), doctor, sender=admin)
    assert access.learningRoleLosses() == before
    access.grantRole(access.PARTICIPANT_ROLE(), stranger, sender=admin)
    access.grantRole(access.COORDINATOR_ROLE(), stranger, sender=admin)
    assert access.learningRoleLosses() == before
    access.revokeRole(access.PARTICIPANT_ROLE(), stranger, sender=admin)
    assert access.learningRoleLosses() == before + 1
    access.revokeRole(access.PARTICIPANT_ROLE(), stranger, sender=admin)  # held no more: nothing lost
    assert access.learningRoleLosses() == before + 1
    access.renounceRole(access.COORDINATOR_ROLE(), stranger, sender=stranger)
    assert access.learningRoleLosses() == before + 2
