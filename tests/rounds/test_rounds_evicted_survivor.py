"""A secure round whose survivor is evicted before the commit (issue 18, item 3): the sum holds its
input and cannot leave it out, so the registry refuses the commit and the coordinator cancels the
round at its deadline, saying why; the verifier passes the cancelled round.

Real anvil, real store, the library's nodes and coordinator in one process (as test_rounds_secure).
"""

from offchain.rounds.coordinator import Coordinator
from offchain.rounds.participant import HospitalNode
from offchain.rounds.verifier import verify_study

from fl.data import federated_breast_cancer

from .test_rounds_secure import secure_study


def test_a_survivor_evicted_before_the_commit_cancels_the_round(consortium, chain):
    hospitals = consortium.hospitals
    study = secure_study(consortium, hospitals, 2)
    logs: list[str] = []
    coordinator = Coordinator(consortium.coordinator, study, target_rounds=1, log=logs.append)
    shares = federated_breast_cancer(len(hospitals)).hospitals
    nodes = [HospitalNode(member, study, share, log=logs.append) for member, share in zip(hospitals, shares)]
    rounds = consortium.coordinator.rounds
    evicted = hospitals[1].address
    step = None
    for _ in range(40):
        for node in nodes:
            node.step()
        if rounds.study(study).round_count and rounds.round(study, 1).update_count == len(hospitals) \
                and consortium.access.rolesOf(evicted) & 1 << 8:
            # Every masked input is in: the survivors are fixed, and one of them loses its role.
            consortium.access.revokeRole(consortium.access.PARTICIPANT_ROLE(), evicted, sender=consortium.admin)
        step = coordinator.step()
        if step.action in ("committed", "cancelled") or "lost the participant role" in step.detail:
            break
    assert step.action == "waiting" and evicted in step.detail, (step, logs)
    assert rounds.round(study, 1).state == "open"  # nothing was committed without its input
    chain.mine(timestamp=rounds.round(study, 1).deadline + 1)
    step = coordinator.step()
    assert step.action == "cancelled" and f"survivor {evicted} lost the participant role" in step.detail, (step, logs)
    assert rounds.round(study, 1).state == "cancelled"
    (verdict,) = verify_study(consortium.auditor, study)
    assert verdict.verified and verdict.state == "cancelled", verdict
