"""A study's rounds at a glance: state, base, aggregate, submitters and who was counted; for a round
under secure aggregation, its phase, its survivors and its dropouts."""

from __future__ import annotations

from dataclasses import dataclass

from offchain.rounds.client import RoundInfo, SecurePhase
from offchain.rounds.study import Member


@dataclass(frozen=True)
class SecureParties:
    """Who took part in a secure round, as the chain records it.

    ``advertised``: the invited hospitals that posted keys (each sender's first posting counts);
    ``survivors``: those whose masked input is in the round's sum (committed: the counted submitters;
    still open: the masked inputs so far); ``dropped``: those that advertised keys and whose input
    is not in the sum, known once the masked-input phase closed (empty before).
    """

    phase: SecurePhase
    advertised: tuple[str, ...]
    survivors: tuple[str, ...]
    dropped: tuple[str, ...]


def secure_parties(member: Member, study: int, info: RoundInfo, participants: tuple[str, ...] = ()) -> SecureParties | None:
    """The parties of round ``info`` of ``study`` (None: not a secure round); ``participants``: the
    study's, the roster of a round that invites anyone."""
    if info.secure_phase is None:
        return None
    rounds = member.rounds
    roster = {account.lower() for account in (info.invited or participants)}
    advertised = tuple(dict.fromkeys(message.sender for message in rounds.secure_messages(study, info.round, SecurePhase.KEYS)
                                     if not roster or message.sender.lower() in roster))
    if info.state == "committed":
        survivors = tuple(info.counted_submitters)
    elif info.state == "cancelled":
        survivors = ()
    else:
        survivors = tuple(update.participant for update in rounds.updates(study, info.round))
    settled = info.state != "open" or info.secure_phase > SecurePhase.MASKED_INPUTS
    dropped = tuple(account for account in advertised if account not in survivors) if settled else ()
    return SecureParties(info.secure_phase, advertised, survivors, dropped)


@dataclass(frozen=True)
class RoundStatus:
    round: int
    state: str
    deadline: int
    submitters: tuple[str, ...]
    counted: tuple[str, ...]
    aggregate_cid: str | None
    secure_phase: str | None = None  # a secure round's phase (keys ... finished); None: not secure
    survivors: tuple[str, ...] | None = None  # a secure round's (SecureParties); None: not secure
    dropped: tuple[str, ...] | None = None

    def line(self, extra: str = "", names: dict[str, str] | None = None) -> str:
        """The round in words; ``extra`` (e.g. a verdict) goes after the counts; ``names``: people's
        names for accounts, where known."""
        names = names or {}
        aggregate = f"  aggregate {self.aggregate_cid}" if self.aggregate_cid else ""
        counted = f", {len(self.counted)} counted" if self.state == "committed" else ""
        secure = ""
        if self.secure_phase is not None:
            phase = f" (phase {self.secure_phase})" if self.state == "open" else ""
            secure = f", secure{phase}: {len(self.survivors)} survivors, {len(self.dropped)} dropped"
            if self.dropped:
                secure += " (" + ", ".join(names.get(account, account) for account in self.dropped) + ")"
        return (f"round {self.round}: {self.state}, {len(self.submitters)} updates{counted}{secure}{extra}{aggregate}"
                + "".join(f"\n  {account}" + (f" ({names[account]})" if account in names else "")
                          + (" (counted)" if account in self.counted else "")
                          for account in self.submitters))


@dataclass(frozen=True)
class StudyStatus:
    study: int
    coordinator: str
    min_updates: int
    latest_round: int
    rounds: tuple[RoundStatus, ...]
    secure: bool = False

    def lines(self) -> list[str]:
        secure = ", secure aggregation" if self.secure else ""
        head = (f"study {self.study}: coordinator {self.coordinator}, quorum {self.min_updates}{secure}, "
                f"latest model from round {self.latest_round} ({len(self.rounds)} rounds)")
        return [head, *(status.line() for status in self.rounds)]


def study_status(member: Member, study: int, participants: tuple[str, ...] = ()) -> StudyStatus:
    """``study``'s rounds from the chain; ``participants``: the study's (from its config), the roster of
    a secure round that invites anyone."""
    rounds = member.rounds
    info = rounds.study(study)
    statuses = []
    for number in range(1, info.round_count + 1):
        state = rounds.round(study, number)
        submitters = tuple(update.participant for update in rounds.updates(study, number))
        parties = secure_parties(member, study, state, participants)
        statuses.append(RoundStatus(
            number, state.state, state.deadline, submitters, tuple(state.counted_submitters),
            str(state.aggregate.cid) if state.aggregate else None,
            *((parties.phase.name.lower().replace("_", "-"), parties.survivors, parties.dropped) if parties else ())))
    latest, _ = rounds.latest_model(study)
    return StudyStatus(study, info.coordinator, info.min_updates, latest, tuple(statuses), info.secure)
