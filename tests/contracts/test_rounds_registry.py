"""RoundRegistry: studies, rounds, updates, commits and cancellations, every refusal by its custom error."""

import ape
import pytest
from eth_abi import encode as abi_encode
from eth_utils import keccak

from conftest import ONE_DAY, make_artifact, make_cid
from offchain.rounds import StudyTerms

OPEN, COMMITTED, CANCELLED = 1, 2, 3
CONFIG_DIGEST = b"\x0c" * 32
GENESIS = make_artifact(1000)
MAX_SAMPLES = 1_000
GRACE = 24 * 3600  # RoundRegistry.CANCEL_GRACE_PERIOD


def terms(min_updates: int, **fields) -> tuple:
    return StudyTerms(min_updates, fields.pop("max_samples", MAX_SAMPLES), **fields).encoded()


def commitment(artifact: tuple[bytes, bytes]) -> bytes:
    cid, sha = artifact
    return keccak(abi_encode(["bytes", "bytes32"], [cid, sha]))


@pytest.fixture
def new_study(rounds, coordinator):
    """``new_study(min_updates)``: a study from GENESIS created by ``coordinator``; returns its id."""

    def create(min_updates: int = 2, genesis=GENESIS) -> int:
        tx = rounds.createStudy(genesis[0], genesis[1], CONFIG_DIGEST, make_cid(999), terms(min_updates),
                                sender=coordinator)
        return tx.return_value

    return create


@pytest.fixture
def study(new_study):
    return new_study(2)


@pytest.fixture
def deadline(chain):
    return chain.pending_timestamp + ONE_DAY


@pytest.fixture
def open_round(rounds, coordinator, deadline):
    """``open_round(study, base=GENESIS, invited=())``: opens the study's next round; returns its number."""

    def open_(study: int, base=GENESIS, invited=(), until=None) -> int:
        return rounds.openRound(study, commitment(base), deadline if until is None else until, list(invited), sender=coordinator).return_value

    return open_


def submit(rounds, study, round_, member, n, samples=100):
    return rounds.submitUpdate(study, round_, *make_artifact(n), samples, sender=member)


# -- studies --------------------------------------------------------------------------------------


def test_create_study_records_it(rounds, coordinator, study):
    assert rounds.studyCount() == study == 1
    assert rounds.studyOf(study) == (coordinator.address, 2, 0, 0, commitment(GENESIS), CONFIG_DIGEST)
    assert rounds.latestModel(study) == (0, commitment(GENESIS))
    logs = list(rounds.StudyCreated.range(0, None, search_topics={"study": study}))
    assert [(log.coordinator, bytes(log.genesisCid), bytes(log.genesisSha256), bytes(log.configCid), log.minUpdates)
            for log in logs] == [(coordinator.address, GENESIS[0], GENESIS[1], make_cid(999), 2)]
    assert [log.maxSamples for log in rounds.SampleCapSet.range(0, None, search_topics={"study": study})] == [MAX_SAMPLES]
    assert rounds.studyTermsOf(study) == (MAX_SAMPLES, False, False, 0)


def test_create_study_takes_its_terms_in_one_call(rounds, coordinator, hospitals):
    """Budgets and secure aggregation are arguments of the creation: they cannot land on another study."""
    budgeted = [h.address for h in hospitals[:2]]
    tx = rounds.createStudy(*GENESIS, CONFIG_DIGEST, make_cid(999), terms(
        2, max_samples=77, secure_aggregation=True, graph_degree=6, budget_hospitals=budgeted,
        epsilon_units=4_000_000, delta_units=10**13), sender=coordinator)
    study = tx.return_value
    assert [log.event_name for log in tx.events] == [
        "StudyCreated", "PrivacyBudgetSet", "PrivacyBudgetSet", "SampleCapSet", "SecureAggregationDeclared"]
    assert (tx.events[-1].study, tx.events[-1].graphDegree) == (study, 6)
    assert rounds.studyTermsOf(study) == (77, True, True, 6)
    assert rounds.privacyOf(study, hospitals[0]) == (4_000_000, 10**13, 0)
    assert rounds.secureRoundOf(study, 0) == (True, 0)


