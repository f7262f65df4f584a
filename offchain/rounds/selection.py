"""Dynamic node selection: which participants a round invites, decided off chain from the chain's record.

The coordinator invites at most ``k`` (never fewer than the study's quorum) of
the study's participants that hold the participant role now, preferring the
live ones (each submitted to the last round it was invited to, or was never
invited yet), then the larger declared sample counts (the last count each
submitted). The registry records the invitation (``openRound``'s invited
list) and refuses a submission from anyone else, so every party can see who
was asked and check the choice against the same record.
"""

from __future__ import annotations

from dataclasses import dataclass

from offchain.rounds.errors import RoundsError
from offchain.rounds.study import Study

LOOKBACK_ROUNDS = 5
"""How many past rounds a choice reads (liveness and sample counts)."""


@dataclass(frozen=True)
class Candidate:
    account: str
    live: bool  # submitted to the last round it was invited to (or was never invited)
    samples: int  # the sample count of its last update (0: none seen)
    order: int  # its place in the study config (the tie-break)

    def rank(self) -> tuple:
        return (not self.live, -self.samples, self.order)


def candidates(study: Study, through_round: int) -> list[Candidate]:
    """The study's participants holding the role now, with their record over the last rounds through
    ``through_round`` (a round being committed counts: its submissions are final)."""
    participants = list(study.config.participants)
    holders = set(study.member.participants_holding_role(participants))
    rounds = study.member.rounds
    live: dict[str, bool] = {}
    samples: dict[str, int] = {}
    for number in range(through_round, max(0, through_round - LOOKBACK_ROUNDS), -1):
        info = rounds.round(study.number, number)
        submitted = {update.participant: update.samples for update in rounds.updates(study.number, number)}
        invited = info.invited or tuple(participants)
        for account in participants:
            if account in submitted:
                samples.setdefault(account, submitted[account])
            if account in invited:
                live.setdefault(account, account in submitted)
    return [Candidate(account, live.get(account, True), samples.get(account, 0), order)
            for order, account in enumerate(participants) if account in holders]


def select_participants(study: Study, k: int, through_round: int | None = None) -> list[str]:
    """The accounts the next round invites: the best ``max(k, quorum)`` candidates, in config order."""
    if k < 1:
        raise RoundsError(f"--select must be at least 1, got {k}")
    through = study.info.round_count if through_round is None else through_round
    ranked = sorted(candidates(study, through), key=Candidate.rank)
    wanted = max(k, study.info.min_updates)
    if len(ranked) < study.info.min_updates:
        raise RoundsError(f"study {study.number}: only {len(ranked)} participants hold the role, the quorum is "
                          f"{study.info.min_updates}")
    chosen = {candidate.account for candidate in ranked[:wanted]}
    return [account for account in study.config.participants if account in chosen]
