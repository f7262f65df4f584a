"""RoundRegistry secure rounds: declared at the study's creation, phases closed in order by the study's
coordinator, key/share/unmasking postings as events from the round's roster only (well-formed, not
while paused), masked inputs as the round's updates in their phase only, no commit before every phase
is closed, and none while a survivor it counts has lost its role."""

import ape
import pytest
from eth_abi import encode as abi_encode
from eth_utils import keccak

from conftest import ONE_DAY, make_artifact, make_cid
from offchain.rounds import StudyTerms

CONFIG_DIGEST = b"\x0d" * 32
GENESIS = make_artifact(3000)
KEYS, SHARES, MASKED, UNMASKING, FINISHED = range(5)


def commitment(artifact):
    return keccak(abi_encode(["bytes", "bytes32"], list(artifact)))


GRACE = 24 * 3600  # RoundRegistry.CANCEL_GRACE_PERIOD


def new_study(rounds, coordinator, secure=True, min_updates=2):
    tx = rounds.createStudy(*GENESIS, CONFIG_DIGEST, make_cid(998),
                            StudyTerms(min_updates, 1_000, secure_aggregation=secure).encoded(), sender=coordinator)
    study = tx.return_value
    declared = [(log.study, log.graphDegree) for log in tx.events if log.event_name == "SecureAggregationDeclared"]
    assert declared == ([(study, 0)] if secure else [])
    return study


@pytest.fixture
def secure(rounds, coordinator, hospitals, chain):
    """A secure study with round 1 open, inviting the first three hospitals; returns the study."""
    study = new_study(rounds, coordinator)
    invited = [h.address for h in hospitals[:3]]
    rounds.openRound(study, commitment(GENESIS), chain.pending_timestamp + ONE_DAY, invited, sender=coordinator)
    return study


def post(rounds, study, member, phase, n, round_=1):
    return rounds.postSecureMessage(study, round_, phase, *make_artifact(n), sender=member)


def close(rounds, study, coordinator, phase, round_=1):
    tx = rounds.closeSecurePhase(study, round_, phase, sender=coordinator)
    assert [(log.event_name, log.study, log.round, log.phase) for log in tx.events] == [
        ("SecurePhaseClosed", study, round_, phase)]
    return tx


def run_to_unmasking(rounds, study, coordinator, hospitals, survivors=3):
    for phase in (KEYS, SHARES):
        for i, member in enumerate(hospitals[:3]):
            post(rounds, study, member, phase, 10 * phase + i)
        close(rounds, study, coordinator, phase)
    for i, member in enumerate(hospitals[:survivors]):
        rounds.submitUpdate(study, 1, *make_artifact(100 + i), 10, sender=member)
    close(rounds, study, coordinator, MASKED)


def test_a_secure_round_runs_its_phases_in_order_and_commits(rounds, secure, coordinator, hospitals):
    assert rounds.secureRoundOf(secure, 1) == (True, KEYS)
    tx = post(rounds, secure, hospitals[0], KEYS, 1)
    (event,) = tx.events
    assert (event.event_name, event.study, event.round, event.sender, event.phase) == (
        "SecureMessagePosted", secure, 1, hospitals[0].address, KEYS)
    cid, sha = make_artifact(1)
    assert (event.cidFormat, bytes(event.cidDigest), bytes(event.sha256)) == (2, cid[4:], sha)  # 2: CIDv1 raw
    run_to_unmasking(rounds, secure, coordinator, hospitals, survivors=2)
    assert rounds.secureRoundOf(secure, 1) == (True, UNMASKING)
    assert [rounds.hasSubmitted(secure, 1, h) for h in hospitals[:3]] == [True, True, False]
    for i, member in enumerate(hospitals[:2]):
        post(rounds, secure, member, UNMASKING, 40 + i)
    survivors = [h.address for h in hospitals[:2]]
    with ape.reverts(rounds.SecurePhaseMismatch, study=secure, round=1, current=UNMASKING, given=FINISHED):
        rounds.commitAggregate(secure, 1, survivors, 0, *make_artifact(500), sender=coordinator)
    close(rounds, secure, coordinator, UNMASKING)
    assert rounds.secureRoundOf(secure, 1) == (True, FINISHED)
    with ape.reverts(rounds.SecurePhaseMismatch, study=secure, round=1, current=FINISHED, given=FINISHED):
        post(rounds, secure, hospitals[0], FINISHED, 45)  # the responses every reader counts are final
    with ape.reverts(rounds.SecurePhaseMismatch, study=secure, round=1, current=FINISHED, given=FINISHED):
        rounds.closeSecurePhase(secure, 1, FINISHED, sender=coordinator)
    rounds.commitAggregate(secure, 1, survivors, 0, *make_artifact(500), sender=coordinator)
    assert rounds.latestModel(secure) == (1, commitment(make_artifact(500)))


