"""What ``medshare fl run`` reports of a study: each committed round scored, verified and named.

:func:`score_round` scores a committed round's aggregate on the held-out test
split and names its parties; :func:`named_published_metrics` reads what the
hospitals published of each round's model; :class:`RunResult` is the whole run,
as ``fl run --json`` and ``./run demo`` show it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from offchain.rounds.client import RoundInfo


@dataclass(frozen=True)
class RoundResult:
    round: int
    base_cid: str
    aggregate_cid: str
    participants: list[str]
    test_accuracy: float | None  # None: a study the bundled test split does not fit
    verified: bool
    survivors: list[str] | None = None  # secure rounds: whose masked inputs are in the sum; None: not secure
    dropped: list[str] | None = None  # secure rounds: who advertised keys but whose input is not in the sum
    # What the hospitals published about this round's model, scored on their own validation splits:
    # {"weighted": {...}, "hospitals": {"hospital-1": {...}, ...}}; None: none published (yet)
    metrics: dict | None = None


@dataclass
class RunResult:
    study: int
    contract: str
    access: str
    rounds: list[RoundResult] = field(default_factory=list)
    plot: str = ""
    epsilon_spent: dict[str, float] = field(default_factory=dict)  # by hospital name; empty without budgets
    epsilon_budget: dict[str, float] = field(default_factory=dict)
    sites: str = "shared"

    def to_json(self) -> dict:
        return {"study": self.study, "contract": self.contract, "access": self.access,
                "rounds": [asdict(entry) for entry in self.rounds], "plot": self.plot,
                "epsilon_spent": self.epsilon_spent, "epsilon_budget": self.epsilon_budget, "sites": self.sites}


def score_round(view: Any, number: int, info: RoundInfo, names: Mapping[str, str], test: Any) -> RoundResult:
    """Committed round ``number`` of the study ``view`` shows: its base and aggregate, its parties by
    name, and the aggregate's accuracy on ``test`` (None: no test split fits the study's model).
    Not verified yet (the run verifies every round once the study is over)."""
    from offchain.rounds.aggregate import committed_base_round
    from offchain.rounds.report import round_accuracy
    from offchain.rounds.status import secure_parties

    accuracy = None if test is None else round_accuracy(view, number, test)
    base = view.model_ref(committed_base_round(view, number))
    parties = secure_parties(view, info)

    def named(accounts: list[str]) -> list[str]:
        return [names.get(account, account) for account in accounts]

    return RoundResult(number, str(base.cid), str(info.aggregate.cid), named(info.counted_submitters), accuracy,
                       False, *((named(parties.survivors), named(parties.dropped)) if parties else ()))


def named_published_metrics(view: Any, names: Mapping[str, str], warn: Callable[[str], None]) -> dict[int, dict]:
    """The hospitals' published metrics of the study ``view`` shows, by round, as JSON naming the
    hospitals; ``warn`` hears of each document left out. Empty for a secure study (no one may open
    its updates)."""
    from offchain.rounds.evaluation import published_metrics

    if view.secure:
        return {}
    published = published_metrics(view)
    for warning in published.warnings:
        warn(f"warning: {warning}")
    return {number: metrics.to_json(names) for number, metrics in published.rounds.items()}
