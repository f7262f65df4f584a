"""Every bad input is refused with a clear error that names the client at fault."""

import pytest
import torch

from fl.aggregation import AggregationError, ClientModel, aggregate_models, create_aggregator

ALL_RULES = [
    ("fedavg", None),
    ("fedprox", None),
    ("weighted", {"weight_strategy": "data_size"}),
    ("trimmed_mean", {"trim_ratio": 0.2}),
    ("median", None),
    ("krum", {"f": 1}),
]


def state(**overrides):
    base = {"w": torch.ones(2, 3), "b": torch.zeros(3)}
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def clients(odd=None, count=5, **client_fields):
    """``count`` good clients, with the state of client 'c3' replaced by ``odd``."""
    models = [ClientModel(f"c{i}", state(), 10) for i in range(count)]
    if odd is not None:
        models[3] = ClientModel("c3", odd, 10, **client_fields)
    return models


@pytest.mark.parametrize("rule,config", ALL_RULES)
@pytest.mark.parametrize(
    "odd,message",
    [
        (state(b=None), r"client 'c3': missing parameter\(s\) \['b'\]"),
        (state(extra=torch.ones(1)), r"client 'c3': unexpected parameter\(s\) \['extra'\]"),
        (state(w=torch.ones(3, 2)), r"client 'c3': parameter 'w' has shape \(3, 2\), expected \(2, 3\)"),
        (state(w=torch.ones(2, 3, dtype=torch.float64)), r"client 'c3': parameter 'w' has dtype torch.float64"),
        (state(b=torch.tensor([0.0, float("nan"), 0.0])), r"client 'c3': parameter 'b' contains NaN or Inf"),
        (state(b=torch.tensor([0.0, float("inf"), 0.0])), r"client 'c3': parameter 'b' contains NaN or Inf"),
        (state(b=torch.tensor([0.0, -float("inf"), 0.0])), r"client 'c3': parameter 'b' contains NaN or Inf"),
    ],
)
def test_structural_and_numeric_faults_name_the_client(rule, config, odd, message):
    with pytest.raises(AggregationError, match=message):
        aggregate_models(clients(odd), rule, config)


def test_non_finite_value_is_found_in_any_chunk():
    big = [ClientModel(f"c{i}", {"w": torch.zeros(100_000)}, 1) for i in range(4)]
    poisoned = torch.zeros(100_000)
    poisoned[99_999] = float("nan")
    big[2] = ClientModel("c2", {"w": poisoned}, 1)
    for rule in ("fedavg", "median"):
        with pytest.raises(AggregationError, match="client 'c2': parameter 'w' contains NaN or Inf"):
            aggregate_models(big, rule)


def test_non_finite_global_model_is_refused():
    with pytest.raises(AggregationError, match="global model: 'b' contains NaN or Inf"):
        aggregate_models(clients(), "fedadam", global_model=state(b=torch.tensor([float("nan")] * 3)))


def test_global_model_structure_is_the_reference():
    with pytest.raises(AggregationError, match=r"client 'c0': unexpected parameter\(s\) \['b'\] \(absent from the global model\)"):
        aggregate_models(clients(), global_model=state(b=None))


@pytest.mark.parametrize(
    "parameters,message",
    [
        ({"w": [1.0, 2.0]}, "client 'h1': parameter 'w' is a list, expected a torch.Tensor"),
        ([torch.ones(1)], "client 'h1': parameters must be a mapping"),
        ({}, "client 'h1': parameters are empty"),
    ],
)
def test_parameters_must_be_tensors(parameters, message):
    with pytest.raises(AggregationError, match=message):
        ClientModel("h1", parameters, 1)


@pytest.mark.parametrize("samples", [0, -3, True, 2.5])
def test_sample_count_must_be_a_positive_int(samples):
    with pytest.raises(AggregationError, match="client 'h1': data_samples must be"):
        ClientModel("h1", state(), samples)


@pytest.mark.parametrize("field", ["training_loss", "training_accuracy"])
def test_reported_metrics_must_be_finite(field):
    with pytest.raises(AggregationError, match=f"client 'h1': {field} must be finite"):
        ClientModel("h1", state(), 1, **{field: float("nan")})


def test_client_id_must_be_a_non_empty_string():
    with pytest.raises(AggregationError, match="client_id must be a non-empty string"):
        ClientModel("", state(), 1)