def test_create_study_refusals(rounds, coordinator, hospitals, stranger):
    cid, sha = GENESIS
    with ape.reverts(rounds.NotCoordinator, account=hospitals[0].address):
        rounds.createStudy(cid, sha, CONFIG_DIGEST, cid, terms(1), sender=hospitals[0])
    with ape.reverts(rounds.NotCoordinator, account=stranger.address):
        rounds.createStudy(cid, sha, CONFIG_DIGEST, cid, terms(1), sender=stranger)
    for quorum in (0, 257):
        with ape.reverts(rounds.BadMinUpdates, minUpdates=quorum):
            rounds.createStudy(cid, sha, CONFIG_DIGEST, cid, terms(quorum), sender=coordinator)
    with ape.reverts(rounds.ZeroDigest):
        rounds.createStudy(cid, bytes(32), CONFIG_DIGEST, cid, terms(1), sender=coordinator)
    with ape.reverts(rounds.ZeroDigest):
        rounds.createStudy(cid, sha, bytes(32), cid, terms(1), sender=coordinator)
    with ape.reverts(rounds.InvalidCid, cid=b"\x01\x02"):
        rounds.createStudy(b"\x01\x02", sha, CONFIG_DIGEST, cid, terms(1), sender=coordinator)
    with ape.reverts(rounds.InvalidCid, cid=b""):
        rounds.createStudy(cid, sha, CONFIG_DIGEST, b"", terms(1), sender=coordinator)
    with ape.reverts(rounds.BadSampleCap, maxSamples=0):
        rounds.createStudy(cid, sha, CONFIG_DIGEST, cid, terms(1, max_samples=0), sender=coordinator)
    with ape.reverts(rounds.BadGraphDegree, graphDegree=4):
        rounds.createStudy(cid, sha, CONFIG_DIGEST, cid, terms(1, graph_degree=4), sender=coordinator)
    one = [hospitals[0].address]
    for epsilon, delta, accounts in [(0, 10**13, one), (4, 0, one), (4, 10**18, one), (4, 10**13, []), (0, 1, [])]:
        with ape.reverts(rounds.BadPrivacyBudget, epsilonBudget=epsilon, delta=delta):
            rounds.createStudy(cid, sha, CONFIG_DIGEST, cid, terms(1, budget_hospitals=accounts, epsilon_units=epsilon,
                                                                   delta_units=delta), sender=coordinator)
    with ape.reverts(rounds.PrivacyBudgetAlreadySet, study=1, hospital=hospitals[0].address):
        rounds.createStudy(cid, sha, CONFIG_DIGEST, cid, terms(1, budget_hospitals=one * 2, epsilon_units=4,
                                                               delta_units=1), sender=coordinator)
    assert rounds.studyCount() == 0
    with ape.reverts(rounds.UnknownStudy, study=1):
        rounds.studyOf(1)
    with ape.reverts(rounds.UnknownStudy, study=1):
        rounds.latestModel(1)


def test_several_studies_run_at_once(rounds, new_study, open_round, coordinator, hospitals):
    first, second = new_study(1), new_study(1, genesis=make_artifact(2000))
    assert (first, second) == (1, 2) and rounds.studyCount() == 2
    assert open_round(first) == 1
    assert open_round(second, base=make_artifact(2000)) == 1
    submit(rounds, first, 1, hospitals[0], 1)
    submit(rounds, second, 1, hospitals[0], 2)  # one update per round, not per account
    rounds.commitAggregate(second, 1, [hospitals[0]], 0, *make_artifact(3), sender=coordinator)
    assert rounds.latestModel(second) == (1, commitment(make_artifact(3)))
    assert rounds.latestModel(first) == (0, commitment(GENESIS))
    assert rounds.roundOf(first, 1)[0] == OPEN


# -- a round, start to end ------------------------------------------------------------------------


