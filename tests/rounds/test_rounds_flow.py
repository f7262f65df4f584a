"""A study's rounds in one process on the session's anvil: open, train, submit, commit, verify,
and every refusal the issue lists, each through the library the nodes and the CLI use."""


import pytest
import torch

from fl.artifacts import encode_client_model
from fl.aggregation import ClientModel
from offchain.chain.contract import ChainRefusal
from offchain.rounds.coordinator import Coordinator
from offchain.rounds.errors import RoundsError
from offchain.rounds.status import study_status
from offchain.rounds.study import aggregate_bytes
from offchain.rounds.verifier import verify_study
from .tamper import flip_stored_byte


def verdicts(consortium, study):
    """The closed rounds' verdicts."""
    return [verdict for verdict in verify_study(consortium.auditor, study) if verdict.state != "open"]


def test_two_rounds_commit_and_verify(consortium):
    study = consortium.study()
    nodes = consortium.nodes(study)
    assert consortium.run_round(study, nodes) == 1
    assert consortium.run_round(study, nodes) == 2
    rounds = consortium.coordinator.rounds
    latest_round, latest = rounds.latest_model(study)
    assert latest_round == 2 and latest == rounds.round(study, 2).aggregate
    assert rounds.round(study, 2).base_commitment == rounds.round(study, 1).aggregate.commitment()
    results = verdicts(consortium, study)
    assert [(v.round, v.verified, v.updates) for v in results] == [(1, True, 3), (2, True, 3)], results
    lines = study_status(consortium.auditor.study(study)).lines()
    assert "round 2: committed, 3 updates, 3 counted" in "\n".join(lines)
    # Everyone in the study reads the aggregate; a stranger holds no key for it.
    assert consortium.hospitals[0].study(study).model(2).keys() == {"0.weight", "0.bias"}
    with pytest.raises(RoundsError, match="no key for"):
        consortium.stranger.study(study).model(2)


def test_fedadam_state_is_replayed_from_the_chain(consortium):
    study = consortium.study(aggregator="fedadam", params={"learning_rate": 0.05})
    nodes = consortium.nodes(study)
    for _ in range(2):
        consortium.run_round(study, nodes)
    # A fresh verifier re-derives round 2 alone: it must replay round 1 into FedAdam's moments.
    assert [v.verified for v in verify_study(consortium.auditor, study, [2])] == [True]


def test_non_participant_cannot_submit(consortium):
    study = consortium.study()
    Coordinator(consortium.coordinator, study).step()
    view = consortium.stranger.study(study)
    with pytest.raises(ChainRefusal) as refused:
        consortium.stranger.rounds.submit_update(study, 1, view.info.genesis, 10)
    assert refused.value.error in ("NotParticipant", "NotInvited")


def test_participant_cannot_submit_twice_or_after_the_deadline(consortium, chain):
    study = consortium.study(round_seconds=100)
    Coordinator(consortium.coordinator, study).step()
    first, second, *_ = consortium.nodes(study)
    assert first.step().action == "submitted"
    update = consortium.hospitals[0].rounds.updates(study, 1)[0].artifact
    with pytest.raises(ChainRefusal, match="AlreadySubmitted"):
        consortium.hospitals[0].rounds.submit_update(study, 1, update, 10)
    chain.mine(timestamp=chain.pending_timestamp + 200)
    assert second.step().detail == "deadline passed"
    with pytest.raises(ChainRefusal, match="DeadlinePassed"):
        consortium.hospitals[1].rounds.submit_update(study, 1, update, 10)


def test_update_of_a_removed_participant_is_not_counted(consortium):
    study = consortium.study()
    coordinator = Coordinator(consortium.coordinator, study)
    coordinator.step()
    for node in consortium.nodes(study):
        node.step()
    removed = consortium.hospitals[2].address
    consortium.access.revokeRole(consortium.access.PARTICIPANT_ROLE(), removed, sender=consortium.admin)
    try:
        assert coordinator.step().action == "committed"
        info = consortium.auditor.rounds.round(study, 1)
        assert removed not in info.counted_submitters and len(info.counted_submitters) == 2
        assert [v.verified for v in verdicts(consortium, study)] == [True]
    finally:
        consortium.access.grantRole(consortium.access.PARTICIPANT_ROLE(), removed, sender=consortium.admin)