def test_postings_are_taken_in_their_phase_only(rounds, secure, coordinator, hospitals):
    with ape.reverts(rounds.SecurePhaseMismatch, study=secure, round=1, current=KEYS, given=SHARES):
        post(rounds, secure, hospitals[0], SHARES, 1)
    with ape.reverts(rounds.SecurePhaseMismatch, study=secure, round=1, current=KEYS, given=MASKED):
        rounds.submitUpdate(secure, 1, *make_artifact(1), 10, sender=hospitals[0])
    with ape.reverts(rounds.SecurePhaseMismatch, study=secure, round=1, current=KEYS, given=MASKED):
        post(rounds, secure, hospitals[0], MASKED, 1)  # masked inputs are updates, never postings
    post(rounds, secure, hospitals[0], KEYS, 1)
    close(rounds, secure, coordinator, KEYS)
    with ape.reverts(rounds.SecurePhaseMismatch, study=secure, round=1, current=SHARES, given=KEYS):
        post(rounds, secure, hospitals[1], KEYS, 2)  # too late for the roster
    with ape.reverts(rounds.SecurePhaseMismatch, study=secure, round=1, current=SHARES, given=KEYS):
        close(rounds, secure, coordinator, KEYS)
    close(rounds, secure, coordinator, SHARES)
    rounds.submitUpdate(secure, 1, *make_artifact(2), 10, sender=hospitals[0])
    with ape.reverts(rounds.AlreadySubmitted, study=secure, round=1, participant=hospitals[0].address):
        rounds.submitUpdate(secure, 1, *make_artifact(3), 10, sender=hospitals[0])
    close(rounds, secure, coordinator, MASKED)
    with ape.reverts(rounds.SecurePhaseMismatch, study=secure, round=1, current=UNMASKING, given=MASKED):
        rounds.submitUpdate(secure, 1, *make_artifact(4), 10, sender=hospitals[1])  # survivors are fixed


def test_only_invited_participants_join_the_roster(rounds, secure, hospitals, stranger):
    with ape.reverts(rounds.NotInvited, study=secure, round=1, account=hospitals[3].address):
        post(rounds, secure, hospitals[3], KEYS, 1)
    with ape.reverts(rounds.NotInvited, study=secure, round=1, account=stranger.address):
        post(rounds, secure, stranger, KEYS, 1)


def test_without_invitations_the_roster_takes_participants(rounds, coordinator, hospitals, stranger, chain):
    study = new_study(rounds, coordinator)
    rounds.openRound(study, commitment(GENESIS), chain.pending_timestamp + ONE_DAY, [], sender=coordinator)
    with ape.reverts(rounds.NotParticipant, account=stranger.address):
        post(rounds, study, stranger, KEYS, 1)
    post(rounds, study, hospitals[3], KEYS, 1)


def test_only_the_roster_posts_in_every_phase(rounds, secure, coordinator, hospitals, stranger):
    """A stranger, or an uninvited participant, cannot post in any phase (one posting of theirs stalled
    every reader); a second posting of the roster's is logged, and readers count the first."""
    post(rounds, secure, hospitals[0], KEYS, 1)
    close(rounds, secure, coordinator, KEYS)
    for outsider in (stranger, hospitals[3]):
        with ape.reverts(rounds.NotInvited, study=secure, round=1, account=outsider.address):
            post(rounds, secure, outsider, SHARES, 2)
    post(rounds, secure, hospitals[0], SHARES, 3)
    assert [log.sender for log in post(rounds, secure, hospitals[0], SHARES, 4).events] == [hospitals[0].address]
    close(rounds, secure, coordinator, SHARES)
    close(rounds, secure, coordinator, MASKED)
    with ape.reverts(rounds.NotInvited, study=secure, round=1, account=stranger.address):
        post(rounds, secure, stranger, UNMASKING, 5)
    post(rounds, secure, hospitals[1], UNMASKING, 6)


