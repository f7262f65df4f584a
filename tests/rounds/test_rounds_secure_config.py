"""A study's secure-aggregation settings: canonical in the config (so in its digest), and refused at
creation when the protocol could not run (an aggregator that needs each update, a threshold the
roster cannot meet, phases that do not fit in a round). No chain needed."""

import json

import pytest

from fl.models import ModelSpec
from fl.secure_aggregation import FixedPointCodec
from offchain.rounds.config import SecureAggregationSettings, StudyConfig, StudyConfigError

HOSPITALS = tuple(f"0x{i:040x}" for i in range(1, 6))


def config(participants=3, **changes) -> StudyConfig:
    settings = dict(model=ModelSpec("logistic", 3), participants=HOSPITALS[:participants],
                    secure_aggregation=SecureAggregationSettings(threshold=2, phase_seconds=30))
    settings.update(changes)
    return StudyConfig(**settings)


def test_secure_settings_are_canonical_part_of_the_digest_and_round_trip():
    secure = SecureAggregationSettings(threshold=3, phase_seconds=20,
                                       codec=FixedPointCodec(fractional_bits=20, value_bound=64))
    study = config(5, aggregator="fedadam", aggregator_params={"learning_rate": 0.05}, secure_aggregation=secure)
    data = study.canonical_bytes()
    assert json.loads(data)["secure_aggregation"] == {
        "threshold": 3, "phase_seconds": 20, "fractional_bits": 20, "modulus_bits": 64, "value_bound": 64.0,
        "max_total_weight": 1 << 20}
    assert StudyConfig.from_bytes(data, study.digest()) == study
    assert study.digest() != config(5, aggregator="fedadam", aggregator_params={"learning_rate": 0.05},
                                    secure_aggregation=None).digest()
    assert json.loads(config(secure_aggregation=None).canonical_bytes())["secure_aggregation"] is None


@pytest.mark.parametrize("aggregator", ["median", "krum", "trimmed_mean", "weighted"])
def test_an_aggregator_that_needs_each_update_is_refused(aggregator):
    with pytest.raises(StudyConfigError, match=f"which aggregator '{aggregator}' cannot work from; "
                                               "use one of fedadam, fedavg, fedprox"):
        config(aggregator=aggregator)


@pytest.mark.parametrize("participants, threshold, message", [
    (2, 2, "needs at least 3 clients, got 2"),
    (3, 4, "threshold 4 exceeds the 3 clients"),
    (4, 2, "threshold 2 must exceed half of the 4 clients"),
    (5, 1, "threshold must be at least 2"),
    (5, 0, "threshold must be a positive int"),
])
def test_a_threshold_the_roster_cannot_meet_is_refused(participants, threshold, message):
    with pytest.raises(StudyConfigError, match=message):
        config(participants, secure_aggregation=SecureAggregationSettings(threshold=threshold))


def test_bad_phase_and_codec_settings_are_refused():
    with pytest.raises(StudyConfigError, match="phase_seconds must be a positive int"):
        SecureAggregationSettings(threshold=2, phase_seconds=0)
    with pytest.raises(StudyConfigError, match="do not fit in a round of 100 s"):
        config(round_seconds=100, secure_aggregation=SecureAggregationSettings(threshold=2, phase_seconds=40))
    data = json.loads(config().canonical_bytes())
    for bad in ({"modulus_bits": 32}, {"bogus": 1}, {"threshold": "2"}):
        document = {**data, "secure_aggregation": {**data["secure_aggregation"], **bad}}
        with pytest.raises(StudyConfigError):
            StudyConfig.from_bytes(json.dumps(document, sort_keys=True, separators=(",", ":")).encode())


def test_a_secagg_plus_graph_degree_is_canonical_and_checked_against_each_neighbourhood():
    hospitals = tuple(f"0x{i:040x}" for i in range(1, 25))
    secure = SecureAggregationSettings(threshold=5, phase_seconds=20, graph_degree=8)
    study = StudyConfig(
        model=ModelSpec("logistic", 3), participants=hospitals, secure_aggregation=secure)
    data = study.canonical_bytes()
    assert json.loads(data)["secure_aggregation"]["graph_degree"] == 8
    assert StudyConfig.from_bytes(data, study.digest()) == study
    # The complete graph writes no degree: configs from before SecAgg+ keep their bytes and digest.
    assert "graph_degree" not in json.loads(config().canonical_bytes())["secure_aggregation"]
    with pytest.raises(StudyConfigError, match="threshold 4 must exceed half of each neighbourhood of 9"):
        StudyConfig(model=ModelSpec("logistic", 3), participants=hospitals,
                    secure_aggregation=SecureAggregationSettings(threshold=4, graph_degree=8))
    for degree in (3, -2, True):
        with pytest.raises(StudyConfigError, match="graph_degree must be 0"):
            SecureAggregationSettings(threshold=5, graph_degree=degree)
