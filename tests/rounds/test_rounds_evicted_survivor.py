"""A secure round whose survivor is evicted before the commit (issue 18, item 3): the sum holds its
input and cannot leave it out, so the registry refuses the commit and the coordinator cancels the
round at its deadline, saying why; the verifier passes the cancelled round. One evicted in the
commit's own block, after the commit, fails the verifier's ``roles`` check.

Real anvil, real store, the library's nodes and coordinator in one process (as test_rounds_secure).
"""

import threading
import time

from fl.data import federated_breast_cancer
from fl.secure_aggregation import Phase
from offchain.rounds.client import SecurePhase
from offchain.rounds.coordinator import Coordinator
from offchain.rounds.participant import HospitalNode
from offchain.rounds.secure_board import ChainBulletinBoard
from offchain.rounds.verifier import verify_study

from .test_rounds_secure import secure_study


def secure_round(consortium, hospitals):
    """A secure study of ``hospitals`` (threshold 2): its id, the log, its coordinator (one round), the nodes."""
    study = secure_study(consortium, hospitals, 2)
    logs: list[str] = []
    coordinator = Coordinator(consortium.coordinator, study, target_rounds=1, log=logs.append)
    shares = federated_breast_cancer(len(hospitals)).hospitals
    nodes = [HospitalNode(member, study, share, log=logs.append) for member, share in zip(hospitals, shares)]
    return study, logs, coordinator, nodes


def test_a_survivor_evicted_before_the_commit_cancels_the_round(consortium, chain):
    hospitals = consortium.hospitals
    study, logs, coordinator, nodes = secure_round(consortium, hospitals)
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


def test_a_survivor_evicted_in_the_commits_block_fails_the_verifiers_roles_check(consortium, chain):
    """The registry checks roles when the commit runs; the verifier reads them at the end of the commit's
    block. A survivor evicted later in that same block held its role for the registry, which commits, but
    the chain's state at the commit's block says its input is in the sum while it holds no role: the
    verifier's ``roles`` check fails the round, naming it (before any other check runs)."""
    hospitals = consortium.hospitals
    access = consortium.access
    for member in hospitals:  # the session's consortium: a test before may have evicted one
        if not access.rolesOf(member.address) & 1 << 8:
            access.grantRole(access.PARTICIPANT_ROLE(), member.address, sender=consortium.admin)
    study, logs, coordinator, nodes = secure_round(consortium, hospitals)
    rounds = consortium.coordinator.rounds
    board = ChainBulletinBoard(consortium.coordinator.study(study), 1)
    for _ in range(40):  # every phase but the last closed, every unmasking response posted
        for node in nodes:
            node.step()
        if rounds.study(study).round_count and rounds.round(study, 1).secure_phase is SecurePhase.UNMASKING \
                and len(board.senders(Phase.UNMASKING)) == len(hospitals):
            break
        coordinator.step()
    else:
        raise AssertionError(f"the round never reached its unmasking responses: {logs}")

    evicted = hospitals[1].address
    web3 = chain.provider.web3
    close_selector = bytes(rounds.contract.closeSecurePhase.encode_input(1, 1, 0))[:4]
    web3.provider.make_request("evm_setAutomine", [False])
    try:
        result: dict = {}
        stepping = threading.Thread(target=lambda: result.update(step=coordinator.step()))
        stepping.start()
        revocation = None
        for _ in range(3000):
            pending = web3.provider.make_request("txpool_content", [])["result"]["pending"]
            from_coordinator = [tx for by_sender in pending.values() for tx in by_sender.values()
                                if tx["from"].lower() == consortium.coordinator.address.lower()]
            if from_coordinator and bytes.fromhex(from_coordinator[0]["input"][2:])[:4] == close_selector:
                web3.provider.make_request("evm_mine", [])  # the phase closes in a block of its own
            elif from_coordinator:
                # The commit is pending: the eviction goes after it, in the same block (a lower tip).
                base_fee = web3.eth.get_block("latest")["baseFeePerGas"]
                revocation = web3.eth.send_transaction({
                    "from": consortium.admin.address, "to": access.address, "gas": 300_000,
                    "data": access.revokeRole.encode_input(access.PARTICIPANT_ROLE(), evicted),
                    "maxFeePerGas": 4 * base_fee + 1, "maxPriorityFeePerGas": 0})
                web3.provider.make_request("evm_mine", [])
                break
            time.sleep(0.01)
        else:
            raise AssertionError(f"the coordinator sent no commit: {logs}")
    finally:
        web3.provider.make_request("evm_setAutomine", [True])
    stepping.join(timeout=120)
    assert result["step"].action == "committed", (result, logs)
    receipt = web3.eth.get_transaction_receipt(revocation)
    info = rounds.round(study, 1)
    assert receipt["status"] == 1 and receipt["blockNumber"] == info.closed_block
    assert evicted in info.counted_submitters  # the registry saw the role held when the commit ran
    assert not access.rolesOf(evicted, block_id=info.closed_block) & 1 << 8

    (verdict,) = verify_study(consortium.auditor, study)
    assert not verdict.verified and verdict.failed_check == "roles", verdict
    assert evicted in verdict.detail and "secure sum" in verdict.detail, verdict
    access.grantRole(access.PARTICIPANT_ROLE(), evicted, sender=consortium.admin)  # the session's consortium