def test_unsupported_dtype_is_refused():
    models = [ClientModel(f"c{i}", {"mask": torch.ones(3, dtype=torch.bool)}, 1) for i in range(2)]
    with pytest.raises(AggregationError, match="client 'c0': parameter 'mask' has unsupported dtype torch.bool"):
        aggregate_models(models)


def test_duplicate_client_ids_are_refused():
    models = clients()
    models[4] = ClientModel("c1", state(), 10)
    with pytest.raises(AggregationError, match="client 'c1' appears more than once"):
        aggregate_models(models)


@pytest.mark.parametrize(
    "given,message",
    [
        ([], "no client models to aggregate"),
        ("c0", "client_models must be a sequence of ClientModel"),
        ({"c0": ClientModel("c0", state(), 1)}, "client_models must be a sequence of ClientModel"),
        ([state()], r"client_models\[0\] is a dict, expected ClientModel"),
    ],
)
def test_client_models_must_be_a_non_empty_sequence(given, message):
    with pytest.raises(AggregationError, match=message):
        aggregate_models(given)


@pytest.mark.parametrize(
    "weights,message",
    [
        ([1, 1, 1, -1, 1], "client 'c3': weight must be a finite number >= 0.0, got -1"),
        ([1, 1, 1, float("nan"), 1], "client 'c3': weight must be a finite number"),
        ([1, 1, 1, float("inf"), 1], "client 'c3': weight must be a finite number"),
        ([1, 1, 1, "2", 1], "client 'c3': weight must be a finite number"),
        ([0, 0, 0, 0, 0], "all client weights are zero"),
        ([1, 1], "client_weights has 2 entries for 5 client models"),
        ({"c0": 1}, r"client_weights has no weight for client\(s\) \['c1', 'c2', 'c3', 'c4'\]"),
        ({f"c{i}": 1 for i in range(6)}, r"client_weights name unknown client\(s\) \['c5'\]"),
        ("11111", "client_weights must be a mapping"),
    ],
)
def test_bad_client_weights(weights, message):
    with pytest.raises(AggregationError, match=message):
        aggregate_models(clients(), client_weights=weights)


@pytest.mark.parametrize("rule,config", [("trimmed_mean", {"trim_ratio": 0.2}), ("median", None), ("krum", {"f": 1})])
def test_robust_rules_refuse_client_weights(rule, config):
    with pytest.raises(AggregationError, match=f"{rule} is unweighted by design"):
        aggregate_models(clients(), rule, config, client_weights=[1] * 5)


def test_too_few_clients_for_the_trim_ratio():
    with pytest.raises(AggregationError, match="trim_ratio 0.1 trims no client out of 5; it needs at least 10 clients"):
        aggregate_models(clients(), "trimmed_mean")


def test_too_few_clients_for_krum():
    with pytest.raises(AggregationError, match=r"krum: f=2 needs at least 7 clients \(n >= 2f \+ 3\), got 6"):
        aggregate_models(clients(count=6), "krum", {"f": 2})
    with pytest.raises(AggregationError, match="krum: m=5 exceeds n - f = 4"):
        aggregate_models(clients(), "krum", {"f": 1, "m": 5})


@pytest.mark.parametrize(
    "rule,config,message",
    [
        ("fedavg", {"mu": 0.1}, r"fedavg: unknown config key\(s\) \['mu'\]; allowed: none"),
        ("fedprox", {"mu": -1}, "fedprox: mu must be a finite number >= 0.0"),
        ("fedadam", {"beta1": 1.0}, "fedadam: beta1 must be a finite number >= 0.0 and < 1.0"),
        ("fedadam", {"epsilon": 0}, "fedadam: epsilon must be a finite number > 0.0"),
        ("fedadam", {"learning_rate": float("nan")}, "fedadam: learning_rate must be a finite number"),
        ("weighted", {"weight_strategy": "votes"}, "weight_strategy must be one of accuracy, loss, data_size"),
        ("weighted", {"min_weight": 2}, "weighted: min_weight must be a finite number >= 0.0 and <= 1.0"),
        ("trimmed_mean", {"trim_ratio": 0.5}, "trim_ratio must be a finite number >= 0.0 and < 0.5"),
        ("krum", {"f": -1}, "krum: f must be an integer >= 0"),
        ("krum", {"m": 0}, "krum: m must be an integer >= 1"),
        ("krum", {"f": 1.5}, "krum: f must be an integer >= 0"),
    ],
)
def test_bad_config_values(rule, config, message):
    with pytest.raises(AggregationError, match=message):
        create_aggregator(rule, config)