def test_round_from_open_to_commit(rounds, study, open_round, coordinator, hospitals, deadline):
    tx = rounds.openRound(study, commitment(GENESIS), deadline, [], sender=coordinator)
    assert tx.return_value == 1
    assert tx.events == [rounds.RoundOpened(study, 1, commitment(GENESIS), 0, deadline, [])]
    assert rounds.roundOf(study, 1) == (OPEN, deadline, 0, commitment(GENESIS), False, 0, 0, bytes(32))

    for index, member in enumerate(hospitals[:3]):
        tx = submit(rounds, study, 1, member, 10 + index, samples=50 + index)
        cid, sha = make_artifact(10 + index)
        # The CID is logged as its parsed parts: format 2 (CIDv1 raw) and its sha2-256 digest.
        assert tx.events == [rounds.UpdateSubmitted(study, 1, member, index, 2, cid[4:], sha, 50 + index)]
        assert rounds.updateOf(study, 1, member) == commitment(make_artifact(10 + index))
    assert rounds.updateOf(study, 1, hospitals[3]) == bytes(32)
    assert rounds.roundOf(study, 1)[5] == 3

    aggregate = make_artifact(20)
    tx = rounds.commitAggregate(study, 1, hospitals[:3], 0, *aggregate, sender=coordinator)
    assert tx.events == [rounds.RoundCommitted(study, 1, *aggregate, 0b111, 0, 3)]
    assert rounds.roundOf(study, 1) == (
        COMMITTED, deadline, 0, commitment(GENESIS), False, 3, 3, commitment(aggregate)
    )
    assert rounds.latestModel(study) == (1, commitment(aggregate))
    assert rounds.studyOf(study)[2:4] == (1, 1)


def test_chain_of_custody_across_rounds(rounds, study, open_round, coordinator, hospitals):
    base = GENESIS
    for round_ in (1, 2, 3):
        with ape.reverts(rounds.StaleBase, study=study, expected=commitment(base), given=commitment(make_artifact(7))):
            open_round(study, base=make_artifact(7))
        assert open_round(study, base=base) == round_
        assert rounds.roundOf(study, round_)[2:4] == (round_ - 1, commitment(base))
        submit(rounds, study, round_, hospitals[0], 100 * round_)
        submit(rounds, study, round_, hospitals[1], 100 * round_ + 1)
        aggregate = make_artifact(100 * round_ + 50)
        rounds.commitAggregate(study, round_, hospitals[:2], 0, *aggregate, sender=coordinator)
        base = aggregate
    # Every earlier model is stale now, the genesis included.
    for stale in (GENESIS, make_artifact(150), make_artifact(250)):
        with ape.reverts(rounds.StaleBase, study=study, expected=commitment(base), given=commitment(stale)):
            open_round(study, base=stale)
    assert rounds.latestModel(study) == (3, commitment(base))


def test_commit_before_the_deadline_closes_the_round(rounds, study, open_round, coordinator, hospitals):
    open_round(study)
    submit(rounds, study, 1, hospitals[0], 1)
    submit(rounds, study, 1, hospitals[1], 2)
    rounds.commitAggregate(study, 1, hospitals[:2], 0, *make_artifact(3), sender=coordinator)
    with ape.reverts(rounds.RoundNotOpen, study=study, round=1, status=COMMITTED):
        submit(rounds, study, 1, hospitals[2], 4)


def test_commit_after_the_deadline_with_quorum(rounds, study, open_round, coordinator, hospitals, chain, deadline):
    open_round(study)
    submit(rounds, study, 1, hospitals[0], 1)
    submit(rounds, study, 1, hospitals[1], 2)
    chain.mine(timestamp=deadline + 60)
    rounds.commitAggregate(study, 1, hospitals[:2], 0, *make_artifact(3), sender=coordinator)
    assert rounds.latestModel(study)[0] == 1


def test_commit_and_open_in_one_transaction(rounds, study, open_round, coordinator, hospitals, deadline):
    open_round(study)
    submit(rounds, study, 1, hospitals[0], 1)
    submit(rounds, study, 1, hospitals[1], 2)
    aggregate = make_artifact(3)
    tx = rounds.multicall(
        [
            rounds.commitAggregate.encode_input(study, 1, hospitals[:2], 0, *aggregate),
            rounds.openRound.encode_input(study, commitment(aggregate), deadline + 1, []),
        ],
        sender=coordinator,
    )
    assert [log.event_name for log in tx.events] == ["RoundCommitted", "RoundOpened"]
    assert rounds.roundOf(study, 2)[:4] == (OPEN, deadline + 1, 1, commitment(aggregate))


# -- submitting -----------------------------------------------------------------------------------


