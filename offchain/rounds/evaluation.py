"""Federated evaluation: each hospital scores every committed model on its own validation split and
publishes the numbers beside its next update; readers gather them per round.

The records stay on site; what travels is :class:`SiteEvaluation`, a small
JSON document in the metadata of the hospital's next update (key
``evaluation``), so it costs the chain nothing: the update's CID and SHA-256,
already on chain, bind it, and every reader that opens the update (the
study's coordinator and auditors) reads the same bytes. It names the round
whose model it scores: the base of the round the update is for.

A study's last committed model has no next update: when the study ends, each
hospital that submitted to its last round posts the same document on its own
(:func:`post_evaluation`), sealed for the same readers, its CID and SHA-256 in
the registry's ``EvaluationReported`` event. Readers take each hospital's first
posting, from the hospitals the round counted.

Published metrics are claims. A reader treats a document that is not a
well-formed evaluation of the right model (bad JSON, wrong task, a count
under DP, another round's model) as absent and says so once, in a warning.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from fl.artifacts import ArtifactError, decode_artifact
from fl.evaluation import Metrics, MetricsError, evaluate_model, weighted, without_count
from offchain.rounds.client import ArtifactRef
from offchain.rounds.config import StudyConfig
from offchain.rounds.errors import ArtifactCheckFailed
from offchain.rounds.sealed import EVALUATION, UPDATE
from offchain.rounds.study import Study

EVALUATION_METADATA = "evaluation"
FORMAT = "medshare-evaluation/1"
# A well-formed document is a few hundred characters, two levels deep: anything far past that is refused
# before the JSON parser sees it (deep nesting can exhaust its stack).
MAX_DOCUMENT_CHARS = 4096
MAX_NESTING = 4


def _nesting(text: str) -> int:
    """How deep brackets nest in ``text`` (brackets inside strings count too: an over-estimate)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def study_task(config: StudyConfig) -> str:
    """The study's task: its model spec's where it names one, else binary (the built-in models')."""
    return getattr(config.model, "task", "binary")


@dataclass(frozen=True)
class SiteEvaluation:
    """One hospital's metrics of the model committed by ``model_round`` (0: the genesis model)."""

    model_round: int
    metrics: Metrics

    def document(self) -> str:
        """Its canonical JSON: what an update's metadata or an evaluation posting carries."""
        document = {"format": FORMAT, "model_round": self.model_round, "metrics": self.metrics.to_json()}
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)

    def to_metadata(self) -> dict[str, str]:
        """The update metadata entry that carries it."""
        return {EVALUATION_METADATA: self.document()}

    @classmethod
    def parse(cls, text: str, config: StudyConfig) -> SiteEvaluation:
        """A published evaluation as ``config``'s study must have it; MetricsError otherwise."""
        if len(text) > MAX_DOCUMENT_CHARS:
            raise MetricsError(f"{len(text):,} characters, at most {MAX_DOCUMENT_CHARS:,}")
        if _nesting(text) > MAX_NESTING:
            raise MetricsError(f"nested deeper than {MAX_NESTING} levels")
        try:
            document = json.loads(text)
        except ValueError as error:
            raise MetricsError(f"not JSON: {error}") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise MetricsError(f"not a {FORMAT} document")
        if set(document) != {"format", "model_round", "metrics"}:
            raise MetricsError(f"fields {sorted(document)}, expected format, model_round and metrics")
        model_round = document["model_round"]
        if isinstance(model_round, bool) or not isinstance(model_round, int) or model_round < 0:
            raise MetricsError(f"model_round must be a round number, got {model_round!r}")
        metrics = Metrics.from_json(document["metrics"], task=study_task(config), counts=not config.private)
        return cls(model_round, metrics)


def evaluate_site(config: StudyConfig, model_round: int, parameters: Mapping[str, torch.Tensor],
                  validation, allowed_models: Collection[str] = ()) -> SiteEvaluation:
    """A hospital's evaluation of the model committed by ``model_round`` on its ``validation`` split
    (a :class:`fl.data.Dataset`), with no count under DP; the model is built only from code the
    hospital's ``allowed_models`` lists (beside the built-ins)."""
    from fl.models import set_parameters

    model = config.model.build(seed=0, allowed=allowed_models)
    set_parameters(model, parameters)
    metrics = evaluate_model(model, validation.features, validation.labels, study_task(config),
                             config.decision_threshold)
    return SiteEvaluation(model_round, without_count(metrics) if config.private else metrics)


def post_evaluation(view: Study, evaluation: SiteEvaluation) -> ArtifactRef:
    """Seal ``evaluation`` for the study's update readers and post it as this member's evaluation of the
    model of round ``evaluation.model_round`` (what a hospital does when its study ends)."""
    artifact = view.seal_update(evaluation.model_round, evaluation.document().encode(), EVALUATION)
    view.member.rounds.report_evaluation(view.number, evaluation.model_round, artifact)
    return artifact


