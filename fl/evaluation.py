"""Clinical metrics of a model on one hospital's validation split, and their weighted combination.

A hospital evaluates each committed model on its own validation split (the
records never leave the site) and publishes only the numbers: for a binary
task AUROC, sensitivity and specificity at the study's decision threshold,
the Brier score, accuracy and the loss; for a multi-class task the same with
macro one-vs-rest AUROC, macro sensitivity and specificity (prediction by
argmax); for a regression task MSE and MAE (the loss is the MSE). The number
of examples is published only outside DP: under DP a count tells neighbouring
data sets apart, so none is given and hospitals weigh equally.

AUROC is scikit-learn's (ties count one half, as in the Mann-Whitney
statistic); it is undefined (None) on a split holding one class only, as are
sensitivity without positives and specificity without negatives.

A published :class:`Metrics` is a hospital's claim: :meth:`Metrics.from_json`
refuses anything that is not a well-formed one (:class:`MetricsError`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional

Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[str, ...] = ("binary", "multiclass", "regression")
DEFAULT_THRESHOLD = 0.5
# What each task publishes; the others stay absent. AUROC, sensitivity and specificity may be None (undefined).
_FIELDS_BY_TASK = {
    "binary": ("auroc", "sensitivity", "specificity", "brier", "accuracy", "loss"),
    "multiclass": ("auroc", "sensitivity", "specificity", "brier", "accuracy", "loss"),
    "regression": ("mse", "mae", "loss"),
}
_MAY_BE_UNDEFINED = ("auroc", "sensitivity", "specificity")
_PROBABILITIES = ("accuracy", "auroc", "sensitivity", "specificity")


class MetricsError(ValueError):
    """Metrics that are not well formed (a wrong type, a value out of range, a field the task has not)."""


@dataclass(frozen=True)
class Metrics:
    """One model's metrics on one data set (or a weighted combination of several)."""

    task: str
    loss: float
    accuracy: float | None = None
    auroc: float | None = None
    sensitivity: float | None = None
    specificity: float | None = None
    brier: float | None = None
    mse: float | None = None
    mae: float | None = None
    examples: int | None = None  # None under DP: no count is published

    def to_json(self) -> dict[str, Any]:
        """The task's fields (undefined ones as null) and ``examples`` when there is a count."""
        document: dict[str, Any] = {"task": self.task}
        document.update({name: getattr(self, name) for name in _FIELDS_BY_TASK[self.task]})
        if self.examples is not None:
            document["examples"] = self.examples
        return document

    @classmethod
    def from_json(cls, document: Any, *, task: str | None = None, counts: bool = True) -> Metrics:
        """Parse a published document; refuse any other task than ``task`` (when given) and, with
        ``counts`` False (a DP study), any document that publishes a count."""
        if not isinstance(document, Mapping):
            raise MetricsError(f"metrics must be a JSON object, got {type(document).__name__}")
        kind = document.get("task")
        if kind not in TASKS:
            raise MetricsError(f"unknown task {kind!r}; expected one of {', '.join(TASKS)}")
        if task is not None and kind != task:
            raise MetricsError(f"metrics of a {kind} task, the study's is {task}")
        wanted = _FIELDS_BY_TASK[kind]
        allowed = {"task", "examples", *wanted}
        unknown = sorted(set(document) - allowed)
        if unknown:
            raise MetricsError(f"fields {unknown} are not metrics of a {kind} task")
        values: dict[str, Any] = {}
        for name in wanted:
            if name not in document:
                raise MetricsError(f"{name} is missing")
            values[name] = _metric(name, document[name])
        if "examples" in document:
            if not counts:
                raise MetricsError("a count of examples in a study under DP, which publishes none")
            examples = document["examples"]
            if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
                raise MetricsError(f"examples must be a positive int, got {examples!r}")
            values["examples"] = examples
        return cls(task=kind, **values)


def _metric(name: str, value: Any) -> float | None:
    if value is None and name in _MAY_BE_UNDEFINED:
        return None
    try:
        finite = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    except OverflowError:  # an int past any float
        finite = False
    if not finite:
        raise MetricsError(f"{name} must be a finite number, got {str(value)[:40]}")
    value = float(value)
    if value < 0 or (name in _PROBABILITIES and value > 1):
        raise MetricsError(f"{name} is out of range: {value!r}")
    return value


def binary_metrics(logits: torch.Tensor, labels: torch.Tensor, threshold: float = DEFAULT_THRESHOLD) -> Metrics:
    """Metrics of one logit per example against 0/1 labels; positive where the probability ≥ ``threshold``."""
    check_threshold(threshold)
    logits = logits.detach().double().reshape(-1)
    labels = labels.detach().double().reshape(-1)
    _check_sizes(logits, labels)
    if not bool(((labels == 0) | (labels == 1)).all()):
        raise ValueError("binary labels must be 0 or 1")
    probabilities = torch.sigmoid(logits)
    predicted = probabilities >= threshold
    positive = labels == 1
    y, p = positive.numpy(), probabilities.numpy()
    return Metrics(
        task="binary",
        loss=float(functional.binary_cross_entropy_with_logits(logits, labels)),
        accuracy=float((predicted == positive).double().mean()),
        auroc=_auroc(y, p) if 0 < y.sum() < len(y) else None,
        sensitivity=_rate(predicted, positive),
        specificity=_rate(~predicted, ~positive),
        brier=float(((probabilities - labels) ** 2).mean()),
        examples=len(y),
    )