def test_submit_refusals(rounds, study, open_round, hospitals, stranger, coordinator, chain, deadline):
    with ape.reverts(rounds.UnknownRound, study=study, round=1):
        submit(rounds, study, 1, hospitals[0], 1)
    with ape.reverts(rounds.UnknownRound, study=99, round=1):
        submit(rounds, 99, 1, hospitals[0], 1)
    open_round(study)
    with ape.reverts(rounds.NotParticipant, account=stranger.address):
        submit(rounds, study, 1, stranger, 1)
    with ape.reverts(rounds.NotParticipant, account=coordinator.address):
        submit(rounds, study, 1, coordinator, 1)
    with ape.reverts(rounds.NoSamples):
        submit(rounds, study, 1, hospitals[0], 1, samples=0)
    with ape.reverts(rounds.ZeroDigest):
        rounds.submitUpdate(study, 1, make_cid(1), bytes(32), 1, sender=hospitals[0])
    with ape.reverts(rounds.InvalidCid, cid=b""):
        rounds.submitUpdate(study, 1, b"", b"\x01" * 32, 1, sender=hospitals[0])

    submit(rounds, study, 1, hospitals[0], 1)
    with ape.reverts(rounds.AlreadySubmitted, study=study, round=1, participant=hospitals[0].address):
        submit(rounds, study, 1, hospitals[0], 2)

    chain.pending_timestamp = deadline
    submit(rounds, study, 1, hospitals[1], 3)  # the deadline's own second still counts
    assert chain.blocks.head.timestamp == deadline
    chain.mine(timestamp=deadline + 1)
    with ape.reverts(rounds.DeadlinePassed, study=study, round=1, deadline=deadline):
        submit(rounds, study, 1, hospitals[2], 4)
    assert rounds.roundOf(study, 1)[5] == 2


def test_invited_round(rounds, study, open_round, hospitals, coordinator):
    open_round(study, invited=hospitals[1:3])
    assert rounds.roundOf(study, 1)[4] is True
    assert rounds.isInvited(study, 1, hospitals[1]) and not rounds.isInvited(study, 1, hospitals[0])
    with ape.reverts(rounds.NotInvited, study=study, round=1, account=hospitals[0].address):
        submit(rounds, study, 1, hospitals[0], 1)
    submit(rounds, study, 1, hospitals[1], 2)
    submit(rounds, study, 1, hospitals[2], 3)
    rounds.commitAggregate(study, 1, hospitals[1:3], 0, *make_artifact(4), sender=coordinator)
    logs = list(rounds.RoundOpened.range(0, None, search_topics={"study": study}))
    assert logs[0].invited == [member.address for member in hospitals[1:3]]


def test_invitations_must_allow_the_quorum(rounds, study, open_round, hospitals):
    with ape.reverts(rounds.TooFewInvited, invited=1, minUpdates=2):
        open_round(study, invited=hospitals[:1])


# -- opening --------------------------------------------------------------------------------------


def test_open_refusals(rounds, study, open_round, coordinator, hospitals, admin, access, chain):
    now = chain.pending_timestamp
    with ape.reverts(rounds.UnknownStudy, study=99):
        open_round(99)
    with ape.reverts(rounds.NotStudyCoordinator, study=study, account=hospitals[0].address):
        rounds.openRound(study, commitment(GENESIS), now + ONE_DAY, [], sender=hospitals[0])
    # A second coordinator runs its own studies only.
    access.grantRole(access.COORDINATOR_ROLE(), admin, sender=admin)
    with ape.reverts(rounds.NotStudyCoordinator, study=study, account=admin.address):
        rounds.openRound(study, commitment(GENESIS), now + ONE_DAY, [], sender=admin)
    for bad in (now - 1, 0, now + 366 * ONE_DAY):
        with ape.reverts(rounds.BadDeadline, deadline=bad):
            open_round(study, until=bad)
    open_round(study)
    with ape.reverts(rounds.RoundStillOpen, study=study, round=1):
        open_round(study)