@dataclass(frozen=True)
class RoundMetrics:
    """What the hospitals published about one committed model: each one's metrics, by address, and
    their combination (:func:`fl.evaluation.weighted`)."""

    round: int
    sites: Mapping[str, Metrics]

    @property
    def weighted(self) -> Metrics | None:
        return weighted(self.sites)

    def to_json(self, names: Mapping[str, str] | None = None) -> dict[str, Any]:
        """``{"weighted": {...}, "hospitals": {name or address: {...}}}``."""
        names = names or {}
        combined = self.weighted
        return {"weighted": None if combined is None else combined.to_json(),
                "hospitals": {names.get(address, address): metrics.to_json()
                              for address, metrics in self.sites.items()}}

    def lines(self, names: Mapping[str, str] | None = None) -> list[str]:
        """The weighted metrics, then each hospital's (by name where known), a line each, in words."""
        names = names or {}
        combined = self.weighted
        return [f"weighted: {'no metrics' if combined is None else describe(combined)}",
                *(f"{names.get(address, address)}: {describe(metrics)}" for address, metrics in self.sites.items())]


def describe(metrics: Metrics) -> str:
    """``auroc 0.981, sensitivity 0.95, ...`` (undefined ones as n/a)."""
    shown = {k: v for k, v in metrics.to_json().items() if k != "task"}
    return ", ".join(f"{name} {'n/a' if value is None else _number(value)}" for name, value in shown.items())


def _number(value: float | int) -> str:
    return str(value) if isinstance(value, int) else f"{value:.3f}"


@dataclass
class PublishedMetrics:
    """A study's published metrics, by the round of the model they score, and the warnings about the
    documents left out."""

    rounds: dict[int, RoundMetrics] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def published_metrics(view: Study) -> PublishedMetrics:
    """Every hospital's published metrics of every committed model of ``view``'s study, read from the
    updates of the rounds based on it, and for the latest model also from the evaluations posted of it
    (the first a hospital published for a model counts). The reader must open updates: the study's
    coordinator or an auditor, with its keystore."""
    config = view.config
    found: dict[int, dict[str, Metrics]] = {}
    result = PublishedMetrics()
    for number in range(1, view.info.round_count + 1):
        base = view.round(number).base_round
        if base == 0:
            continue  # the genesis model: the report shows committed rounds only
        sites = found.setdefault(base, {})
        for update in view.updates(number):
            if update.participant in sites:
                continue
            try:
                metrics = _read(view, config, number, base, update)
            except (ArtifactCheckFailed, ArtifactError, MetricsError) as error:
                result.warnings.append(f"round {base}: the metrics {update.participant} published with its "
                                       f"update to round {number} are ignored: {error}")
                continue
            if metrics is not None:
                sites[update.participant] = metrics
    latest = view.info.latest_round
    if latest:
        _read_postings(view, config, latest, found.setdefault(latest, {}), result.warnings)
    result.rounds = {base: RoundMetrics(base, sites) for base, sites in found.items() if sites}
    return result


def _read_postings(view: Study, config: StudyConfig, number: int, sites: dict[str, Metrics],
                   warnings: list[str]) -> None:
    """Add to ``sites`` the evaluations of round ``number``'s model its counted hospitals posted (a
    hospital whose update already published them keeps those)."""
    counted = set(view.round(number).counted_submitters)
    for posting in view.member.rounds.evaluations(view.number, number):
        if posting.hospital in sites:
            continue
        ignored = f"round {number}: the evaluation {posting.hospital} posted is ignored"
        if posting.hospital not in counted:
            warnings.append(f"{ignored}: the round did not count its update")
            continue
        try:
            if posting.artifact is None:
                raise MetricsError("its CID does not parse")
            text = view.open(posting.artifact, view.place(number, EVALUATION, posting.hospital))
            sites[posting.hospital] = _scoring(SiteEvaluation.parse(text.decode("utf-8"), config), number)
        except (ArtifactCheckFailed, MetricsError, UnicodeDecodeError) as error:
            warnings.append(f"{ignored}: {error}")


def _read(view: Study, config: StudyConfig, number: int, base: int, update) -> Metrics | None:
    """The metrics ``update`` carries of the model of round ``base`` (None: it carries none)."""
    data = view.open(update.artifact, view.place(number, UPDATE, update.participant))
    text = decode_artifact(data).metadata.get(EVALUATION_METADATA)
    if text is None:
        return None
    return _scoring(SiteEvaluation.parse(text, config), base)


def _scoring(evaluation: SiteEvaluation, model_round: int) -> Metrics:
    """``evaluation``'s metrics if they score the model of ``model_round``; MetricsError otherwise."""
    if evaluation.model_round != model_round:
        raise MetricsError(f"they score the model of round {evaluation.model_round}, not round {model_round}'s")
    return evaluation.metrics