@pytest.mark.parametrize("cid", [b"\x00", b"", b"\x12\x20" + bytes(31), make_cid(1)[:-1], bytes(24 * 1024)])
def test_a_posting_needs_a_well_formed_cid(rounds, secure, hospitals, cid):
    with ape.reverts(rounds.InvalidCid, cid=cid):
        rounds.postSecureMessage(secure, 1, KEYS, cid, b"\x01" * 32, sender=hospitals[0])


def test_a_posting_needs_a_digest(rounds, secure, hospitals):
    with ape.reverts(rounds.ZeroDigest):
        rounds.postSecureMessage(secure, 1, KEYS, make_cid(1), bytes(32), sender=hospitals[0])
    for kind in ("v0", "v1-raw", "v1-dag-pb"):
        rounds.postSecureMessage(secure, 1, KEYS, make_cid(1, kind), b"\x01" * 32, sender=hospitals[0])


def test_no_posting_while_paused_but_the_round_can_still_be_cancelled(rounds, secure, coordinator, hospitals, access,
                                                                      guardian, chain):
    post(rounds, secure, hospitals[0], KEYS, 1)
    access.pause(sender=guardian)
    with ape.reverts(rounds.ConsortiumPaused):
        post(rounds, secure, hospitals[1], KEYS, 2)
    chain.pending_timestamp += ONE_DAY + 1
    tx = rounds.cancelRound(secure, 1, [], 0, sender=coordinator)
    assert tx.events == [rounds.RoundCancelled(secure, 1, 0, coordinator)]


def test_an_evicted_hospital_is_a_dropout(rounds, secure, coordinator, hospitals, access, admin):
    """Evicted after the invitation, a hospital may still advertise keys and share them, but its masked
    input is refused: it drops out, and the others' shares recover its masks."""
    access.revokeRole(access.PARTICIPANT_ROLE(), hospitals[0], sender=admin)
    post(rounds, secure, hospitals[0], KEYS, 1)
    close(rounds, secure, coordinator, KEYS)
    close(rounds, secure, coordinator, SHARES)
    with ape.reverts(rounds.NotParticipant, account=hospitals[0].address):
        rounds.submitUpdate(secure, 1, *make_artifact(1), 10, sender=hospitals[0])


def test_only_the_study_coordinator_closes_a_phase(rounds, secure, hospitals, access, admin, coordinator, guardian):
    with ape.reverts(rounds.NotStudyCoordinator, study=secure, account=hospitals[0].address):
        rounds.closeSecurePhase(secure, 1, KEYS, sender=hospitals[0])
    access.pause(sender=guardian)
    with ape.reverts(rounds.ConsortiumPaused):
        rounds.closeSecurePhase(secure, 1, KEYS, sender=coordinator)
    access.unpause(sender=guardian)
    access.revokeRole(access.COORDINATOR_ROLE(), coordinator, sender=admin)  # evicted: it closes nothing more
    with ape.reverts(rounds.NotCoordinator, account=coordinator.address):
        rounds.closeSecurePhase(secure, 1, KEYS, sender=coordinator)


def test_a_plain_study_has_no_secure_steps(rounds, coordinator, hospitals, chain):
    study = new_study(rounds, coordinator, secure=False, min_updates=1)
    rounds.openRound(study, commitment(GENESIS), chain.pending_timestamp + ONE_DAY, [], sender=coordinator)
    assert rounds.secureRoundOf(study, 1) == (False, KEYS)
    with ape.reverts(rounds.RoundNotSecure, study=study, round=1):
        post(rounds, study, hospitals[0], KEYS, 1)
    with ape.reverts(rounds.RoundNotSecure, study=study, round=1):
        rounds.closeSecurePhase(study, 1, KEYS, sender=coordinator)


def test_a_secure_round_can_be_cancelled_in_any_phase(rounds, secure, coordinator, hospitals, chain):
    post(rounds, secure, hospitals[0], KEYS, 1)
    chain.pending_timestamp += ONE_DAY + 1
    rounds.cancelRound(secure, 1, [], 0, sender=coordinator)
    with ape.reverts(rounds.RoundNotOpen):
        post(rounds, secure, hospitals[1], KEYS, 2)