def test_removed_coordinator_can_no_longer_run_its_study(rounds, study, open_round, coordinator, hospitals, access, admin, chain, deadline):
    open_round(study)
    submit(rounds, study, 1, hospitals[0], 1)
    submit(rounds, study, 1, hospitals[1], 2)
    access.revokeRole(access.COORDINATOR_ROLE(), coordinator, sender=admin)
    with ape.reverts(rounds.NotCoordinator, account=coordinator.address):
        rounds.commitAggregate(study, 1, hospitals[:2], 0, *make_artifact(3), sender=coordinator)
    chain.mine(timestamp=deadline + 1)
    with ape.reverts(rounds.NotCoordinator, account=coordinator.address):
        rounds.cancelRound(study, 1, hospitals[:2], 0, sender=coordinator)


# -- committing -----------------------------------------------------------------------------------


@pytest.fixture
def three_updates(rounds, study, open_round, hospitals):
    """Round 1 of ``study`` with updates from hospitals 0, 1 and 2, in that order."""
    open_round(study)
    for n, member in enumerate(hospitals[:3]):
        submit(rounds, study, 1, member, n + 1)
    return hospitals[:3]


def test_commit_refusals(rounds, study, coordinator, hospitals, three_updates):
    aggregate = make_artifact(50)
    with ape.reverts(rounds.NotStudyCoordinator, study=study, account=hospitals[0].address):
        rounds.commitAggregate(study, 1, three_updates, 0, *aggregate, sender=hospitals[0])
    with ape.reverts(rounds.UnknownRound, study=study, round=2):
        rounds.commitAggregate(study, 2, three_updates, 0, *aggregate, sender=coordinator)
    a, b, c = three_updates
    for wrong in ([a, b], [a, c, b], [c, b, a], [a, b, c, a], [a, b, hospitals[3]], []):
        with ape.reverts(rounds.SubmittersMismatch, study=study, round=1):
            rounds.commitAggregate(study, 1, wrong, 0, *aggregate, sender=coordinator)
    with ape.reverts(rounds.ZeroDigest):
        rounds.commitAggregate(study, 1, three_updates, 0, aggregate[0], bytes(32), sender=coordinator)
    rounds.commitAggregate(study, 1, three_updates, 0, *aggregate, sender=coordinator)
    with ape.reverts(rounds.RoundNotOpen, study=study, round=1, status=COMMITTED):
        rounds.commitAggregate(study, 1, three_updates, 0, *make_artifact(51), sender=coordinator)
    assert rounds.latestModel(study) == (1, commitment(aggregate))


def test_commit_below_quorum(rounds, new_study, open_round, coordinator, hospitals):
    study = new_study(3)
    open_round(study)
    with ape.reverts(rounds.QuorumNotMet, study=study, round=1, counted=0, minUpdates=3):
        rounds.commitAggregate(study, 1, [], 0, *make_artifact(50), sender=coordinator)
    submit(rounds, study, 1, hospitals[0], 1)
    submit(rounds, study, 1, hospitals[1], 2)
    with ape.reverts(rounds.QuorumNotMet, study=study, round=1, counted=2, minUpdates=3):
        rounds.commitAggregate(study, 1, hospitals[:2], 0, *make_artifact(50), sender=coordinator)


def test_update_of_a_removed_participant_does_not_count(rounds, study, coordinator, hospitals, access, admin, three_updates):
    a, b, c = three_updates
    access.revokeRole(access.PARTICIPANT_ROLE(), b, sender=admin)
    tx = rounds.commitAggregate(study, 1, three_updates, 0, *make_artifact(50), sender=coordinator)
    assert tx.events == [rounds.RoundCommitted(study, 1, *make_artifact(50), 0b101, 0, 2)]
    assert rounds.roundOf(study, 1)[5:7] == (3, 2)


def test_removals_can_leave_a_round_below_quorum(rounds, study, coordinator, hospitals, access, admin, chain, deadline, three_updates):
    a, b, c = three_updates
    access.revokeRole(access.PARTICIPANT_ROLE(), a, sender=admin)
    access.revokeRole(access.PARTICIPANT_ROLE(), c, sender=admin)
    with ape.reverts(rounds.QuorumNotMet, study=study, round=1, counted=1, minUpdates=2):
        rounds.commitAggregate(study, 1, three_updates, 0, *make_artifact(50), sender=coordinator)
    # Re-admitted before commit: holding the role at commit is what counts.
    access.grantRole(access.PARTICIPANT_ROLE(), c, sender=admin)
    tx = rounds.commitAggregate(study, 1, three_updates, 0, *make_artifact(50), sender=coordinator)
    assert tx.events == [rounds.RoundCommitted(study, 1, *make_artifact(50), 0b110, 0, 2)]


