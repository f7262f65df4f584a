"""A study's rounds at a glance: state, base, aggregate, submitters and who was counted; for a round
under secure aggregation, its phase, its survivors and its dropouts."""

from __future__ import annotations

from dataclasses import dataclass

from offchain.rounds.client import RoundInfo, SecurePhase
from offchain.rounds.errors import ArtifactCheckFailed
from offchain.rounds.secure_board import survivors_and_dropped
from offchain.ipfs import StoreError
from offchain.rounds.study import Study


@dataclass(frozen=True)
class SecureParties:
    """Who took part in a secure round, as the chain records it
    (:func:`offchain.rounds.secure_board.survivors_and_dropped`): ``survivors``, whose masked input is
    in the round's sum (still open: the masked inputs so far); ``dropped``, the rest of the round's
    roster, known once the masked-input phase closed (empty before)."""

    phase: SecurePhase
    survivors: tuple[str, ...]
    dropped: tuple[str, ...]


def secure_parties(study: Study, info: RoundInfo) -> SecureParties | None:
    """The parties of round ``info`` of ``study`` (None: not a secure round)."""
    if info.secure_phase is None:
        return None
    survivors, dropped = survivors_and_dropped(study, info.round)
    settled = info.state != "open" or info.secure_phase > SecurePhase.MASKED_INPUTS
    return SecureParties(info.secure_phase, tuple(survivors), tuple(dropped) if settled else ())


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
    update_bytes: int | None = None  # the mean bytes the store holds per update; None: no update readable
    base_round: int = 0  # the round whose model this one trains on (0: the genesis model)

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
        stored = "" if self.update_bytes is None else f", {self.update_bytes:,} bytes per update stored"
        return (f"round {self.round}: {self.state}, {len(self.submitters)} updates{counted}{secure}{extra}{stored}"
                f"{aggregate}"
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
    genesis_cid: str = ""

    def model_cid(self, round_number: int) -> str | None:
        """The CID of the model committed by ``round_number`` (0: the genesis model; None: none committed)."""
        return self.genesis_cid if round_number == 0 else self.rounds[round_number - 1].aggregate_cid

    def lines(self) -> list[str]:
        secure = ", secure aggregation" if self.secure else ""
        head = (f"study {self.study}: coordinator {self.coordinator}, quorum {self.min_updates}{secure}, "
                f"latest model from round {self.latest_round} ({len(self.rounds)} rounds)")
        return [head, *(status.line() for status in self.rounds)]


def study_status(view: Study) -> StudyStatus:
    """The rounds of ``view``'s study as the chain records them, with the bytes the store holds per update."""
    statuses = []
    for number in range(1, view.info.round_count + 1):
        state = view.round(number)
        updates = view.updates(number)
        try:
            parties = secure_parties(view, state) if view.info.secure else None
        except ArtifactCheckFailed:  # a round inviting anyone, of a study whose config is unreadable
            parties = None
        statuses.append(RoundStatus(
            number, state.state, state.deadline, tuple(update.participant for update in updates),
            tuple(state.counted_submitters), str(state.aggregate.cid) if state.aggregate else None,
            *((parties.phase.name.lower().replace("_", "-"), parties.survivors, parties.dropped) if parties else ()),
            update_bytes=_bytes_per_update(view, updates), base_round=state.base_round))
    latest, _ = view.member.rounds.latest_model(view.number)
    info = view.info
    return StudyStatus(view.number, info.coordinator, info.min_updates, latest, tuple(statuses), info.secure,
                       str(info.genesis.cid))


def _bytes_per_update(view: Study, updates) -> int | None:
    """The mean bytes the store holds per update of a round (None: no update, or one the store lacks).
    Anyone may count them: a sealed update's size is no secret."""
    if not updates:
        return None
    try:
        sizes = [view.stored_bytes(update.artifact) for update in updates]
    except StoreError:
        return None
    return round(sum(sizes) / len(sizes))
