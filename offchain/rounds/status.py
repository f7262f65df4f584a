"""A study's rounds at a glance: state, base, aggregate, submitters and who was counted."""

from __future__ import annotations

from dataclasses import dataclass

from offchain.rounds.study import Member


@dataclass(frozen=True)
class RoundStatus:
    round: int
    state: str
    deadline: int
    submitters: tuple[str, ...]
    counted: tuple[str, ...]
    aggregate_cid: str | None

    def line(self, extra: str = "") -> str:
        """The round in words; ``extra`` (e.g. a verdict) goes after the counts."""
        aggregate = f"  aggregate {self.aggregate_cid}" if self.aggregate_cid else ""
        counted = f", {len(self.counted)} counted" if self.state == "committed" else ""
        return (f"round {self.round}: {self.state}, {len(self.submitters)} updates{counted}{extra}{aggregate}"
                + "".join(f"\n  {account}" + (" (counted)" if account in self.counted else "")
                          for account in self.submitters))


@dataclass(frozen=True)
class StudyStatus:
    study: int
    coordinator: str
    min_updates: int
    latest_round: int
    rounds: tuple[RoundStatus, ...]

    def lines(self) -> list[str]:
        head = (f"study {self.study}: coordinator {self.coordinator}, quorum {self.min_updates}, "
                f"latest model from round {self.latest_round} ({len(self.rounds)} rounds)")
        return [head, *(status.line() for status in self.rounds)]


def study_status(member: Member, study: int) -> StudyStatus:
    rounds = member.rounds
    info = rounds.study(study)
    statuses = []
    for number in range(1, info.round_count + 1):
        state = rounds.round(study, number)
        submitters = tuple(update.participant for update in rounds.updates(study, number))
        statuses.append(RoundStatus(number, state.state, state.deadline, submitters, tuple(state.counted_submitters),
                                    str(state.aggregate.cid) if state.aggregate else None))
    latest, _ = rounds.latest_model(study)
    return StudyStatus(study, info.coordinator, info.min_updates, latest, tuple(statuses))