def test_removals_outside_the_round_still_count_everyone(rounds, study, coordinator, access, admin, doctor, hospitals, three_updates):
    access.revokeRole(access.DOCTOR_ROLE(), doctor, sender=admin)  # not a learning role: nothing to re-read
    access.revokeRole(access.PARTICIPANT_ROLE(), hospitals[3], sender=admin)  # a participant: re-read all
    tx = rounds.commitAggregate(study, 1, three_updates, 0, *make_artifact(50), sender=coordinator)
    assert tx.events == [rounds.RoundCommitted(study, 1, *make_artifact(50), 0b111, 0, 3)]


# -- cancelling -----------------------------------------------------------------------------------


def test_cancel_a_round_that_missed_its_quorum(rounds, study, open_round, coordinator, hospitals, chain, deadline):
    open_round(study)
    submit(rounds, study, 1, hospitals[0], 1)
    with ape.reverts(rounds.DeadlineNotReached, study=study, round=1, deadline=deadline):
        rounds.cancelRound(study, 1, [], 0, sender=coordinator)
    chain.mine(timestamp=deadline + 1)
    with ape.reverts(rounds.CancelGracePeriod, study=study, round=1, anyoneFrom=deadline + GRACE):
        rounds.cancelRound(study, 1, [], 0, sender=hospitals[0])
    tx = rounds.cancelRound(study, 1, [], 0, sender=coordinator)
    assert tx.events == [rounds.RoundCancelled(study, 1, 0, coordinator)]
    assert rounds.roundOf(study, 1)[:6] == (CANCELLED, deadline, 0, commitment(GENESIS), False, 1)
    assert rounds.latestModel(study) == (0, commitment(GENESIS))
    with ape.reverts(rounds.RoundNotOpen, study=study, round=1, status=CANCELLED):
        rounds.cancelRound(study, 1, [], 0, sender=coordinator)
    with ape.reverts(rounds.RoundNotOpen, study=study, round=1, status=CANCELLED):
        rounds.commitAggregate(study, 1, hospitals[:1], 0, *make_artifact(5), sender=coordinator)

    # The next round starts from the same base.
    with ape.reverts(rounds.StaleBase):
        open_round(study, base=make_artifact(5))
    assert open_round(study, until=chain.pending_timestamp + ONE_DAY) == 2
    assert rounds.roundOf(study, 2)[2:4] == (0, commitment(GENESIS))


def test_cancel_refused_with_quorum(rounds, study, coordinator, hospitals, chain, deadline, access, admin, three_updates):
    chain.mine(timestamp=deadline + 1)
    with ape.reverts(rounds.QuorumReached, study=study, round=1, counted=3, minUpdates=2):
        rounds.cancelRound(study, 1, three_updates, 0, sender=coordinator)
    with ape.reverts(rounds.SubmittersMismatch, study=study, round=1):
        rounds.cancelRound(study, 1, [], 0, sender=coordinator)
    # Two of three removed: the round can no longer reach its quorum, so it may be cancelled.
    access.revokeRole(access.PARTICIPANT_ROLE(), three_updates[0], sender=admin)
    with ape.reverts(rounds.QuorumReached, study=study, round=1, counted=2, minUpdates=2):
        rounds.cancelRound(study, 1, three_updates, 0, sender=coordinator)
    access.revokeRole(access.PARTICIPANT_ROLE(), three_updates[1], sender=admin)
    rounds.cancelRound(study, 1, three_updates, 0, sender=coordinator)
    assert rounds.roundOf(study, 1)[0] == CANCELLED


# -- pause ----------------------------------------------------------------------------------------


