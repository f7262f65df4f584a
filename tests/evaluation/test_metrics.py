"""fl.evaluation's metrics against values worked out by hand or by a brute-force count."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from fl.evaluation import (
    Metrics,
    MetricsError,
    binary_metrics,
    evaluate_model,
    multiclass_metrics,
    regression_metrics,
    weighted,
    without_count,
)
from fl.models import ModelSpec
from offchain.rounds.config import StudyConfig
from offchain.rounds.errors import StudyConfigError
from offchain.rounds.evaluation import SiteEvaluation


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def logits(*probabilities: float) -> torch.Tensor:
    return torch.tensor([logit(p) for p in probabilities], dtype=torch.float64)


def test_binary_metrics_by_hand():
    # probabilities 0.1 0.4 0.35 0.8 against labels 0 0 1 1 (the textbook ROC example): AUROC 0.75
    m = binary_metrics(logits(0.1, 0.4, 0.35, 0.8), torch.tensor([0.0, 0.0, 1.0, 1.0]))
    assert m.auroc == pytest.approx(0.75)
    assert m.sensitivity == 0.5 and m.specificity == 1.0 and m.accuracy == 0.75
    assert m.brier == pytest.approx((0.1**2 + 0.4**2 + 0.65**2 + 0.2**2) / 4)
    assert m.loss == pytest.approx(-(math.log(0.9) + math.log(0.6) + math.log(0.35) + math.log(0.8)) / 4)
    assert m.examples == 4 and m.mse is None and m.task == "binary"


def test_sensitivity_and_specificity_follow_the_threshold():
    scores, labels = logits(0.1, 0.4, 0.35, 0.8), torch.tensor([0.0, 0.0, 1.0, 1.0])
    low = binary_metrics(scores, labels, threshold=0.3)
    assert (low.sensitivity, low.specificity, low.accuracy) == (1.0, 0.5, 0.75)
    high = binary_metrics(scores, labels, threshold=0.9)
    assert (high.sensitivity, high.specificity) == (0.0, 1.0)
    # AUROC does not depend on the threshold
    assert low.auroc == high.auroc == pytest.approx(0.75)


def test_auroc_counts_ties_as_one_half():
    # positives score 0 and 2, negatives 0 and 1: pairs 0.5 + 0 + 1 + 1 of 4
    assert binary_metrics(torch.tensor([0.0, 0.0, 1.0, 2.0]), torch.tensor([0.0, 1.0, 0.0, 1.0])).auroc == 0.625
    everything_tied = binary_metrics(torch.zeros(6), torch.tensor([0.0, 1.0] * 3))
    assert everything_tied.auroc == 0.5 and everything_tied.brier == 0.25
    assert everything_tied.loss == pytest.approx(math.log(2))


def _pairwise_auroc(scores: list[float], labels: list[int]) -> float:
    positives = [s for s, y in zip(scores, labels) if y]
    negatives = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-3, 3), st.booleans()), min_size=2, max_size=40)
       .filter(lambda pairs: 0 < sum(y for _, y in pairs) < len(pairs)))
def test_auroc_is_the_mann_whitney_statistic_with_ties(pairs):
    # few distinct scores: many ties
    scores, labels = [float(s) for s, _ in pairs], [int(y) for _, y in pairs]
    got = binary_metrics(torch.tensor(scores), torch.tensor(labels, dtype=torch.float32)).auroc
    assert got == pytest.approx(_pairwise_auroc(scores, labels))


def test_one_class_leaves_what_it_cannot_define_undefined():
    only_negatives = binary_metrics(torch.tensor([-1.0, 2.0]), torch.tensor([0.0, 0.0]))
    assert only_negatives.auroc is None and only_negatives.sensitivity is None
    assert only_negatives.specificity == 0.5


@pytest.mark.parametrize("scores, labels, message", [
    (torch.zeros(3), torch.tensor([0.0, 1.0]), "3 outputs but 2 labels"),
    (torch.zeros(0), torch.zeros(0), "no examples"),
    (torch.zeros(2), torch.tensor([0.0, 2.0]), "0 or 1"),
])
def test_binary_metrics_refuse_bad_input(scores, labels, message):
    with pytest.raises(ValueError, match=message):
        binary_metrics(scores, labels)


@pytest.mark.parametrize("threshold", [0, 1, -0.5, 1.5, float("nan"), True])
def test_a_threshold_outside_zero_to_one_is_refused(threshold):
    with pytest.raises(ValueError, match="threshold"):
        binary_metrics(torch.zeros(2), torch.tensor([0.0, 1.0]), threshold)
    with pytest.raises(StudyConfigError, match="decision_threshold"):
        StudyConfig(ModelSpec("logistic", 3), ("0x" + "1" * 40,), decision_threshold=threshold)


def test_multiclass_is_macro_one_vs_rest():
    generator = torch.Generator().manual_seed(7)
    scores = torch.randn(60, 3, generator=generator, dtype=torch.float64)
    labels = torch.arange(60) % 3
    m = multiclass_metrics(scores, labels.float())
    probabilities = torch.softmax(scores, dim=1).numpy()
    assert m.auroc == pytest.approx(roc_auc_score(labels.numpy(), probabilities, multi_class="ovr", average="macro"))
    predicted = scores.argmax(dim=1)
    recalls = [float(((predicted == k) & (labels == k)).sum() / (labels == k).sum()) for k in range(3)]
    assert m.sensitivity == pytest.approx(sum(recalls) / 3)
    assert m.accuracy == pytest.approx(float((predicted == labels).double().mean()))
    one_hot = torch.nn.functional.one_hot(labels, 3).numpy()
    assert m.brier == pytest.approx(float(((probabilities - one_hot) ** 2).sum(axis=1).mean()))
    assert m.loss == pytest.approx(float(torch.nn.functional.cross_entropy(scores, labels)))


def test_multiclass_auroc_averages_the_classes_the_split_holds():
    # class 2 is absent: macro over classes 0 and 1 (each perfectly ranked)
    scores = torch.tensor([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [2.0, 0.0, 1.0], [0.0, 2.0, 1.0]])
    m = multiclass_metrics(scores, torch.tensor([0.0, 1.0, 0.0, 1.0]))
    assert m.auroc == 1.0 and m.accuracy == 1.0
    with pytest.raises(ValueError, match="integers 0 to 2"):
        multiclass_metrics(scores, torch.tensor([0.0, 1.5, 0.0, 3.0]))


def test_regression_metrics_by_hand():
    m = regression_metrics(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 3.0, 2.0]))
    assert (m.mse, m.mae, m.loss) == (pytest.approx(5 / 3), pytest.approx(1.0), pytest.approx(5 / 3))
    assert m.auroc is None and m.to_json() == {"task": "regression", "loss": m.loss, "mse": m.mse, "mae": m.mae,
                                               "examples": 3}


def test_evaluate_model_scores_a_built_in_model():
    model = ModelSpec("logistic", 2).build(seed=0)
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0]]))
        model[0].bias.zero_()
    features = torch.tensor([[-2.0, 5.0], [-1.0, 1.0], [1.0, 0.0], [3.0, 9.0]])
    m = evaluate_model(model, features, torch.tensor([0.0, 1.0, 0.0, 1.0]), "binary", 0.5)
    assert m.auroc == 0.75 and m.sensitivity == 0.5 and m.specificity == 0.5


def test_weighted_metrics_weigh_by_examples_and_equally_without_counts():
    a = Metrics("binary", loss=1.0, accuracy=0.5, auroc=0.6, sensitivity=None, specificity=1.0, brier=0.2, examples=10)
    b = Metrics("binary", loss=0.0, accuracy=1.0, auroc=0.9, sensitivity=0.5, specificity=0.0, brier=0.1, examples=30)
    both = weighted({"a": a, "b": b})
    assert both.auroc == pytest.approx(0.825) and both.examples == 40 and both.loss == pytest.approx(0.25)
    assert both.sensitivity == 0.5  # only b defines it
    private = weighted({"a": without_count(a), "b": without_count(b)})
    assert private.auroc == pytest.approx(0.75) and private.examples is None
    assert weighted({}) is None


def test_metrics_round_trip_through_json():
    m = binary_metrics(logits(0.1, 0.4, 0.35, 0.8), torch.tensor([0.0, 0.0, 1.0, 1.0]))
    assert Metrics.from_json(m.to_json(), task="binary") == m
    assert Metrics.from_json(without_count(m).to_json(), counts=False) == without_count(m)


GOOD = {"task": "binary", "loss": 0.3, "accuracy": 0.9, "auroc": 0.95, "sensitivity": None, "specificity": 0.8,
        "brier": 0.1, "examples": 12}


@pytest.mark.parametrize("document, message", [
    ([], "JSON object"),
    ({**GOOD, "task": "survival"}, "unknown task"),
    ({**GOOD, "auroc": 1.5}, "out of range"),
    ({**GOOD, "loss": -1}, "out of range"),
    ({**GOOD, "brier": float("nan")}, "finite"),
    ({**GOOD, "accuracy": None}, "finite"),
    ({**GOOD, "accuracy": "0.9"}, "finite"),
    ({**GOOD, "loss": 10**400}, "finite"),
    ({**GOOD, "examples": True}, "positive int"),
    ({**GOOD, "examples": 0}, "positive int"),
    ({**GOOD, "mse": 0.1}, "not metrics of a binary task"),
    ({k: v for k, v in GOOD.items() if k != "brier"}, "brier is missing"),
])
def test_malformed_metrics_are_refused(document, message):
    with pytest.raises(MetricsError, match=message):
        Metrics.from_json(document)


def test_a_count_under_dp_or_another_task_is_refused():
    with pytest.raises(MetricsError, match="under DP"):
        Metrics.from_json(GOOD, counts=False)
    with pytest.raises(MetricsError, match="the study's is regression"):
        Metrics.from_json(GOOD, task="regression")


@settings(max_examples=80, deadline=None)
@given(st.one_of(st.text(), st.binary().map(lambda b: b.decode("latin-1"))))
def test_any_text_parses_as_an_evaluation_or_is_refused_as_malformed(text):
    config = StudyConfig(ModelSpec("logistic", 3), ("0x" + "1" * 40,))
    try:
        SiteEvaluation.parse(text, config)
    except MetricsError:
        pass


@pytest.mark.parametrize("text, message", [
    ("[" * 100_000 + "]" * 100_000, "characters, at most"),
    ("[" * 1000 + "]" * 1000, "nested deeper"),
    ("{not json", "not JSON"),
    ('{"format": "medshare-evaluation/1", "model_round": 1}', "expected format, model_round and metrics"),
    ('{"format": "medshare-evaluation/1", "model_round": -1, "metrics": {}}', "model_round"),
    ('{"format": "other", "model_round": 1, "metrics": {}}', "not a medshare-evaluation/1 document"),
])
def test_a_malformed_evaluation_document_is_refused(text, message):
    config = StudyConfig(ModelSpec("logistic", 3), ("0x" + "1" * 40,))
    with pytest.raises(MetricsError, match=message):
        SiteEvaluation.parse(text, config)


def test_the_decision_threshold_is_in_the_config_only_when_not_the_default():
    people = ("0x" + "1" * 40,)
    plain = StudyConfig(ModelSpec("logistic", 3), people)
    assert b"decision_threshold" not in plain.canonical_bytes()
    strict = StudyConfig(ModelSpec("logistic", 3), people, decision_threshold=0.3)
    assert StudyConfig.from_bytes(strict.canonical_bytes(), strict.digest()).decision_threshold == 0.3
    assert strict.digest() != plain.digest()
