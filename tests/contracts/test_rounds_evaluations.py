"""RoundRegistry evaluation postings: a hospital's metrics of a committed model, posted as an event by the
round's submitters only (plain and secure rounds), with a well-formed CID and digest, not while paused,
and every refusal by its custom error."""

import ape
import pytest
from eth_abi import encode as abi_encode
from eth_utils import keccak

from conftest import ONE_DAY, make_artifact, make_cid
from offchain.rounds import StudyTerms

OPEN, COMMITTED, CANCELLED = 1, 2, 3
KEYS, SHARES, MASKED, UNMASKING = range(4)
GENESIS = make_artifact(4000)
EVALUATION = make_artifact(4100)


def commitment(artifact):
    return keccak(abi_encode(["bytes", "bytes32"], list(artifact)))


def new_study(rounds, coordinator, secure=False):
    return rounds.createStudy(*GENESIS, b"\x0e" * 32, make_cid(997),
                              StudyTerms(2, 1_000, secure_aggregation=secure).encoded(), sender=coordinator).return_value


@pytest.fixture
def committed(rounds, coordinator, hospitals, chain):
    """A plain study whose round 1 took updates from hospitals 0, 1 and 2 (not 3) and was committed."""
    study = new_study(rounds, coordinator)
    rounds.openRound(study, commitment(GENESIS), chain.pending_timestamp + ONE_DAY, [], sender=coordinator)
    for n, member in enumerate(hospitals[:3]):
        rounds.submitUpdate(study, 1, *make_artifact(4000 + n + 1), 10, sender=member)
    rounds.commitAggregate(study, 1, hospitals[:3], 0, *make_artifact(4050), sender=coordinator)
    return study


def post(rounds, study, member, round_=1, artifact=EVALUATION):
    return rounds.reportEvaluation(study, round_, *artifact, sender=member)


def test_a_submitter_posts_its_evaluation_of_the_committed_model(rounds, committed, hospitals):
    tx = post(rounds, committed, hospitals[0])
    (event,) = tx.events
    cid, sha = EVALUATION
    assert (event.event_name, event.study, event.round, event.hospital) == (
        "EvaluationReported", committed, 1, hospitals[0].address)
    assert (event.cidFormat, bytes(event.cidDigest), bytes(event.sha256)) == (2, cid[4:], sha)  # 2: CIDv1 raw
    # Nothing is stored: a second posting is logged too, and readers keep the first.
    assert post(rounds, committed, hospitals[0], artifact=make_artifact(4101)).events[0].hospital == hospitals[0].address
    for kind in ("v0", "v1-dag-pb"):
        rounds.reportEvaluation(committed, 1, make_cid(7, kind), b"\x01" * 32, sender=hospitals[1])


def test_only_a_committed_round_takes_evaluations(rounds, committed, coordinator, hospitals, chain):
    with ape.reverts(rounds.UnknownRound, study=committed, round=2):
        post(rounds, committed, hospitals[0], round_=2)
    with ape.reverts(rounds.UnknownRound, study=committed + 1, round=1):
        post(rounds, committed + 1, hospitals[0])
    rounds.openRound(committed, commitment(make_artifact(4050)), chain.pending_timestamp + ONE_DAY, [],
                     sender=coordinator)
    rounds.submitUpdate(committed, 2, *make_artifact(4060), 10, sender=hospitals[0])
    with ape.reverts(rounds.RoundNotCommitted, study=committed, round=2, status=OPEN):
        post(rounds, committed, hospitals[0], round_=2)
    chain.pending_timestamp += ONE_DAY + 1
    rounds.cancelRound(committed, 2, [hospitals[0]], 0, sender=coordinator)
    with ape.reverts(rounds.RoundNotCommitted, study=committed, round=2, status=CANCELLED):
        post(rounds, committed, hospitals[0], round_=2)
    post(rounds, committed, hospitals[0])  # the committed round still takes it


def test_only_the_round_submitters_post(rounds, committed, hospitals, stranger, coordinator, access, admin):
    with ape.reverts(rounds.NotParticipant, account=stranger.address):
        post(rounds, committed, stranger)
    with ape.reverts(rounds.NotParticipant, account=coordinator.address):
        post(rounds, committed, coordinator)
    with ape.reverts(rounds.EvaluationNotAllowed, study=committed, round=1, account=hospitals[3].address):
        post(rounds, committed, hospitals[3])  # a participant that sat the round out
    access.revokeRole(access.PARTICIPANT_ROLE(), hospitals[1], sender=admin)
    with ape.reverts(rounds.NotParticipant, account=hospitals[1].address):
        post(rounds, committed, hospitals[1])


@pytest.mark.parametrize("cid", [b"", b"\x00", make_cid(1)[:-1]])
def test_a_posting_needs_a_well_formed_cid_and_digest(rounds, committed, hospitals, cid):
    with ape.reverts(rounds.InvalidCid, cid=cid):
        rounds.reportEvaluation(committed, 1, cid, b"\x01" * 32, sender=hospitals[0])
    with ape.reverts(rounds.ZeroDigest):
        rounds.reportEvaluation(committed, 1, make_cid(1), bytes(32), sender=hospitals[0])


def test_no_posting_while_paused(rounds, committed, hospitals, access, guardian):
    access.pause(sender=guardian)
    with ape.reverts(rounds.ConsortiumPaused):
        post(rounds, committed, hospitals[0])
    access.unpause(sender=guardian)
    post(rounds, committed, hospitals[0])


def test_a_secure_round_takes_its_survivors_postings_only(rounds, coordinator, hospitals, chain):
    study = new_study(rounds, coordinator, secure=True)
    rounds.openRound(study, commitment(GENESIS), chain.pending_timestamp + ONE_DAY,
                     [h.address for h in hospitals[:3]], sender=coordinator)
    for phase in (KEYS, SHARES):
        for i, member in enumerate(hospitals[:3]):
            rounds.postSecureMessage(study, 1, phase, *make_artifact(4200 + 10 * phase + i), sender=member)
        rounds.closeSecurePhase(study, 1, phase, sender=coordinator)
    for i, member in enumerate(hospitals[:2]):  # hospital 2 drops out
        rounds.submitUpdate(study, 1, *make_artifact(4300 + i), 10, sender=member)
    rounds.closeSecurePhase(study, 1, MASKED, sender=coordinator)
    rounds.closeSecurePhase(study, 1, UNMASKING, sender=coordinator)
    rounds.commitAggregate(study, 1, hospitals[:2], 0, *make_artifact(4350), sender=coordinator)
    assert post(rounds, study, hospitals[1]).events[0].hospital == hospitals[1].address
    with ape.reverts(rounds.EvaluationNotAllowed, study=study, round=1, account=hospitals[2].address):
        post(rounds, study, hospitals[2])