def test_weighted_needs_the_metric_it_weights_by():
    models = clients()
    with pytest.raises(AggregationError, match="client 'c0': weight_strategy 'accuracy' needs training_accuracy"):
        aggregate_models(models, "weighted")
    lossy = [ClientModel(f"c{i}", state(), 1, training_loss=1.0 - i) for i in range(3)]
    with pytest.raises(AggregationError, match="client 'c1': training_loss must be positive"):
        aggregate_models(lossy, "weighted", {"weight_strategy": "loss"})


def test_fedadam_needs_the_global_model():
    with pytest.raises(AggregationError, match="fedadam needs global_model"):
        aggregate_models(clients(), "fedadam")


def test_fedadam_state_must_fit_the_model():
    aggregator = create_aggregator("fedadam")
    aggregator.aggregate(clients(), global_model=state())
    other = {"w": torch.ones(4), "b": torch.zeros(3)}
    models = [ClientModel(f"c{i}", other, 1) for i in range(2)]
    with pytest.raises(AggregationError, match=r"optimizer state for 'w' has shape \(2, 3\)"):
        aggregator.aggregate(models, global_model=other)
    renamed = {"v": torch.ones(2, 3), "b": torch.zeros(3)}
    with pytest.raises(AggregationError, match="optimizer state was built for a model with parameters"):
        aggregator.aggregate([ClientModel("c0", renamed, 1)], global_model=renamed)
    assert aggregator.step == 1  # failed rounds leave the state untouched


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda s: s.pop("step"), "'step' must be a non-negative int64 scalar tensor"),
        (lambda s: s.update(step=torch.tensor(-1)), "'step' must be a non-negative int64"),
        (lambda s: s.update(step=torch.tensor(0)), "moments present at step 0"),
        (lambda s: s.pop("exp_avg_sq/w"), "exp_avg and exp_avg_sq name different parameters"),
        (lambda s: s.update(junk=torch.ones(1)), r"unexpected key\(s\) \['junk'\]"),
        (lambda s: s.update({"exp_avg/w": torch.ones(5)}), "moments of 'w' differ in shape"),
        (lambda s: s.update({"exp_avg/w": torch.full((2, 3), float("nan"))}), "exp_avg/w contains NaN or Inf"),
        (lambda s: s.update({"exp_avg_sq/w": -torch.ones(2, 3)}), "exp_avg_sq/w has negative entries"),
        (lambda s: s.update({"exp_avg/w": torch.ones(2, 3, dtype=torch.int32)}), "must be a float32 or float64"),
    ],
)
def test_fedadam_rejects_malformed_state(mutate, message):
    aggregator = create_aggregator("fedadam")
    aggregator.aggregate(clients(), global_model=state())
    saved = aggregator.state_dict()
    mutate(saved)
    fresh = create_aggregator("fedadam")
    with pytest.raises(AggregationError, match=message):
        fresh.load_state_dict(saved)
    assert fresh.step == 0 and list(fresh.state_dict()) == ["step"]


def test_an_aggregate_that_overflows_is_refused():
    huge = [ClientModel(f"c{i}", {"w": torch.full((4,), 3e38)}, 1) for i in range(3)]
    with pytest.raises(AggregationError, match="the aggregate of parameter 'w' overflows its dtype"):
        aggregate_models(huge, "trimmed_mean", {"trim_ratio": 0.0})


def test_an_overflow_among_packed_small_parameters_names_the_parameter():
    """Small parameters share a pack: the error still names the one that overflowed, not its neighbours."""
    models = [ClientModel(f"c{i}", {"a": torch.ones(3), "w": torch.full((4,), 3e38), "z": torch.ones(2)}, 1) for i in range(3)]
    with pytest.raises(AggregationError, match="the aggregate of parameter 'w' overflows its dtype"):
        aggregate_models(models, "trimmed_mean", {"trim_ratio": 0.0})
    models[1] = ClientModel("c1", {"a": torch.ones(3), "w": torch.ones(4), "z": torch.tensor([1.0, -float("inf")])}, 1)
    with pytest.raises(AggregationError, match="client 'c1': parameter 'z' contains NaN or Inf"):
        aggregate_models(models, "fedavg")