def test_commit_below_quorum_is_refused_and_the_round_cancelled(consortium, chain):
    study = consortium.study(min_updates=3, round_seconds=100)
    coordinator = Coordinator(consortium.coordinator, study)
    coordinator.step()
    nodes = consortium.nodes(study)
    nodes[0].step()
    update = consortium.auditor.rounds.updates(study, 1)
    fake = consortium.coordinator.study(study).info.genesis
    with pytest.raises(ChainRefusal, match="QuorumNotMet"):
        consortium.coordinator.rounds.commit_aggregate(study, 1, [u.participant for u in update], fake)
    assert coordinator.step().action == "waiting"
    chain.mine(timestamp=chain.pending_timestamp + 200)
    assert coordinator.step().action == "cancelled"
    # The next round starts from the same base: the genesis model.
    assert coordinator.step().action == "opened"
    assert consortium.auditor.rounds.round(study, 2).base_commitment == fake.commitment()
    assert [v.line() for v in verdicts(consortium, study)][0] == "round 1: cancelled"


def test_round_on_a_wrong_base_is_refused(consortium):
    study = consortium.study()
    consortium.run_round(study)
    rounds = consortium.coordinator.rounds
    genesis = rounds.study(study).genesis
    with pytest.raises(ChainRefusal, match="StaleBase"):
        rounds.open_round(study, genesis, rounds.now() + 600, [])


def _tamper(consortium, cid):
    """Flip a byte of ``cid``'s content on disk, as a store that lost or altered data would."""
    flip_stored_byte(consortium.coordinator.store, cid)


def test_tampered_update_in_the_store_fails_verification(consortium):
    study = consortium.study()
    consortium.run_round(study)
    update = consortium.auditor.rounds.updates(study, 1)[1].artifact
    _tamper(consortium, update.cid)
    (verdict,) = verdicts(consortium, study)
    assert (verdict.verified, verdict.failed_check) == (False, "updates"), verdict


def test_tampered_aggregate_in_the_store_fails_verification(consortium):
    study = consortium.study()
    consortium.run_round(study)
    _tamper(consortium, consortium.auditor.rounds.round(study, 1).aggregate.cid)
    (verdict,) = verdicts(consortium, study)
    assert (verdict.verified, verdict.failed_check) == (False, "aggregate"), verdict


def test_aggregate_that_differs_from_its_updates_fails_verification(consortium):
    study = consortium.study()
    coordinator = Coordinator(consortium.coordinator, study)
    coordinator.step()
    for node in consortium.nodes(study):
        node.step()
    view = consortium.coordinator.study(study)
    updates = consortium.coordinator.rounds.updates(study, 1)
    # A dishonest coordinator commits the genesis model nudged, sealed and hashed correctly.
    forged = {name: tensor + 0.01 for name, tensor in view.model(0).items()}
    ref = view.seal_aggregate(1, aggregate_bytes(study, 1, forged))
    consortium.coordinator.rounds.commit_aggregate(study, 1, [u.participant for u in updates], ref)
    (verdict,) = verdicts(consortium, study)
    assert (verdict.verified, verdict.failed_check) == (False, "rederive"), verdict


def _submit_malformed(consortium, study, hospital, plaintext_of):
    """``hospital`` seals and submits the bytes ``plaintext_of(view)`` as its round-1 update."""
    view = hospital.study(study)
    hospital.rounds.submit_update(study, 1, view.seal_update(1, plaintext_of(view)), 10)


def test_malformed_updates_are_rejected_and_the_round_commits(consortium):
    study = consortium.study(min_updates=2)
    coordinator = Coordinator(consortium.coordinator, study)
    coordinator.step()
    bad = consortium.hospitals[0]
    # For another round (a replay), sealed correctly: the coordinator refuses it, the rest commit.
    replayed = lambda view: encode_client_model(ClientModel(bad.address, view.model(0), 10), 7)  # noqa: E731
    _submit_malformed(consortium, study, bad, replayed)
    for node in consortium.nodes(study)[1:]:
        node.step()
    assert coordinator.step().action == "committed"
    info = consortium.auditor.rounds.round(study, 1)
    assert info.rejected_submitters == (bad.address,)
    assert set(info.counted_submitters) == {h.address for h in consortium.hospitals[1:]}
    assert [(v.verified, v.updates) for v in verdicts(consortium, study)] == [(True, 2)]


