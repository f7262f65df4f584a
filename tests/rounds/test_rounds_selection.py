"""Dynamic node selection: the coordinator invites the live participants with the most samples, the
registry records the invitation and refuses anyone else."""

import pytest

from offchain.chain.contract import ChainRefusal
from offchain.rounds.coordinator import Coordinator
from offchain.rounds.errors import RoundsError
from offchain.rounds.selection import select_participants


def test_a_participant_that_missed_the_last_round_is_not_invited(consortium, chain):
    study = consortium.study(min_updates=2, round_seconds=100)
    late = consortium.hospitals[2]
    coordinator = Coordinator(consortium.coordinator, study, select=2, target_rounds=2)
    # Round 1: no record yet, so two are invited by config order; here all three are (the default).
    assert Coordinator(consortium.coordinator, study, target_rounds=1).step().action == "opened"
    nodes = consortium.nodes(study)
    for node in nodes[:2]:
        assert node.step().action == "submitted"
    assert coordinator.step().action == "waiting"  # hospital 3 may still submit until the deadline
    chain.mine(timestamp=chain.pending_timestamp + 200)
    assert nodes[2].step().detail == "deadline passed"
    step = coordinator.step()
    assert step.action == "committed", step  # and round 2 opened, inviting the two live hospitals
    rounds = consortium.auditor.rounds
    info = rounds.round(study, 2)
    assert set(info.invited) == {h.address for h in consortium.hospitals[:2]}
    assert not rounds.round_for(study, 2, late.address).invited
    assert nodes[2].step().detail == "not invited"
    view = late.study(study)
    with pytest.raises(ChainRefusal, match="NotInvited"):
        late.rounds.submit_update(study, 2, view.info.genesis, 10)
    for node in nodes[:2]:
        assert node.step().action == "submitted"
    assert coordinator.step().action == "committed"
    assert rounds.round(study, 2).counted_submitters == info.invited


def test_selection_prefers_more_samples_and_fills_up_with_missed_ones(consortium):
    study = consortium.study(min_updates=1)
    # Everyone submits round 1 with different sample counts (the bundled shares differ in size).
    consortium.run_round(study)
    view = consortium.coordinator.study(study)
    updates = consortium.coordinator.rounds.updates(study, 1)
    by_samples = sorted(updates, key=lambda u: -u.samples)
    assert select_participants(view, 1) == [by_samples[0].participant]
    assert len(select_participants(view, 3)) == 3
    with pytest.raises(RoundsError, match="at least 1"):
        select_participants(view, 0)
