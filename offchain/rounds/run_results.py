"""What ``medshare fl run`` reports of a study: each committed round scored, verified and named.

:meth:`RoundResult.of` takes a committed round of the study's report
(:func:`offchain.rounds.report.study_report`, the one read of the chain that
``fl status`` shows too) and names its parties; :class:`RunResult` is the whole
run, as ``fl run --json`` and ``./run demo`` show it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from offchain.rounds.report import RoundReport
    from offchain.rounds.status import StudyStatus


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

    @classmethod
    def of(cls, entry: RoundReport, study: StudyStatus, names: Mapping[str, str]) -> RoundResult:
        """A committed round of the study's report, with the hospitals' names for their accounts."""
        status = entry.status

        def named(accounts) -> list[str]:
            return [names.get(account, account) for account in accounts]

        secure = () if status.survivors is None else (named(status.survivors), named(status.dropped))
        return cls(status.round, study.model_cid(status.base_round), status.aggregate_cid, named(status.counted),
                   entry.test_accuracy, bool(entry.verified), *secure,
                   metrics=None if entry.metrics is None else entry.metrics.to_json(names))


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