@pytest.mark.parametrize("malformed", ["wrong shape", "not a client update", "not finite"])
def test_each_kind_of_malformed_update_is_rejected(consortium, malformed):
    study = consortium.study(min_updates=2)
    coordinator = Coordinator(consortium.coordinator, study)
    coordinator.step()
    bad = consortium.hospitals[1]

    def plaintext(view):
        model = view.model(0)
        if malformed == "wrong shape":
            model["0.weight"] = torch.zeros(1, 29)
        elif malformed == "not finite":
            model["0.bias"] = torch.tensor([float("nan")])
        else:
            return aggregate_bytes(study, 1, model)
        return encode_client_model(ClientModel(bad.address, model, 10), 1)

    _submit_malformed(consortium, study, bad, plaintext)
    nodes = consortium.nodes(study)
    for node in (nodes[0], nodes[2]):
        node.step()
    assert coordinator.step().action == "committed"
    assert consortium.auditor.rounds.round(study, 1).rejected_submitters == (bad.address,)
    assert [v.verified for v in verdicts(consortium, study)] == [True]


def test_coordinator_rejecting_a_well_formed_update_fails_verification(consortium):
    study = consortium.study(min_updates=2)
    coordinator = Coordinator(consortium.coordinator, study)
    coordinator.step()
    for node in consortium.nodes(study):
        node.step()
    view = consortium.coordinator.study(study)
    updates = consortium.coordinator.rounds.updates(study, 1)
    good, kept = updates[0], updates[1:]
    # A dishonest coordinator drops a good update, calling it malformed, and commits the rest honestly.
    aggregation = coordinator.aggregation
    plaintext = aggregation.aggregate(1, 0, kept)
    ref = view.seal_aggregate(1, plaintext)
    consortium.coordinator.rounds.commit_aggregate(study, 1, [u.participant for u in updates], ref,
                                                   rejected=[good.participant])
    (verdict,) = verdicts(consortium, study)
    assert (verdict.verified, verdict.failed_check) == (False, "rejections"), verdict
    assert good.participant in verdict.detail


def test_round_whose_quorum_rests_on_malformed_updates_is_cancelled(consortium, chain):
    study = consortium.study(min_updates=3, round_seconds=100)
    coordinator = Coordinator(consortium.coordinator, study)
    coordinator.step()
    bad = consortium.hospitals[2]
    _submit_malformed(consortium, study, bad, lambda view: b"not safetensors at all")
    for node in consortium.nodes(study)[:2]:
        node.step()
    # Three updates, the quorum, but one is malformed: the contract would refuse a cancel without the
    # rejection, and a commit with it.
    assert coordinator.step().action == "waiting"
    chain.mine(timestamp=chain.pending_timestamp + 200)
    assert coordinator.step().action == "cancelled"
    info = consortium.auditor.rounds.round(study, 1)
    assert (info.state, info.rejected_submitters) == ("cancelled", (bad.address,))
    assert [v.line() for v in verdicts(consortium, study)] == ["round 1: cancelled"]
    assert coordinator.step().action == "opened"


def test_a_round_opens_with_a_readable_deadline(consortium):
    from offchain.inputs import show_time
    from offchain.rounds.coordinator import open_next_round

    study = consortium.study()
    lines: list[str] = []
    number = open_next_round(consortium.coordinator.study(study), lines.append)
    deadline = consortium.coordinator.rounds.round(study, number).deadline
    (line,) = lines
    assert f"deadline {show_time(deadline)}" in line and " UTC (Unix " in line, line


def test_a_study_whose_rounds_outlast_the_registry_sends_no_opening(consortium, chain):
    from offchain.rounds.coordinator import open_next_round

    study = consortium.study(round_seconds=400 * 86_400)
    height = chain.blocks.height
    with pytest.raises(RoundsError, match="can never open a round"):
        open_next_round(consortium.coordinator.study(study), print)
    with pytest.raises(RoundsError, match="can never open a round"):
        Coordinator(consortium.coordinator, study).step()
    assert chain.blocks.height == height