def multiclass_metrics(logits: torch.Tensor, labels: torch.Tensor) -> Metrics:
    """Metrics of K logits per example against class indices 0..K-1: macro one-vs-rest AUROC (over the
    classes both present and absent in the split), macro sensitivity and specificity of the argmax."""
    logits = logits.detach().double()
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(f"multi-class logits must be N x K with K >= 2, got {tuple(logits.shape)}")
    classes = logits.shape[1]
    _check_sizes(logits, labels)
    as_float = labels.detach().double().reshape(-1)
    target = as_float.long()
    if not bool((target.double() == as_float).all()) or bool(((target < 0) | (target >= classes)).any()):
        raise ValueError(f"class labels must be integers 0 to {classes - 1}")
    probabilities = torch.softmax(logits, dim=1)
    predicted = probabilities.argmax(dim=1)
    one_hot = functional.one_hot(target, classes).double()
    aurocs, sensitivities, specificities = [], [], []
    for k in range(classes):
        member = target == k
        if 0 < int(member.sum()) < len(target):
            aurocs.append(_auroc(member.numpy(), probabilities[:, k].numpy()))
        for rates, value in ((sensitivities, _rate(predicted == k, member)),
                             (specificities, _rate(predicted != k, ~member))):
            if value is not None:
                rates.append(value)
    return Metrics(
        task="multiclass",
        loss=float(functional.cross_entropy(logits, target)),
        accuracy=float((predicted == target).double().mean()),
        auroc=_mean(aurocs),
        sensitivity=_mean(sensitivities),
        specificity=_mean(specificities),
        brier=float(((probabilities - one_hot) ** 2).sum(dim=1).mean()),
        examples=len(target),
    )


def regression_metrics(predictions: torch.Tensor, targets: torch.Tensor) -> Metrics:
    """MSE (also the loss) and MAE of one prediction per example."""
    predictions = predictions.detach().double().reshape(-1)
    targets = targets.detach().double().reshape(-1)
    _check_sizes(predictions, targets)
    error = predictions - targets
    mse = float((error ** 2).mean())
    return Metrics(task="regression", loss=mse, mse=mse, mae=float(error.abs().mean()), examples=len(error))


@torch.no_grad()
def evaluate_model(model: nn.Module, features: torch.Tensor, labels: torch.Tensor, task: str = "binary",
                   threshold: float = DEFAULT_THRESHOLD) -> Metrics:
    """``model``'s metrics on (``features``, ``labels``) for ``task``."""
    was_training = model.training
    model.eval()
    try:
        outputs = model(features)
    finally:
        model.train(was_training)
    if task == "binary":
        return binary_metrics(outputs.squeeze(-1), labels, threshold)
    if task == "multiclass":
        return multiclass_metrics(outputs, labels)
    if task == "regression":
        return regression_metrics(outputs.squeeze(-1), labels)
    raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")


def without_count(metrics: Metrics) -> Metrics:
    """The metrics as a study under DP publishes them: no count of examples."""
    return Metrics(**{**{f.name: getattr(metrics, f.name) for f in fields(Metrics)}, "examples": None})


def weighted(per_site: Mapping[str, Metrics]) -> Metrics | None:
    """The sites' metrics combined: each metric the mean over the sites that define it, weighted by their
    examples when every site gave a count (then ``examples`` is the total), else unweighted (under DP).

    Weighted AUROC is the mean of the sites' AUROCs, not the AUROC of the pooled examples (which would
    need every site's scores)."""
    sites = list(per_site.values())
    if not sites:
        return None
    tasks = {m.task for m in sites}
    if len(tasks) != 1:
        raise MetricsError(f"cannot combine metrics of tasks {sorted(tasks)}")
    counted = all(m.examples is not None for m in sites)
    weights = [m.examples if counted else 1 for m in sites]
    combined: dict[str, Any] = {"task": sites[0].task, "examples": sum(weights) if counted else None}
    for name in _FIELDS_BY_TASK[sites[0].task]:
        pairs = [(getattr(m, name), w) for m, w in zip(sites, weights) if getattr(m, name) is not None]
        total = sum(w for _, w in pairs)
        combined[name] = sum(v * w for v, w in pairs) / total if pairs else None
    return Metrics(**combined)


def _rate(predicted: torch.Tensor, actual: torch.Tensor) -> float | None:
    """Of the examples where ``actual`` holds, the share also ``predicted``; None when there are none."""
    count = int(actual.sum())
    return None if count == 0 else int((predicted & actual).sum()) / count


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _check_sizes(outputs: torch.Tensor, labels: torch.Tensor) -> None:
    if outputs.shape[0] != labels.reshape(-1).shape[0]:
        raise ValueError(f"{outputs.shape[0]} outputs but {labels.reshape(-1).shape[0]} labels")
    if outputs.shape[0] == 0:
        raise ValueError("no examples to evaluate")


def check_threshold(threshold: float) -> None:
    """A decision threshold is a probability strictly between 0 and 1."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
        raise ValueError(f"the decision threshold must be in (0, 1), got {threshold!r}")


def _auroc(labels, scores) -> float:
    # scikit-learn is loaded only when a model is scored: nodes and readers that never score need not pay for it.
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))
