"""The coordinator: opens rounds, waits for updates or the deadline, aggregates, commits.

It keeps no state of its own: every :meth:`Coordinator.step` reads the
study's state from the chain and takes the one action that state calls for,
so a coordinator killed at any point and started again carries on where the
chain says it stands:

- it never counts a malformed update: each is checked once, as it arrives,
  by the round's coordinator step (:meth:`fl.round.CoordinatorStep.screen`
  over the chain's round, :class:`offchain.rounds.board.ChainRound`: fetch,
  decrypt, every reader's key, decode, the base model's shapes), the
  simulation's very step; one that fails is rejected, recorded as such on
  chain at commit (or cancel), so one bad update cannot block a round;
- it never commits a round twice: a committed round is closed on chain, and
  the contract refuses a second commit;
- it never skips a submitted update: it aggregates every update the chain
  lists for the round, and the contract refuses a commit whose submitter list
  differs from the submissions it recorded (an update that lands meanwhile
  makes the commit fail, and the next step aggregates again, with it);
- it never opens a round on a stale base: the base is the chain's latest
  committed model, which the contract checks again.

A sealed aggregate stored before a crash and never committed is simply left
behind: the next step aggregates again (bit-identically) and seals afresh.

A round of a study under secure aggregation goes through the protocol's
phases on chain (:mod:`offchain.rounds.secure_board`): the coordinator closes
each once every party expected in it posted, or ``phase_seconds`` after it
saw the phase open (the silent ones are dropouts), closes the unmasking phase
last, derives the survivors' sum from the chain and the store, and commits
the study's aggregator on it, stored in the clear (the sum is public by
design), counting the survivors. With too few parties left to unmask it
waits for the deadline and cancels the round, saying why.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fl.aggregation import ClientModel
from fl.round import ScreeningMemo
from fl.secure_aggregation import (
    MIN_CLIENTS,
    Phase,
    PostingUnavailable,
    SecureAggregationError,
    board_outcome,
    secure_sum_from_board,
)
from offchain.inputs import show_time
from offchain.chain.contract import ChainRefusal
from offchain.rounds.aggregate import RoundAggregation
from offchain.rounds.board import ChainRound
from offchain.rounds.client import SecurePhase
from offchain.rounds.errors import RoundsError
from offchain.rounds.privacy import privacy_faults
from offchain.rounds.secure_board import BOARD_PHASES, ChainBulletinBoard
from offchain.rounds.selection import select_participants
from offchain.rounds.study import Member, Study

Log = Callable[[str], None]
CHECKPOINTS = ("opening", "opened", "aggregated", "sealed", "committed")


@dataclass(frozen=True)
class Step:
    """What one step did: ``opened``, ``closed`` (a secure round's phase), ``committed``, ``cancelled``,
    ``waiting`` or ``done``, and for which round."""

    action: str
    round: int
    detail: str = ""


class Coordinator:
    """Drives one study; with ``target_rounds``, until that round is closed (committed or cancelled).

    ``select``: invite at most this many participants a round (:mod:`offchain.rounds.selection`);
    None invites every participant of the study. ``clock``: seconds, to time a secure round's phases
    (a restarted coordinator starts the current phase's wait again, which is safe).
    """

    def __init__(self, member: Member, study: int, *, target_rounds: int | None = None, log: Log | None = None,
                 checkpoint: Log | None = None, select: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.member = member
        self.study = Study(member, study)
        if self.study.coordinator != member.address:
            raise RoundsError(f"{member.address} is not the coordinator of study {study} ({self.study.coordinator} is)")
        secure = self.study.config.secure_aggregation
        if secure is None:
            member.require_keystore()  # it opens every sealed update; under secure aggregation there is none
        elif select is not None:
            secure.check_roster(select)
        self.target_rounds = target_rounds
        self.select = select
        self.clock = clock
        # Secure rounds: the current round's board, and when this process first saw each phase open.
        self._boards: dict[int, ChainBulletinBoard] = {}
        self._phase_seen: dict[tuple[int, SecurePhase], float] = {}
        self.log = log or (lambda message: None)
        self.aggregation = RoundAggregation(self.study)
        # Updates checked so far: a submitted update never changes.
        self._screened = ScreeningMemo()
        # Called at each point a crash could split a step (CHECKPOINTS); tests kill the process there.
        self.checkpoint = checkpoint or (lambda point: None)

    def step(self) -> Step:
        """Take the action the chain's state calls for now."""
        self.study.refresh()
        info = self.study.info
        current = info.round_count
        state = self.member.rounds.round(self.study.number, current) if current else None
        if state is None or state.state != "open":
            if self.target_rounds is not None and current >= self.target_rounds:
                return Step("done", current)
            return self._open(current + 1)
        return self._close(current, state)

    def run(self, *, idle_seconds: float = 1.0) -> None:
        """Step until round ``target_rounds`` is closed; while waiting, step again at each new block
        (or after ``idle_seconds``, for a deadline to pass)."""
        seen = None
        while True:
            head = self.member.rounds.wait_for_block(seen, timeout=idle_seconds)
            step = self.step()
            if step.action == "done":
                return
            seen = head if step.action == "waiting" else None

    def _open(self, number: int) -> Step:
        self.checkpoint("opening")
        opened = open_next_round(self.study, self.log, select=self.select)
        self.checkpoint("opened")
        # Fetch and check the base now, while the hospitals train: the close then only reads updates.
        self.study.model(self.study.info.latest_round)
        return Step("opened", opened)

    def _close(self, number: int, state) -> Step:
        if state.secure_phase is not None:
            return self._close_secure(number, state)
        # Check what arrived while others are still training (each update once across polls): the close
        # then only aggregates. A DP declaration the verifier would refuse (not the study's DP, a wrong
        # epsilon) rejects an update however well formed.
        chain_round = ChainRound(self.study, number)
        screening = self.aggregation.step.screen(
            number, self.study.model(state.base_round), chain_round, chain_round, self._screened,
            refuse=lambda posted: privacy_faults(self.member.rounds, self.study.number, number,
                                                 [update.participant for update in posted], self.study.config))
        for account, reason in screening.rejected:
            if account in screening.checked:
                self.log(f"round {number}: rejecting the update of {account}: {reason}")
        submitters = [update.participant for update in screening.posted]
        invited = state.invited or self.study.config.participants
        deadline_passed = self.member.rounds.now() > state.deadline
        everyone = set(submitters) >= set(invited)
        if not (everyone or deadline_passed):
            return Step("waiting", number, f"{len(submitters)} of {len(invited)} updates")
        holders = set(self.member.participants_holding_role(submitters))
        accepted = [client for client in screening.accepted if client.client_id in holders]
        rejected = [account for account, _ in screening.rejected if account in holders]
        min_updates = self.study.info.min_updates
        if len(accepted) < min_updates:
            if not deadline_passed:
                return Step("waiting", number, f"{len(accepted)} counted updates, quorum {min_updates}")
            if not self._cancel(number, rejected):
                return Step("waiting", number, "the chain's clock has not passed the deadline yet")
            self.log(f"round {number}: cancelled, {len(accepted)} counted updates by the deadline "
                     f"({len(rejected)} rejected), quorum {min_updates}")
            return Step("cancelled", number)
        return self._commit(number, state, submitters, accepted, rejected)

    def _cancel(self, number: int, rejected: Sequence[str]) -> bool:
        """Cancel the round; False if the chain refused because the block it ran in was not past the
        deadline yet (the pending block's time, read just before, can lag the wall clock's)."""
        try:
            cancel_round(self.study, number, rejected)
        except ChainRefusal as refusal:
            if refusal.error == "DeadlineNotReached":
                return False
            raise
        return True

    def _commit(self, number: int, state, submitters: list[str], accepted: list[ClientModel],
                rejected: list[str]) -> Step:
        plaintext = self.aggregation.aggregate(number, state.base_round, progress=self.log, clients=accepted)
        return self._store_and_commit(number, plaintext, submitters, rejected, f"{len(accepted)} updates")

    def _store_and_commit(self, number: int, plaintext: bytes, submitters: list[str], rejected: list[str],
                          counted: str) -> Step:
        tensors = self.aggregation.last_result[1]
        self.checkpoint("aggregated")
        aggregate = self.study.store_aggregate(number, plaintext)
        self.checkpoint("sealed")
        rounds = self.member.rounds
        # With a target, a round before it opens the next in its commit's transaction; without one, the
        # next round waits for a step of its own (a caller may stop between rounds).
        more = self.target_rounds is not None and number < self.target_rounds
        try:
            if more:
                # Commit and open the next round on the new aggregate in one transaction.
                deadline, invited = next_round_terms(self.study, self.select, through_round=number)
                rounds.commit_and_open(self.study.number, number, submitters, aggregate, deadline, invited,
                                       rejected=rejected)
            else:
                rounds.commit_aggregate(self.study.number, number, submitters, aggregate, rejected=rejected)
        except ChainRefusal as refusal:
            if refusal.error in ("SubmittersMismatch", "RoundNotOpen", "QuorumNotMet", "SurvivorLostRole"):
                # An update landed, a role was lost, or the round closed since we read it: look again.
                self.aggregation = RoundAggregation(self.study)  # its state took this round in: replay afresh
                return Step("waiting", number, refusal.error)
            raise
        self.study.remember_model(number, tensors)
        self._screened.forget_through(number)
        self.log(f"round {number}: committed {aggregate.cid} from {counted}"
                 + (f", {len(rejected)} rejected" if rejected else ""))
        self.checkpoint("committed")
        if more:
            self.log(f"round {number + 1}: opened on the model of round {number} ({aggregate.cid})")
        return Step("committed", number, str(aggregate.cid))


    # Secure rounds -------------------------------------------------------------------------------

    def _close_secure(self, number: int, state) -> Step:
        """Close the round's current phase once every party expected in it posted, or once
        ``phase_seconds`` passed since this coordinator saw it open; after the last, derive the sum
        and commit. With too few parties left for the protocol, wait for the deadline and cancel."""
        board = self._boards.get(number)
        if board is None:
            self._boards = {number: (board := ChainBulletinBoard(self.study, number))}
            self._phase_seen = {key: seen for key, seen in self._phase_seen.items() if key[0] >= number}
        deadline_passed = self.member.rounds.now() > state.deadline
        if state.secure_phase is SecurePhase.FINISHED:
            return self._commit_secure(number, board, deadline_passed)
        phase = BOARD_PHASES[state.secure_phase]
        session = board.session
        try:
            expected = self._expected(board, phase)
        except PostingUnavailable as error:
            return self._cancel_secure(number, deadline_passed, f"phase {phase.previous.value}'s postings cannot "
                                       f"be read: {error}", retrying=True)
        posted = [sender for sender in board.senders(phase) if sender in expected]
        needed = session.threshold if phase is Phase.UNMASKING else session.min_survivors
        name = phase.value
        if deadline_passed and phase in (Phase.KEYS, Phase.SHARES):
            return self._cancel_secure(number, True, f"the deadline passed in phase {name}, before any masked input")
        seen = self._phase_seen.setdefault((number, state.secure_phase), self.clock())
        timed_out = self.clock() - seen >= self.study.config.secure_aggregation.phase_seconds
        # Past the deadline no masked input can come: the phase is as full as it will be.
        timed_out = timed_out or (deadline_passed and phase is Phase.MASKED_INPUTS)
        if len(posted) < len(expected) and not timed_out:
            return Step("waiting", number, f"phase {name}: {len(posted)} of {len(expected)} posted")
        if len(posted) < needed:
            return self._cancel_secure(number, deadline_passed,
                                       f"only {len(posted)} of {len(expected)} posted in phase {name}, "
                                       f"the protocol needs {needed} (threshold {session.threshold}, "
                                       f"at least {MIN_CLIENTS} survivors)")
        board.close(session.session_id, phase)
        self.log(f"round {number}: closed phase {name}, {len(posted)} of {len(expected)} posted")
        if phase is Phase.UNMASKING:
            return self._commit_secure(number, board, deadline_passed)
        return Step("closed", number, name)

    @staticmethod
    def _expected(board: ChainBulletinBoard, phase: Phase) -> list[str]:
        """Who should post in ``phase``: the roster, then those whose posting in the phase before counted
        (for the unmasking phase, the survivors: an excluded sender's answer is not awaited)."""
        if phase is Phase.KEYS:
            return list(board.roster(board.session.session_id))
        if phase is Phase.UNMASKING:
            try:
                return list(board_outcome(board, board.session).survivors)
            except PostingUnavailable:
                raise
            except SecureAggregationError:
                pass  # too few survivors: the count below says so, and the round is cancelled at the deadline
        return [posting.sender for posting in board.read(board.session.session_id, phase.previous)]

    def _commit_secure(self, number: int, board: ChainBulletinBoard, deadline_passed: bool) -> Step:
        try:
            total = secure_sum_from_board(board, board.session)
        except PostingUnavailable as error:
            return self._cancel_secure(number, deadline_passed, f"the sum cannot be derived yet: {error}",
                                       retrying=True)
        except SecureAggregationError as error:
            return self._cancel_secure(number, deadline_passed, f"the sum cannot be derived: {error}")
        counted = self.member.participants_holding_role(list(total.survivors))
        evicted = [survivor for survivor in total.survivors if survivor not in counted]
        if evicted:
            # Their inputs are in the sum, which cannot leave them out: the chain refuses the commit.
            return self._cancel_secure(number, deadline_passed, f"survivor{'s' if len(evicted) > 1 else ''} "
                                       f"{', '.join(evicted)} lost the participant role: the secure sum holds "
                                       f"{'their inputs' if len(evicted) > 1 else 'its input'}, which cannot be "
                                       f"left out")
        if len(counted) < self.study.info.min_updates:
            return self._cancel_secure(number, deadline_passed, f"{len(counted)} survivors hold the participant "
                                       f"role, quorum {self.study.info.min_updates}")
        state = self.member.rounds.round(self.study.number, number)
        plaintext = self.aggregation.aggregate_secure(number, state.base_round, total, self.log)
        submitters = self.member.rounds.submitters(self.study.number, number)
        # A submitted masked input that is not in the sum (malformed, or its sender excluded for a bad share)
        # is not counted.
        if total.excluded:
            self.log(f"round {number}: excluded for a bad share, proven by a complaint: {', '.join(total.excluded)}")
        rejected = [account for account in submitters if account not in total.survivors]
        dropped = f", {len(total.dropped)} dropped" if total.dropped else ""
        return self._store_and_commit(number, plaintext, submitters, rejected,
                                      f"the secure sum of {len(total.survivors)} survivors{dropped}")

    def _cancel_secure(self, number: int, deadline_passed: bool, reason: str, *, retrying: bool = False) -> Step:
        if not deadline_passed:
            return Step("waiting", number, f"{reason}; " + ("retrying until the deadline" if retrying
                                                             else "cancelling at the deadline"))
        # No update counts in a round with no sum: every submitter's masked input is left out.
        submitters = self.member.rounds.submitters(self.study.number, number)
        if not self._cancel(number, submitters):
            return Step("waiting", number, f"{reason}; the chain's clock has not passed the deadline yet")
        self.log(f"round {number}: cancelled: {reason}")
        return Step("cancelled", number, reason)


def next_round_terms(study: Study, select: int | None = None, through_round: int | None = None) -> tuple[int, list[str]]:
    """The next round's deadline and invited participants (all of the study's, or a selection judged
    on the rounds through ``through_round``)."""
    config = study.config
    deadline = study.member.rounds.now() + config.round_seconds
    if select is None:
        return deadline, list(config.participants)
    return deadline, select_participants(study, select, through_round)


def open_next_round(study: Study, log: Log | None = None, *, select: int | None = None) -> int:
    """Open the study's next round on its latest committed model, inviting its participants (or a selection)."""
    member = study.member
    longest = int(member.rounds.contract.MAX_ROUND_DURATION())
    if study.config.round_seconds > longest:
        raise RoundsError(f"study {study.number}'s rounds last {study.config.round_seconds:,} s, longer than the "
                          f"registry's longest round ({longest:,} s): it can never open a round; create a new study")
    base_round, base = member.rounds.latest_model(study.number)
    deadline, invited = next_round_terms(study, select)
    opened = member.rounds.open_round(study.number, base, deadline, invited)
    if log is not None:
        log(f"round {opened}: opened on the model of round {base_round} ({base.cid}), deadline {show_time(deadline)}"
            + (f", inviting {len(invited)}" if select is not None else ""))
    return opened


def cancel_round(study: Study, number: int, rejected: Sequence[str] = ()) -> None:
    """Cancel a round that missed its quorum by its deadline (the contract refuses any other), not
    counting the ``rejected`` (malformed) updates."""
    study.member.rounds.cancel_round(study.number, number, rejected)
