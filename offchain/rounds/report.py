"""A study reported whole: its rounds, who took part, the bytes stored per update, whether each round
verifies, how well each committed model scores as each hospital published it on its own validation split
(:mod:`offchain.rounds.evaluation`, weighted and per hospital), and what each hospital has spent of its
privacy budget. Only a simulation or a bench, which holds a test split, adds its test accuracy.

One report serves every front end (``medshare fl status``, ``fl run``, the
portal's Studies page, the demo). It is built from the chain, the store and
the viewing member's keys only: a member who may not read the models (not in
the study) gets the chain's part, with ``notes`` saying what it could not
check and why.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from offchain.rounds.errors import ArtifactCheckFailed, RoundsError
from offchain.rounds.evaluation import RoundMetrics, published_metrics
from offchain.rounds.status import RoundStatus, StudyStatus, study_status
from offchain.rounds.study import Member, Study
from offchain.rounds.verifier import RoundVerdict, verify_rounds


@dataclass(frozen=True)
class PrivacySpend:
    """What one hospital has spent of its differential-privacy budget in a study so far.

    ``epsilon`` at ``delta`` composes (opacus RDP accounting) one DP-SGD
    release per update the hospital submitted; ``budget`` is the study's
    epsilon budget (None: the study declares none).
    """

    epsilon: float
    delta: float
    budget: float | None
    releases: int

    @property
    def over_budget(self) -> bool:
        return self.budget is not None and self.epsilon > self.budget

    def describe(self) -> str:
        budget = f" of a budget of {self.budget:g}" if self.budget is not None else ", no budget declared"
        return f"epsilon {self.epsilon:.3f}{budget} (delta {self.delta:g}, {self.releases} updates)"


def privacy_spend(study: Study, participant: str) -> PrivacySpend | None:
    """``participant``'s privacy spend in ``study``; None when the study declares no DP.

    Where the study set budgets on chain, the registry's record is the one every party agrees on: the
    budget and the cumulative epsilon the hospital declared (checked by the verifier). Otherwise every
    update the participant submitted (the registry's events) released one round of the config's
    DP-SGD, whatever became of its round, so each counts against the config's budget.
    """
    from fl.client import dp_round_parameters
    from fl.privacy import epsilon_of
    from offchain.rounds.privacy import EPSILON_SCALE, budget_of, declarations

    rounds = study.member.rounds
    budget, spent = budget_of(rounds, study.number, participant)
    if budget is not None:
        releases = len(declarations(rounds, study.number, participant=participant))
        return PrivacySpend(spent / EPSILON_SCALE, budget.delta, budget.epsilon, releases)
    config = study.config
    if config.dp is None:
        return None
    releases = sum(
        1
        for number in range(1, study.info.round_count + 1)
        for update in study.updates(number)
        if update.participant == participant
    )
    history = [dp_round_parameters(config.training, config.dp)] * releases
    return PrivacySpend(epsilon_of(history, config.dp.delta, config.dp.accountant), config.dp.delta,
                        config.dp.epsilon_budget, releases)


@functools.lru_cache(maxsize=1)
def bundled_test_split():
    """The held-out test split of the bundled breast-cancer data (the same for every study and run)."""
    from fl.data import load_split

    return load_split()[1]


def round_accuracy(study: Study, round_number: int, test=None) -> float:
    """The test accuracy of the model committed by ``round_number`` (0: genesis), fetched and checked
    from the store, on ``test`` (default: the bundled held-out split)."""
    from fl.models import evaluate, set_parameters

    test = bundled_test_split() if test is None else test
    spec = study.config.model
    if spec.num_features != test.num_features:
        raise RoundsError(f"study {study.number}'s model takes {spec.num_features} features, "
                          f"the test split has {test.num_features}")
    model = spec.build(seed=0)
    set_parameters(model, study.model(round_number))
    return evaluate(model, test).accuracy


@dataclass(frozen=True)
class RoundReport:
    """A round's chain state, its verdict (None: not checked), the metrics the hospitals published about
    its committed model and, in a simulation or a bench only, that model's test accuracy."""

    status: RoundStatus
    verified: bool | None = None
    failed_check: str | None = None
    failure: str = ""
    test_accuracy: float | None = None
    metrics: RoundMetrics | None = None  # what the hospitals published about its model (None: nothing read)

    def line(self, names: Mapping[str, str] | None = None) -> str:
        extra = ""
        if self.verified is not None and self.status.state == "committed":
            extra += ", verified" if self.verified else f", FAILED {self.failed_check}: {self.failure}"
        if self.test_accuracy is not None:
            extra += f", test accuracy {self.test_accuracy:.3f}"
        line = self.status.line(extra, dict(names or {}))
        if self.metrics is None:
            return line
        return "\n".join([line, *(f"  metrics, {entry}" for entry in self.metrics.lines(names))])

    def to_json(self) -> dict:
        return {**asdict(self.status), "verified": self.verified, "failed_check": self.failed_check,
                "failure": self.failure, "test_accuracy": self.test_accuracy,
                "metrics": None if self.metrics is None else self.metrics.to_json()}


@dataclass(frozen=True)
class ParticipantReport:
    """A hospital of the study: its name where known, its updates, and its privacy spend."""

    address: str
    name: str | None
    submitted: int
    counted: int
    privacy: PrivacySpend | None

    def line(self, dp_declared: bool) -> str:
        name = f" ({self.name})" if self.name else ""
        spend = self.privacy.describe() if self.privacy is not None else ("" if dp_declared else "no DP declared")
        return f"  {self.address}{name}: {self.submitted} updates, {self.counted} counted; {spend}"

    def to_json(self) -> dict:
        privacy = None
        if self.privacy is not None:
            privacy = {**asdict(self.privacy), "over_budget": self.privacy.over_budget}
        return {"address": self.address, "name": self.name, "submitted": self.submitted, "counted": self.counted,
                "privacy": privacy}


@dataclass(frozen=True)
class StudyReport:
    """A study as one member can check it; ``notes`` say what it could not check and why."""

    status: StudyStatus
    aggregator: str | None
    model: str | None
    dp_declared: bool
    participants: tuple[ParticipantReport, ...]
    auditors: tuple[str, ...]
    rounds: tuple[RoundReport, ...]
    notes: tuple[str, ...] = field(default=())

    def lines(self) -> list[str]:
        head, *_ = self.status.lines()
        lines = [head]
        if self.aggregator is not None:
            lines.append(f"model {self.model}, aggregator {self.aggregator}, "
                         + ("DP-SGD declared" if self.dp_declared else "no DP declared"))
        names = {p.address: p.name for p in self.participants if p.name}
        lines += [report.line(names) for report in self.rounds]
        if self.participants:
            lines.append("participants:")
            lines += [participant.line(self.dp_declared) for participant in self.participants]
        lines += [f"note: {note}" for note in self.notes]
        return lines

    def to_json(self) -> dict:
        status = self.status
        return {
            "study": status.study, "coordinator": status.coordinator, "minUpdates": status.min_updates,
            "latestRound": status.latest_round, "aggregator": self.aggregator, "model": self.model,
            "secureAggregation": status.secure,
            "dpDeclared": self.dp_declared, "auditors": list(self.auditors),
            "participants": [participant.to_json() for participant in self.participants],
            "rounds": [report.to_json() for report in self.rounds], "notes": list(self.notes),
        }


def study_report(member: Member, study: int, *, names: Mapping[str, str] | None = None, verify: bool = True,
                 test=None) -> StudyReport:
    """``study`` as ``member`` can check it, read from the chain once (one :class:`Study` view, which the
    status, the verifier and the published metrics share): rounds verified (when ``verify`` and
    ``member`` is an auditor or the coordinator), the metrics each hospital published on its own
    validation split, each participant's updates and privacy spend. Only a simulation or a bench, which
    holds a ``test`` split, scores the committed models on it: a consortium's coordinator has none.
    ``names`` gives people's names for accounts, where known."""
    names = names or {}
    view = Study(member, study)
    status = study_status(view)
    notes: list[str] = []
    try:
        config = view.config
    except ArtifactCheckFailed as error:
        notes.append(f"the study's config cannot be read: {error}")
        rounds = tuple(RoundReport(round_status) for round_status in status.rounds)
        return StudyReport(status, None, None, False, (), (), rounds, tuple(notes))
    has_key = member.keystore is not None
    verdicts: dict[int, RoundVerdict] = {}
    if verify:
        if member.address not in (view.coordinator, *config.auditors):
            notes.append("only the study's auditors and its coordinator hold the keys to verify its rounds")
        elif not has_key:
            notes.append(f"{member.address} has no keystore here: its rounds cannot be verified")
        else:
            verdicts = {verdict.round: verdict for verdict in verify_rounds(view)}
    accuracies: dict[int, float] = {}
    if test is not None:
        if member.address not in (view.coordinator, *config.members):
            notes.append("only the study's members may read its models: no test accuracy")
        elif not has_key:
            notes.append(f"{member.address} has no keystore here: its models cannot be scored")
        else:
            for round_status in status.rounds:
                if round_status.state != "committed":
                    continue
                try:
                    accuracies[round_status.round] = round_accuracy(view, round_status.round, test)
                except RoundsError as error:  # a damaged aggregate, or a model the test split does not fit
                    notes.append(f"round {round_status.round}: no test accuracy: {error}")
    published = _published_metrics(member, view, config, has_key, notes)
    rounds = tuple(
        RoundReport(round_status, *_verdict(verdicts.get(round_status.round)),
                    test_accuracy=accuracies.get(round_status.round), metrics=published.get(round_status.round))
        for round_status in status.rounds
    )
    participants = tuple(
        ParticipantReport(
            address, names.get(address),
            sum(address in round_status.submitters for round_status in status.rounds),
            sum(address in round_status.counted for round_status in status.rounds),
            privacy_spend(view, address),
        )
        for address in config.participants
    )
    return StudyReport(status, config.aggregator, f"{config.model.kind} ({config.model.num_features} features)",
                       config.dp is not None, participants, config.auditors, rounds, tuple(notes))


def _published_metrics(member: Member, view: Study, config, has_key: bool, notes: list[str]) -> dict[int, RoundMetrics]:
    """The metrics the hospitals published, by round, where ``member`` may read them; else a note why not."""
    if config.secure_aggregation is not None:
        notes.append("a study under secure aggregation publishes no per-hospital metrics")
        return {}
    if member.address not in view.update_readers():
        notes.append("only the study's auditors and its coordinator read the metrics the hospitals publish "
                     "with their updates")
        return {}
    if not has_key:
        notes.append(f"{member.address} has no keystore here: the hospitals' metrics cannot be read")
        return {}
    published = published_metrics(view)
    notes.extend(published.warnings)
    return published.rounds


def _verdict(verdict: RoundVerdict | None) -> tuple[bool | None, str | None, str]:
    if verdict is None:
        return None, None, ""
    return verdict.verified, verdict.failed_check, verdict.detail
