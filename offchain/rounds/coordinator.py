"""The coordinator: opens rounds, waits for updates or the deadline, aggregates, commits.

It keeps no state of its own: every :meth:`Coordinator.step` reads the
study's state from the chain and takes the one action that state calls for,
so a coordinator killed at any point and started again carries on where the
chain says it stands:

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
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from offchain.contract_client import ChainRefusal
from offchain.rounds.aggregate import RoundAggregation
from offchain.rounds.errors import RoundsError
from offchain.rounds.study import Member, Study

Log = Callable[[str], None]
CHECKPOINTS = ("opening", "opened", "aggregated", "sealed", "committed")


@dataclass(frozen=True)
class Step:
    """What one step did: ``opened``, ``committed``, ``cancelled``, ``waiting`` or ``done``, and for which round."""

    action: str
    round: int
    detail: str = ""


class Coordinator:
    """Drives one study; with ``target_rounds``, until that round is closed (committed or cancelled)."""

    def __init__(self, member: Member, study: int, *, target_rounds: int | None = None, log: Log | None = None,
                 checkpoint: Log | None = None) -> None:
        self.member = member
        self.study = Study(member, study)
        if self.study.coordinator != member.address:
            raise RoundsError(f"{member.address} is not the coordinator of study {study} ({self.study.coordinator} is)")
        member.require_keystore()
        self.target_rounds = target_rounds
        self.log = log or (lambda message: None)
        self.aggregation = RoundAggregation(self.study)
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

    def run(self, *, poll_seconds: float = 0.2) -> None:
        """Step until round ``target_rounds`` is closed."""
        while True:
            step = self.step()
            if step.action == "done":
                return
            if step.action == "waiting":
                time.sleep(poll_seconds)

    def _open(self, number: int) -> Step:
        self.checkpoint("opening")
        opened = open_next_round(self.study, self.log)
        self.checkpoint("opened")
        return Step("opened", opened)

    def _close(self, number: int, state) -> Step:
        updates = self.member.rounds.updates(self.study.number, number)
        invited = state.invited or self.study.config.participants
        deadline_passed = self.member.rounds.now() > state.deadline
        everyone = {update.participant for update in updates} >= set(invited)
        if not (everyone or deadline_passed):
            return Step("waiting", number, f"{len(updates)} of {len(invited)} updates")
        counted = set(self.member.participants_holding_role([u.participant for u in updates]))
        min_updates = self.study.info.min_updates
        if len(counted) < min_updates:
            if not deadline_passed:
                return Step("waiting", number, f"{len(counted)} counted updates, quorum {min_updates}")
            cancel_round(self.study, number)
            self.log(f"round {number}: cancelled, {len(counted)} counted updates by the deadline, quorum {min_updates}")
            return Step("cancelled", number)
        return self._commit(number, updates, counted)

    def _commit(self, number: int, updates, counted: set[str]) -> Step:
        base_round, base = self.member.rounds.latest_model(self.study.number)
        accepted = [update for update in updates if update.participant in counted]
        plaintext = self.aggregation.aggregate(number, base_round, accepted, self.log)
        self.checkpoint("aggregated")
        aggregate = self.study.seal_aggregate(number, plaintext)
        self.checkpoint("sealed")
        submitters = [update.participant for update in updates]
        try:
            self.member.rounds.commit_aggregate(self.study.number, number, submitters, aggregate)
        except ChainRefusal as refusal:
            if refusal.error in ("SubmittersMismatch", "RoundNotOpen"):
                # An update landed, or the round closed, since we read it: look again next step.
                self.aggregation = RoundAggregation(self.study)  # its state took this round in: replay afresh
                return Step("waiting", number, refusal.error)
            raise
        self.log(f"round {number}: committed {aggregate.cid} from {len(accepted)} updates")
        self.checkpoint("committed")
        return Step("committed", number, str(aggregate.cid))


def open_next_round(study: Study, log: Log | None = None) -> int:
    """Open the study's next round on its latest committed model, inviting its participants."""
    member = study.member
    config = study.config
    base_round, base = member.rounds.latest_model(study.number)
    deadline = member.rounds.now() + config.round_seconds
    opened = member.rounds.open_round(study.number, base, deadline, list(config.participants))
    if log is not None:
        log(f"round {opened}: opened on the model of round {base_round} ({base.cid}), deadline {deadline}")
    return opened


def cancel_round(study: Study, number: int) -> None:
    """Cancel a round that missed its quorum by its deadline (the contract refuses any other)."""
    study.member.rounds.cancel_round(study.number, number)
