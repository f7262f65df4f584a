"""StudyConfig.from_options: the one builder of a study's config from the options `fl create`, `fl run`
(through RunSettings) and the benches give; every default defined once."""

import importlib

import pytest

from fl.client import LocalTrainingConfig
from fl.compression import CompressionConfig
from fl.data import BUNDLED_FEATURES, load_split
from fl.models import ModelSpec
from offchain.rounds.config import (
    DEFAULT_ROUND_SECONDS,
    StudyConfig,
    default_threshold,
    secure_quorum,
)
from offchain.rounds.errors import StudyConfigError
from offchain.rounds.runner import RunSettings

HOSPITALS = tuple("0x" + f"{i + 1:040x}" for i in range(5))
AUDITOR = "0x" + "a" * 40


def test_defaults_are_the_bundled_tables_logistic_model_fedavg_and_every_participants_update():
    config = StudyConfig.from_options(HOSPITALS, (AUDITOR,))
    assert config.model == ModelSpec("logistic", BUNDLED_FEATURES)
    assert (config.aggregator, config.round_seconds, config.training) == ("fedavg", DEFAULT_ROUND_SECONDS,
                                                                         LocalTrainingConfig())
    assert config.dp is config.distributed_dp is config.secure_aggregation is config.compression is None
    assert config.default_quorum() == len(HOSPITALS)
    assert config.canonical_bytes() == StudyConfig(ModelSpec("logistic", 30), HOSPITALS, (AUDITOR,)).canonical_bytes()


def test_the_cli_default_width_is_the_bundled_tables():
    cli = importlib.import_module("offchain.cli.fl")  # the package's `fl` is the click group of that name
    assert cli.BUNDLED_FEATURES == BUNDLED_FEATURES == load_split()[1].num_features


def test_secure_options_take_the_threshold_over_half_and_a_quorum_of_what_can_unmask():
    config = StudyConfig.from_options(HOSPITALS, secure=True, phase_seconds=30)
    secure = config.secure_aggregation
    assert (secure.threshold, secure.phase_seconds) == (default_threshold(5), 30) == (3, 30)
    assert config.default_quorum() == secure_quorum(3) == 3
    assert StudyConfig.from_options(HOSPITALS, secure=True, threshold=2, graph_degree=2).secure_aggregation \
        .graph_degree == 2


def test_compression_and_dp_options():
    config = StudyConfig.from_options(HOSPITALS, top_k=0.1, int8=True)
    assert config.compression == CompressionConfig(0.1, True)
    private = StudyConfig.from_options(HOSPITALS, dp_epsilon=4.0, dp_rounds=3)
    assert private.dp.epsilon_budget == 4.0 and private.dp.delta == 1e-5 and private.dp.accountant == "rdp"
    assert private.private and private.training != LocalTrainingConfig()  # DP-SGD's own learning rate


@pytest.mark.parametrize("options, message", [
    ({"dp_rounds": 3}, "--dp-delta and --dp-rounds need --dp-epsilon"),
    ({"dp_delta": 1e-6}, "--dp-delta needs --dp-epsilon"),
    ({"dp_epsilon": 4.0}, "--dp-epsilon needs --dp-rounds"),
    ({"dp_epsilon": 4.0, "dp_rounds": 2, "distributed_dp": True}, "it needs --secure-aggregation"),
    ({"threshold": 3}, "need --secure-aggregation"),
    ({"phase_seconds": 10}, "need --secure-aggregation"),
    ({"secure": True, "aggregator": "median"}, "secure aggregation reveals only the sum"),
    ({"secure": True, "top_k": 0.1}, "compression"),
])
def test_options_that_need_another_or_contradict_are_refused_in_words(options, message):
    with pytest.raises(StudyConfigError, match=message):
        StudyConfig.from_options(HOSPITALS, **options)


def test_fl_run_builds_the_config_fl_create_would_from_the_same_options():
    run = RunSettings(rounds=4, hospitals=5, secure=True, phase_seconds=20, round_seconds=300,
                      aggregator="fedadam", aggregator_params={"learning_rate": 0.05})
    made = run.study_config(HOSPITALS, (AUDITOR,))
    expected = StudyConfig.from_options(HOSPITALS, (AUDITOR,), secure=True, phase_seconds=20, round_seconds=300,
                                        aggregator="fedadam", aggregator_params={"learning_rate": 0.05})
    assert made.canonical_bytes() == expected.canonical_bytes()
    assert run.quorum == made.default_quorum()