def test_masked_input_guard_is_per_round(rounds, secure, coordinator, hospitals, chain):
    """The once-per-round guard lives in a slot reused each round: round 2 takes a new masked input."""
    run_to_unmasking(rounds, secure, coordinator, hospitals)
    close(rounds, secure, coordinator, UNMASKING)
    survivors = [h.address for h in hospitals[:3]]
    rounds.commitAggregate(secure, 1, survivors, 0, *make_artifact(600), sender=coordinator)
    rounds.openRound(secure, commitment(make_artifact(600)), chain.pending_timestamp + ONE_DAY, survivors,
                     sender=coordinator)
    assert rounds.secureRoundOf(secure, 2) == (True, KEYS)
    assert not rounds.hasSubmitted(secure, 2, hospitals[0])
    close(rounds, secure, coordinator, KEYS, round_=2)
    close(rounds, secure, coordinator, SHARES, round_=2)
    rounds.submitUpdate(secure, 2, *make_artifact(700), 10, sender=hospitals[0])
    assert rounds.hasSubmitted(secure, 2, hospitals[0])


def test_a_survivor_who_lost_its_role_blocks_the_commit(rounds, secure, coordinator, hospitals, access, admin, chain):
    """Its masked input is in the sum, which cannot leave it out: the commit is refused, whatever the
    mask says, and the coordinator cancels the round instead (a quorum of the others notwithstanding)."""
    run_to_unmasking(rounds, secure, coordinator, hospitals)
    close(rounds, secure, coordinator, UNMASKING)
    survivors = [h.address for h in hospitals[:3]]
    access.revokeRole(access.PARTICIPANT_ROLE(), hospitals[1], sender=admin)
    with ape.reverts(rounds.SurvivorLostRole, study=secure, round=1, lostMask=0b010):
        rounds.commitAggregate(secure, 1, survivors, 0, *make_artifact(500), sender=coordinator)
    # Left out as not in the sum (rejected), it no longer blocks: the commit then says what the sum is.
    rounds.commitAggregate.call(secure, 1, survivors, 0b010, *make_artifact(500), sender=coordinator)
    chain.pending_timestamp += ONE_DAY + 1
    tx = rounds.cancelRound(secure, 1, survivors, 0, sender=coordinator)
    assert tx.events == [rounds.RoundCancelled(secure, 1, 0, coordinator)]


def test_a_plain_round_still_commits_without_an_evicted_submitter(rounds, coordinator, hospitals, access, admin, chain):
    study = new_study(rounds, coordinator, secure=False)
    rounds.openRound(study, commitment(GENESIS), chain.pending_timestamp + ONE_DAY, [], sender=coordinator)
    for i, member in enumerate(hospitals[:3]):
        rounds.submitUpdate(study, 1, *make_artifact(100 + i), 10, sender=member)
    access.revokeRole(access.PARTICIPANT_ROLE(), hospitals[1], sender=admin)
    tx = rounds.commitAggregate(study, 1, [h.address for h in hospitals[:3]], 0, *make_artifact(500), sender=coordinator)
    assert tx.events[0].countedMask == 0b101


def test_anyone_cancels_a_secure_round_stalled_past_its_grace_period(rounds, secure, coordinator, hospitals, stranger,
                                                                     chain):
    """The coordinator went silent in the Unmasking phase: nobody can close it, but the round ends."""
    run_to_unmasking(rounds, secure, coordinator, hospitals)
    deadline = rounds.roundOf(secure, 1)[1]
    chain.pending_timestamp = deadline + GRACE + 1
    tx = rounds.cancelRound(secure, 1, [], 0, sender=stranger)
    assert tx.events == [rounds.RoundCancelled(secure, 1, 0, stranger)]


def test_duplicate_invitations_count_once_in_a_secure_round(rounds, coordinator, hospitals, chain):
    study = new_study(rounds, coordinator, min_updates=3)
    with ape.reverts(rounds.TooFewInvited, invited=2, minUpdates=3):
        rounds.openRound(study, commitment(GENESIS), chain.pending_timestamp + ONE_DAY,
                         [hospitals[0], hospitals[1], hospitals[0]], sender=coordinator)
