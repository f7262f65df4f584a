"""RoundsClient on anvil: studies and rounds from Python, refusals as ChainRefusal with the error's name."""

import pytest

from conftest import ONE_DAY
from offchain.chain.contract import ChainRefusal
from offchain.ipfs import CID, RAW
from offchain.rounds import ArtifactRef, MissingEvent, RoundsClient, RoundState, StudyTerms


def artifact(n: int) -> ArtifactRef:
    return ArtifactRef(CID.from_digest(1, RAW, n.to_bytes(32, "big")), (n + 7).to_bytes(32, "big"))


GENESIS = artifact(1000)
CONFIG = artifact(999)


@pytest.fixture
def client(rounds):
    """``client(account)``: that account's RoundsClient."""
    return lambda account: RoundsClient(rounds, account)


@pytest.fixture
def study(client, coordinator):
    return client(coordinator).create_study(GENESIS, CONFIG.sha256, CONFIG.cid, StudyTerms(2, 1_000))


def test_artifact_commitment_is_the_contracts(rounds, client, coordinator, study):
    assert rounds.latestModel(study) == (0, GENESIS.commitment())
    with pytest.raises(ValueError, match="32 bytes"):
        ArtifactRef(GENESIS.cid, b"short")


def test_a_study_round_by_round(client, coordinator, hospitals, study, chain):
    runner = client(coordinator)
    assert runner.studies() == [study]
    info = runner.study(study)
    assert (info.coordinator, info.genesis, info.config_digest, info.config_cid) == (
        coordinator.address, GENESIS, CONFIG.sha256, CONFIG.cid)
    assert (info.min_updates, info.round_count, info.latest_round, info.latest_commitment) == (
        2, 0, 0, GENESIS.commitment())
    assert runner.latest_model(study) == (0, GENESIS)

    base = GENESIS
    for round_number in (1, 2):
        deadline = runner.now() + ONE_DAY
        invited = [m.address for m in hospitals[:3]] if round_number == 2 else []
        assert runner.open_round(study, base, deadline, invited) == round_number
        opened = runner.round(study, round_number)
        assert (opened.state, opened.base_round, opened.base_commitment, opened.deadline) == (
            RoundState.OPEN, round_number - 1, base.commitment(), deadline)
        assert opened.invited == tuple(invited) and opened.aggregate is None and opened.update_count == 0

        for index, member in enumerate(hospitals[:3]):
            client(member).submit_update(study, round_number, artifact(10 * round_number + index), 40 + index)
        updates = runner.updates(study, round_number)
        assert [(u.participant, u.index, u.artifact, u.samples) for u in updates] == [
            (m.address, i, artifact(10 * round_number + i), 40 + i) for i, m in enumerate(hospitals[:3])]
        assert runner.round_for(study, round_number, hospitals[1].address).submitted
        assert not runner.round_for(study, round_number, hospitals[3].address).submitted

        aggregate = artifact(100 + round_number)
        runner.commit_aggregate(study, round_number, runner.submitters(study, round_number), aggregate)
        committed = runner.round(study, round_number)
        assert committed.state == "committed" and committed.aggregate == aggregate
        assert committed.counted_submitters == tuple(m.address for m in hospitals[:3]) and committed.update_count == 3
        assert runner.latest_model(study) == (round_number, aggregate)
        base = aggregate
    assert runner.study(study).latest_round == 2


def test_refusals_carry_the_error_name(client, coordinator, hospitals, stranger, study, access, admin):
    runner = client(coordinator)
    deadline = runner.now() + ONE_DAY
    with pytest.raises(ChainRefusal) as refused:
        runner.open_round(study, artifact(5), deadline)
    assert refused.value.error == "StaleBase" and refused.value.inputs["expected"] == GENESIS.commitment()
    runner.open_round(study, GENESIS, deadline)

    cases = [
        (lambda: client(stranger).submit_update(study, 1, artifact(1), 1), "NotParticipant"),
        (lambda: client(hospitals[0]).submit_update(study, 2, artifact(1), 1), "UnknownRound"),
        (lambda: client(hospitals[0]).create_study(GENESIS, CONFIG.sha256, CONFIG.cid, StudyTerms(1, 1_000)), "NotCoordinator"),
        (lambda: runner.commit_aggregate(study, 1, [], artifact(2)), "QuorumNotMet"),
        (lambda: runner.cancel_round(study, 1), "DeadlineNotReached"),
        (lambda: runner.study(9), "UnknownStudy"),
        (lambda: runner.round(study, 9), "UnknownRound"),
    ]
    for attempt, error in cases:
        with pytest.raises(ChainRefusal) as refused:
            attempt()
        assert refused.value.error == error
    client(hospitals[0]).submit_update(study, 1, artifact(1), 1)
    with pytest.raises(ChainRefusal, match="AlreadySubmitted"):
        client(hospitals[0]).submit_update(study, 1, artifact(2), 1)
    assert [u.artifact for u in runner.updates(study, 1)] == [artifact(1)]


def test_cancel_then_the_next_round_starts_from_the_same_base(client, coordinator, hospitals, study, chain, access, admin):
    runner = client(coordinator)
    deadline = runner.now() + ONE_DAY
    runner.open_round(study, GENESIS, deadline)
    for index, member in enumerate(hospitals[:2]):
        client(member).submit_update(study, 1, artifact(index), 10)
    access.revokeRole(access.PARTICIPANT_ROLE(), hospitals[0], sender=admin)
    chain.mine(timestamp=deadline + 1)
    runner.cancel_round(study, 1)  # two updates, one from a removed participant: below the quorum of 2
    assert runner.round(study, 1).state is RoundState.CANCELLED
    assert runner.latest_model(study) == (0, GENESIS)
    assert runner.open_round(study, GENESIS, runner.now() + ONE_DAY) == 2


def test_commit_and_open_next_round_in_one_transaction(client, coordinator, hospitals, study):
    runner = client(coordinator)
    runner.open_round(study, GENESIS, runner.now() + ONE_DAY)
    for index, member in enumerate(hospitals[:2]):
        client(member).submit_update(study, 1, artifact(index), 10)
    next_round = runner.commit_and_open(study, 1, runner.submitters(study, 1), artifact(50), runner.now() + ONE_DAY)
    assert next_round == 2
    assert runner.round(study, 2).base_commitment == artifact(50).commitment()


def test_a_client_that_starts_reading_after_the_events_says_so(rounds, client, coordinator, study, chain):
    late = RoundsClient(rounds, coordinator, from_block=chain.blocks.head.number + 1)
    assert late.studies() == [study]  # state still reads
    with pytest.raises(MissingEvent, match=f"no StudyCreated event for study {study} since block"):
        late.study(study)


def test_a_round_committed_during_one_read_is_found(client, coordinator, hospitals, study):
    """One read syncs the event store once; a commit landing after that sync, seen in the round's
    state, is still found (the store goes to the head again) instead of being called missing."""
    runner, reader = client(coordinator), client(hospitals[0])
    runner.open_round(study, GENESIS, runner.now() + ONE_DAY, [])
    for index, member in enumerate(hospitals[:2]):
        client(member).submit_update(study, 1, artifact(10 + index), 40)
    with reader.one_read():
        assert reader.round(study, 1).state == RoundState.OPEN
        runner.commit_aggregate(study, 1, runner.submitters(study, 1), artifact(101))
        committed = reader.round(study, 1)
    assert committed.state == RoundState.COMMITTED and committed.aggregate == artifact(101)