def test_every_state_change_stops_while_the_consortium_is_paused(rounds, study, open_round, coordinator, hospitals, access, guardian, chain, deadline):
    """All but cancelling, which commits nothing: a paused consortium's rounds still close."""
    open_round(study)
    submit(rounds, study, 1, hospitals[0], 1)
    access.pause(sender=guardian)
    cid, sha = GENESIS
    with ape.reverts(rounds.ConsortiumPaused):
        rounds.createStudy(cid, sha, CONFIG_DIGEST, cid, terms(1), sender=coordinator)
    with ape.reverts(rounds.ConsortiumPaused):
        submit(rounds, study, 1, hospitals[1], 2)
    with ape.reverts(rounds.ConsortiumPaused):
        rounds.commitAggregate(study, 1, hospitals[:1], 0, *make_artifact(3), sender=coordinator)
    chain.mine(timestamp=deadline + 1)
    rounds.cancelRound(study, 1, [], 0, sender=coordinator)
    with ape.reverts(rounds.ConsortiumPaused):
        open_round(study, until=chain.pending_timestamp + ONE_DAY)


def test_registry_needs_a_contract(project, admin, stranger):
    with ape.reverts(project.RoundRegistry.ConsortiumNotAContract, consortium=stranger.address):
        admin.deploy(project.RoundRegistry, stranger)


# -- rejecting malformed updates --------------------------------------------------------------------


def test_rejected_updates_do_not_count(rounds, study, coordinator, hospitals, three_updates):
    with ape.reverts(rounds.RejectedOutOfRange, study=study, round=1, rejectedMask=0b1000, updates=3):
        rounds.commitAggregate(study, 1, three_updates, 0b1000, *make_artifact(50), sender=coordinator)
    # Two of three rejected: one counted, below the quorum of two.
    with ape.reverts(rounds.QuorumNotMet, study=study, round=1, counted=1, minUpdates=2):
        rounds.commitAggregate(study, 1, three_updates, 0b011, *make_artifact(50), sender=coordinator)
    tx = rounds.commitAggregate(study, 1, three_updates, 0b010, *make_artifact(50), sender=coordinator)
    assert tx.events == [rounds.RoundCommitted(study, 1, *make_artifact(50), 0b101, 0b010, 2)]
    assert rounds.roundOf(study, 1)[5:7] == (3, 2)


def test_rejections_and_removals_together(rounds, study, coordinator, hospitals, access, admin, three_updates):
    access.revokeRole(access.PARTICIPANT_ROLE(), three_updates[0], sender=admin)
    with ape.reverts(rounds.QuorumNotMet, study=study, round=1, counted=1, minUpdates=2):
        rounds.commitAggregate(study, 1, three_updates, 0b100, *make_artifact(50), sender=coordinator)
    tx = rounds.commitAggregate(study, 1, three_updates, 0b001, *make_artifact(50), sender=coordinator)
    assert tx.events == [rounds.RoundCommitted(study, 1, *make_artifact(50), 0b110, 0b001, 2)]


def test_cancel_a_round_whose_quorum_rests_on_rejected_updates(rounds, study, coordinator, chain, deadline, three_updates):
    chain.mine(timestamp=deadline + 1)
    with ape.reverts(rounds.QuorumReached, study=study, round=1, counted=2, minUpdates=2):
        rounds.cancelRound(study, 1, three_updates, 0b100, sender=coordinator)
    with ape.reverts(rounds.RejectedOutOfRange, study=study, round=1, rejectedMask=0b1000, updates=3):
        rounds.cancelRound(study, 1, three_updates, 0b1000, sender=coordinator)
    tx = rounds.cancelRound(study, 1, three_updates, 0b110, sender=coordinator)
    assert tx.events == [rounds.RoundCancelled(study, 1, 0b110, coordinator)]
    assert rounds.roundOf(study, 1)[0] == CANCELLED
    assert rounds.latestModel(study) == (0, commitment(GENESIS))


def test_cancel_below_quorum_refuses_a_mask_beyond_its_updates(rounds, new_study, open_round, coordinator, hospitals, chain, deadline):
    study = new_study(3)
    open_round(study)
    submit(rounds, study, 1, hospitals[0], 1)
    chain.mine(timestamp=deadline + 1)
    with ape.reverts(rounds.RejectedOutOfRange, study=study, round=1, rejectedMask=0b10, updates=1):
        rounds.cancelRound(study, 1, [], 0b10, sender=coordinator)
    tx = rounds.cancelRound(study, 1, [], 0b1, sender=coordinator)
    assert tx.events == [rounds.RoundCancelled(study, 1, 0b1, coordinator)]


# -- issue 18: no griefing, no stall ------------------------------------------------------------------


def test_duplicate_invitations_count_once_towards_the_quorum(rounds, new_study, open_round, hospitals):
    """[h0, h0, h0] does not meet a quorum of 3: such a round could never be committed."""
    study = new_study(3)
    with ape.reverts(rounds.TooFewInvited, invited=1, minUpdates=3):
        open_round(study, invited=[hospitals[0]] * 3)
    with ape.reverts(rounds.TooFewInvited, invited=2, minUpdates=3):
        open_round(study, invited=[hospitals[0], hospitals[1], hospitals[0], hospitals[1]])
    assert open_round(study, invited=[hospitals[0], hospitals[1], hospitals[2], hospitals[0]]) == 1


def test_sample_count_is_capped_by_the_study(rounds, study, open_round, hospitals):
    """A sample count of 2**64 - 1 would carry the whole weighted average: refused above the study's cap."""
    open_round(study)
    for samples in (MAX_SAMPLES + 1, 2**64 - 1):
        with ape.reverts(rounds.SamplesOverCap, study=study, round=1, samples=samples, maxSamples=MAX_SAMPLES):
            submit(rounds, study, 1, hospitals[0], 1, samples=samples)
    submit(rounds, study, 1, hospitals[0], 1, samples=MAX_SAMPLES)


def test_anyone_cancels_a_round_left_past_its_grace_period(rounds, study, open_round, coordinator, hospitals, stranger,
                                                           chain, deadline, three_updates):
    """A silent coordinator holds the round (it has its quorum, so even the coordinator could not cancel
    it) until the grace period ends; then anyone cancels it, rejecting nothing, and the event says who."""
    chain.mine(timestamp=deadline + GRACE)
    with ape.reverts(rounds.CancelGracePeriod, study=study, round=1, anyoneFrom=deadline + GRACE):
        rounds.cancelRound(study, 1, [], 0, sender=stranger)
    chain.mine(timestamp=deadline + GRACE + 1)
    with ape.reverts(rounds.RejectionByNonCoordinator, account=stranger.address):
        rounds.cancelRound(study, 1, [], 0b1, sender=stranger)
    tx = rounds.cancelRound(study, 1, [], 0, sender=stranger)
    assert tx.events == [rounds.RoundCancelled(study, 1, 0, stranger)]
    assert rounds.roundOf(study, 1)[0] == CANCELLED and rounds.roundOf(study, 1)[5] == 3
    with ape.reverts(rounds.RoundNotOpen, study=study, round=1, status=CANCELLED):
        rounds.commitAggregate(study, 1, three_updates, 0, *make_artifact(50), sender=coordinator)


def test_an_evicted_coordinator_cannot_hold_its_study(rounds, study, open_round, coordinator, hospitals, access, admin,
                                                      chain, deadline):
    open_round(study)
    access.revokeRole(access.COORDINATOR_ROLE(), coordinator, sender=admin)
    chain.mine(timestamp=deadline + 1)
    with ape.reverts(rounds.NotCoordinator, account=coordinator.address):
        rounds.cancelRound(study, 1, [], 0, sender=coordinator)
    with ape.reverts(rounds.CancelGracePeriod, study=study, round=1, anyoneFrom=deadline + GRACE):
        rounds.cancelRound(study, 1, [], 0, sender=hospitals[0])
    chain.mine(timestamp=deadline + GRACE + 1)
    tx = rounds.cancelRound(study, 1, [], 0, sender=hospitals[0])
    assert tx.events == [rounds.RoundCancelled(study, 1, 0, hospitals[0])]


def test_the_coordinator_rejects_past_the_grace_period_too(rounds, new_study, open_round, coordinator, hospitals,
                                                           chain, deadline):
    study = new_study(3)
    open_round(study)
    submit(rounds, study, 1, hospitals[0], 1)
    chain.mine(timestamp=deadline + GRACE + 1)
    with ape.reverts(rounds.RejectedOutOfRange, study=study, round=1, rejectedMask=0b10, updates=1):
        rounds.cancelRound(study, 1, [], 0b10, sender=coordinator)
    tx = rounds.cancelRound(study, 1, [], 0b1, sender=coordinator)
    assert tx.events == [rounds.RoundCancelled(study, 1, 0b1, coordinator)]
