"""Aggregation rules against hand-computed and independently computed results."""

import math

import numpy as np
import pytest
import torch

from fl.aggregation import (
    AggregationError,
    AggregationResult,
    Aggregator,
    ClientModel,
    aggregate_models,
    available_aggregators,
    create_aggregator,
    evaluate_aggregation_quality,
    register_aggregator,
)
from fl.aggregation.base import normalise
from fl.aggregation.kernels import CHUNK, run_workers
from fl.aggregation.registry import _REGISTRY


def client(client_id, samples=1, loss=None, accuracy=None, **parameters):
    tensors = {name: torch.as_tensor(value) for name, value in parameters.items()}
    return ClientModel(client_id, tensors, samples, training_loss=loss, training_accuracy=accuracy)


def test_fedavg_weights_by_sample_count():
    clients = [client("a", 1, loss=2.0, w=[1.0, 2.0]), client("b", 3, loss=1.0, w=[5.0, 6.0])]
    result = aggregate_models(clients)
    assert isinstance(result, AggregationResult)
    assert torch.equal(result.parameters["w"], torch.tensor([4.0, 5.0]))
    assert result.aggregation_method == "fedavg"
    assert result.participating_clients == ["a", "b"]
    assert result.client_weights == {"a": 0.25, "b": 0.75}
    assert result.metadata["total_samples"] == 4
    assert result.metadata["mean_training_loss"] == 1.5
    assert result.metadata["mean_training_accuracy"] is None


def test_explicit_weights_as_mapping_or_aligned_sequence():
    clients = [client("b", 1, w=[4.0]), client("a", 1, w=[0.0])]
    by_id = aggregate_models(clients, client_weights={"a": 3, "b": 1})
    aligned = aggregate_models(clients, client_weights=[1, 3])
    assert torch.equal(by_id.parameters["w"], torch.tensor([1.0]))
    assert torch.equal(aligned.parameters["w"], torch.tensor([1.0]))
    assert aligned.client_weights == {"a": 0.75, "b": 0.25}


def test_zero_weight_client_is_left_out():
    clients = [client("a", 1, w=[2.0]), client("b", 1, w=[100.0])]
    assert torch.equal(aggregate_models(clients, client_weights=[1, 0]).parameters["w"], torch.tensor([2.0]))


def test_fedprox_server_side_is_weighted_average_and_records_mu():
    clients = [client("a", 1, w=[1.0, 2.0]), client("b", 3, w=[5.0, 6.0])]
    result = aggregate_models(clients, "fedprox", {"mu": 0.5})
    assert torch.equal(result.parameters["w"], aggregate_models(clients).parameters["w"])
    assert result.metadata["mu"] == 0.5
    assert create_aggregator("fedprox").config == {"mu": 0.01}


def test_weighted_accuracy_is_softmax():
    clients = [client("a", 1, accuracy=0.5, w=[0.0]), client("b", 1, accuracy=0.9, w=[1.0])]
    result = aggregate_models(clients, "weighted", {"weight_strategy": "accuracy", "min_weight": 0.0})
    expected_b = math.exp(0.9) / (math.exp(0.5) + math.exp(0.9))
    assert result.client_weights["b"] == pytest.approx(expected_b, rel=1e-12)
    assert result.parameters["w"].item() == pytest.approx(expected_b, rel=1e-6)
    assert result.metadata["weight_strategy"] == "accuracy"


def test_weighted_loss_is_inverse_loss():
    clients = [client("a", 1, loss=1.0, w=[0.0]), client("b", 1, loss=3.0, w=[1.0])]
    result = aggregate_models(clients, "weighted", {"weight_strategy": "loss", "min_weight": 0.0})
    assert result.client_weights == pytest.approx({"a": 0.75, "b": 0.25})
    assert result.parameters["w"].item() == pytest.approx(0.25)


def test_weighted_floor_is_applied_then_renormalised():
    clients = [client("a", 1, w=[0.0]), client("b", 99, w=[1.0])]
    result = aggregate_models(clients, "weighted", {"weight_strategy": "data_size", "min_weight": 0.2})
    assert result.client_weights == pytest.approx({"a": 0.2 / 1.19, "b": 0.99 / 1.19})
    assert create_aggregator("weighted").config == {"weight_strategy": "accuracy", "min_weight": 0.01}


def test_trimmed_mean_drops_extremes_per_coordinate():
    values = [[1.0, -50.0], [2.0, 0.0], [3.0, 1.0], [4.0, 2.0], [100.0, 3.0]]
    clients = [client(f"c{i}", 1 + i, w=row) for i, row in enumerate(values)]
    result = aggregate_models(clients, "trimmed_mean", {"trim_ratio": 0.2})
    assert torch.equal(result.parameters["w"], torch.tensor([3.0, 1.0]))
    assert result.metadata["trimmed_per_side"] == 1
    assert result.metadata["trimmed_clients"] == 2
    assert result.metadata["effective_clients"] == 3
    assert result.metadata["trim_ratio"] == 0.2
    assert create_aggregator("trimmed_mean").config == {"trim_ratio": 0.1}


@pytest.mark.parametrize("count,ratio,trim", [(100, 0.29, 29), (180, 0.35, 63), (10, 0.3, 3), (19, 0.1, 1)])
def test_trimmed_count_is_the_ratio_of_clients_without_float_error(count, ratio, trim):
    """0.29 * 100 is 28.999999999999996 in floating point; floor of that would trim 28 per side."""
    clients = [client(f"c{i:03d}", w=[float(i)]) for i in range(count)]
    result = aggregate_models(clients, "trimmed_mean", {"trim_ratio": ratio})
    assert result.metadata["trimmed_per_side"] == trim
    assert result.metadata["effective_clients"] == count - 2 * trim
    assert result.parameters["w"].item() == pytest.approx((count - 1) / 2)


def test_trimmed_mean_ignores_huge_outliers_without_cancellation():
    clients = [client(f"c{i}", w=[value]) for i, value in enumerate([1e30, 0.1, 0.2, 0.3, -1e30])]
    result = aggregate_models(clients, "trimmed_mean", {"trim_ratio": 0.2})
    assert result.parameters["w"].item() == pytest.approx(0.2, rel=1e-6)


def sorted_reference(stack: torch.Tensor, trim: int) -> torch.Tensor:
    ordered = stack.double().sort(dim=0).values
    return ordered[trim : stack.shape[0] - trim].mean(dim=0)


@pytest.mark.parametrize("count,ratio", [(3, 0.0), (5, 0.2), (7, 0.3), (10, 0.1), (10, 0.45)])
def test_trimmed_mean_matches_sort_reference_across_chunks(count, ratio):
    generator = torch.Generator().manual_seed(count)
    stack = torch.randn(count, CHUNK + 1001, generator=generator) * 10
    clients = [client(f"c{i}", w=stack[i]) for i in range(count)]
    result = aggregate_models(clients, "trimmed_mean", {"trim_ratio": ratio})
    expected = sorted_reference(stack, math.floor(ratio * count)).float()
    torch.testing.assert_close(result.parameters["w"], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 10])
def test_median_matches_sort_reference(count):
    generator = torch.Generator().manual_seed(count)
    stack = torch.randn(count, 257, generator=generator)
    clients = [client(f"c{i}", w=stack[i]) for i in range(count)]
    result = aggregate_models(clients, "median")
    expected = sorted_reference(stack, (count - 1) // 2).float()
    torch.testing.assert_close(result.parameters["w"], expected, rtol=1e-6, atol=1e-6)
    assert result.metadata["effective_clients"] == (1 if count % 2 else 2)


def test_median_hand_example():
    clients = [client(c, w=[v, -v]) for c, v in zip("abcd", [5.0, 1.0, 100.0, 3.0])]
    assert torch.equal(aggregate_models(clients, "median").parameters["w"], torch.tensor([4.0, -4.0]))


def test_krum_hand_example_and_multi_krum():
    # Scores with f=1 (2 nearest neighbours): 0 -> 1+4, 1 -> 1+1, 2 -> 1+1, 3 -> 1+4, 100 -> huge.
    clients = [client(f"c{i}", w=[float(v)]) for i, v in enumerate([0, 1, 2, 3, 100])]
    single = aggregate_models(clients, "krum", {"f": 1})
    assert single.metadata["krum_scores"] == {"c0": 5.0, "c1": 2.0, "c2": 2.0, "c3": 5.0, "c4": 97.0**2 + 98.0**2}
    assert single.metadata["selected_clients"] == ["c1"]  # tie with c2 broken by id
    assert torch.equal(single.parameters["w"], torch.tensor([1.0]))
    assert single.client_weights == {"c0": 0.0, "c1": 1.0, "c2": 0.0, "c3": 0.0, "c4": 0.0}
    multi = aggregate_models(clients, "krum", {"f": 1, "m": 2})
    assert multi.metadata["selected_clients"] == ["c1", "c2"]
    assert torch.equal(multi.parameters["w"], torch.tensor([1.5]))


def test_krum_picks_honest_clients_against_byzantine_ones():
    generator = torch.Generator().manual_seed(7)
    honest = [client(f"honest{i}", w=torch.randn(50, generator=generator) * 0.1) for i in range(5)]
    byzantine = [client(f"byz{i}", w=torch.full((50,), -10.0 * (i + 1))) for i in range(2)]
    result = aggregate_models(honest + byzantine, "krum", {"f": 2, "m": 3})
    assert all(name.startswith("honest") for name in result.metadata["selected_clients"])
    chosen = [c.parameters["w"] for c in honest if c.client_id in result.metadata["selected_clients"]]
    torch.testing.assert_close(result.parameters["w"], sum(chosen) / 3)


def test_integer_and_half_precision_parameters():
    clients = [
        client("a", 1, n=torch.tensor(1), h=torch.tensor([1.0], dtype=torch.float16)),
        client("b", 1, n=torch.tensor(2), h=torch.tensor([2.0], dtype=torch.float16)),
    ]
    clients = [
        ClientModel(c.client_id, {**c.parameters, "b": c.parameters["h"].bfloat16(), "d": c.parameters["h"].double()}, 1)
        for c in clients
    ]
    for rule in ("fedavg", "median"):
        result = aggregate_models(clients, rule)
        assert result.parameters["n"].dtype == torch.int64 and result.parameters["n"].item() == 2  # 1.5 rounds to even
        for name, dtype in (("h", torch.float16), ("b", torch.bfloat16), ("d", torch.float64)):
            assert result.parameters[name].dtype == dtype and result.parameters[name].item() == 1.5


def test_result_keeps_state_dict_order_and_shapes():
    clients = [client(i, z=torch.ones(2, 3), a=torch.zeros(4, 1, 1)) for i in "xy"]
    for name in ["fedavg", "median", "trimmed_mean"]:
        config = {"trim_ratio": 0.0} if name == "trimmed_mean" else None
        parameters = aggregate_models(clients, name, config).parameters
        assert list(parameters) == ["z", "a"]
        assert parameters["a"].shape == (4, 1, 1)


def fedadam_reference(global_model, averages, lr, betas, tau):
    """Reddi et al. (ICLR 2021), Algorithm 2, FedAdam: no bias correction.

    With the pseudo-gradient delta = average - x: m = b1 m + (1 - b1) delta,
    v = b2 v + (1 - b2) delta^2, x = x + lr m / (sqrt(v) + tau).
    """
    x = global_model.double().clone()
    m = torch.zeros_like(x)
    v = torch.zeros_like(x)
    history = []
    for average in averages:
        delta = average.double() - x
        m = betas[0] * m + (1 - betas[0]) * delta
        v = betas[1] * v + (1 - betas[1]) * delta * delta
        x = x + lr * m / (v.sqrt() + tau)
        history.append(x.to(global_model.dtype))
    return history


def test_fedadam_first_step_follows_reddi_algorithm_2_without_bias_correction():
    """Adam's bias correction made the first step lr * sign(delta) whatever its size; Reddi et al.'s
    FedAdam has none, so the first step is lr * 0.1 delta / (sqrt(0.001) |delta| + tau)."""
    global_model = {"w": torch.tensor([1.0, -2.0, 0.5])}
    clients = [client("a", 1, w=[0.0, 0.0, 1.5]), client("b", 1, w=[1.0, 0.0, 1.5])]
    result = aggregate_models(clients, "fedadam", {"learning_rate": 0.1}, global_model=global_model)
    delta = torch.tensor([-0.5, 2.0, 1.0], dtype=torch.float64)
    expected = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + 0.1 * 0.1 * delta / (
        math.sqrt(0.001) * delta.abs() + 1e-3
    )
    torch.testing.assert_close(result.parameters["w"], expected.float())
    assert result.metadata["step"] == 1
    assert result.metadata["beta1"] == 0.9 and result.metadata["beta2"] == 0.999
    # The default tau (config key ``epsilon``) is Reddi et al.'s suggested 1e-3, not Adam's 1e-8.
    assert result.metadata["epsilon"] == 1e-3 and result.metadata["learning_rate"] == 0.1


def test_fedadam_matches_reddi_algorithm_2_over_rounds():
    generator = torch.Generator().manual_seed(3)
    config = {"learning_rate": 0.05, "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-2}
    aggregator = create_aggregator("fedadam", config)
    global_model = {"w": torch.randn(6, 4, generator=generator), "steps": torch.tensor(0)}
    start = global_model["w"].clone()
    averages = []
    for round_number in range(4):
        clients = [
            client(f"c{i}", 1 + i, w=torch.randn(6, 4, generator=generator), steps=torch.tensor(round_number))
            for i in range(3)
        ]
        averages.append(aggregate_models(clients).parameters["w"])
        result = aggregator.aggregate(clients, global_model=global_model)
        global_model = result.parameters
        assert global_model["steps"].item() == round_number  # integer buffers take the plain average
    # The reference replays the same averages from the same start (each round's average is of that round's clients).
    expected = fedadam_reference(start, averages, 0.05, (0.8, 0.99), 1e-2)[-1]
    torch.testing.assert_close(global_model["w"], expected, rtol=1e-5, atol=1e-6)
    assert aggregator.step == 4


def test_fedadam_state_dict_round_trip_resumes():
    generator = torch.Generator().manual_seed(5)
    rounds = [[client(f"c{i}", w=torch.randn(8, generator=generator)) for i in range(3)] for _ in range(3)]
    start = {"w": torch.zeros(8)}

    def run(aggregator, model, clients):
        return aggregator.aggregate(clients, global_model=model).parameters

    straight = create_aggregator("fedadam", {"learning_rate": 0.1})
    model = start
    for clients in rounds:
        model = run(straight, model, clients)

    first = create_aggregator("fedadam", {"learning_rate": 0.1})
    resumed_model = run(first, run(first, start, rounds[0]), rounds[1])
    state = first.state_dict()
    assert set(state) == {"step", "exp_avg/w", "exp_avg_sq/w"} and state["step"].item() == 2
    second = create_aggregator("fedadam", {"learning_rate": 0.1})
    second.load_state_dict(state)
    assert torch.equal(run(second, resumed_model, rounds[2])["w"], model["w"])


def test_fedadam_state_of_a_model_without_float_tensors_restores():
    """Such a model has no moments after a step; its saved state must still load (the model is checked at aggregation)."""
    first = create_aggregator("fedadam")
    first.aggregate([client(f"c{i}", n=torch.tensor(i)) for i in range(3)], global_model={"n": torch.tensor(0)})
    resumed = create_aggregator("fedadam")
    resumed.load_state_dict(first.state_dict())
    assert resumed.step == 1
    later = [client(f"c{i}", n=torch.tensor(2 * i)) for i in range(3)]
    result = resumed.aggregate(later, global_model={"n": torch.tensor(1)})
    assert result.metadata["step"] == 2 and result.parameters["n"].item() == 2
    with pytest.raises(AggregationError, match="optimizer state was built for a model with parameters"):
        resumed.aggregate([client("c0", w=[1.0])], global_model={"w": torch.tensor([0.0])})


def test_evaluate_aggregation_quality_hand_example():
    global_model = {"w": torch.tensor([0.0, 0.0]), "b": torch.tensor([0.0])}
    clients = [
        client("a", w=[3.0, 4.0], b=[1.0], accuracy=0.8, loss=0.2),  # distances 5 and 1 -> 3
        client("b", w=[0.0, 0.0], b=[-1.0], accuracy=0.6, loss=0.4),  # distances 0 and 1 -> 0.5
    ]
    quality = evaluate_aggregation_quality(global_model, clients)
    assert quality.mean_distance == pytest.approx(1.75)
    assert quality.std_distance == pytest.approx(1.25)
    assert (quality.max_distance, quality.min_distance) == (3.0, 0.5)
    assert quality.mean_client_accuracy == pytest.approx(0.7) and quality.std_client_accuracy == pytest.approx(0.1)
    assert quality.mean_client_loss == pytest.approx(0.3) and quality.std_client_loss == pytest.approx(0.1)
    partial = evaluate_aggregation_quality(global_model, [clients[0], client("c", w=[0.0, 0.0], b=[0.0])])
    assert partial.mean_client_accuracy is None and partial.as_dict()["std_client_loss"] is None


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_evaluate_aggregation_quality_names_a_client_with_nan_or_inf(bad):
    global_model = {"w": torch.zeros(2), "b": torch.zeros(1)}
    clients = [client("a", w=[1.0, 0.0], b=[0.0]), client("b", w=[0.0, 0.0], b=[bad])]
    with pytest.raises(AggregationError, match="client 'b': parameter 'b' contains NaN or Inf"):
        evaluate_aggregation_quality(global_model, clients)


def test_registry_lists_creates_and_registers():
    assert available_aggregators() == sorted(
        ["fedavg", "fedprox", "fedadam", "weighted", "trimmed_mean", "median", "krum"]
    )

    class FirstClient(Aggregator):
        name = "first_client"

        def _aggregate(self, clients, explicit, global_model):
            return AggregationResult(dict(clients[0].parameters), self.name, [clients[0].client_id], {})

    register_aggregator("first_client", FirstClient)
    try:
        assert "first_client" in available_aggregators()
        result = aggregate_models([client("b", w=[2.0]), client("a", w=[1.0])], "first_client")
        assert result.participating_clients == ["a"]
        with pytest.raises(AggregationError, match="already registered"):
            register_aggregator("first_client", FirstClient)
        register_aggregator("first_client", FirstClient, replace=True)
    finally:
        _REGISTRY.pop("first_client", None)


def test_registering_a_class_not_derived_from_the_base_fails():
    class NotAnAggregator:
        pass

    with pytest.raises(TypeError, match="not a subclass"):
        register_aggregator("bogus", NotAnAggregator)
    with pytest.raises(TypeError, match="not a subclass"):
        register_aggregator("bogus", create_aggregator("fedavg"))  # an instance, not a class
    assert "bogus" not in available_aggregators()


def test_unknown_aggregator_lists_the_available_ones():
    with pytest.raises(AggregationError, match="unknown aggregator 'fedsgd'; available: fedadam, fedavg, fedprox"):
        create_aggregator("fedsgd")


def test_numpy_numbers_are_accepted_for_counts_and_weights():
    clients = [ClientModel("a", {"w": torch.tensor([0.0])}, np.int64(1)), client("b", 3, w=[4.0])]
    assert isinstance(clients[0].data_samples, int)
    assert aggregate_models(clients).parameters["w"].item() == 3.0
    explicit = aggregate_models(clients, client_weights=[np.float32(1), np.float64(1)])
    assert explicit.parameters["w"].item() == 2.0


def test_huge_finite_values_are_aggregated_not_mistaken_for_overflow():
    size = CHUNK + 3
    honest = [client(f"c{i}", w=torch.full((size,), float(i))) for i in range(4)]
    attacker = client("x", w=torch.full((size,), 3e38))
    average = aggregate_models(honest + [attacker]).parameters["w"]
    assert bool(torch.isfinite(average).all()) and average[0].item() == pytest.approx(3e38 / 5 + 6 / 5, rel=1e-6)
    negative = client("y", w=torch.full((size,), -3e38))
    trimmed = aggregate_models(honest + [attacker, negative], "trimmed_mean", {"trim_ratio": 0.2})
    assert torch.equal(trimmed.parameters["w"], torch.full((size,), 1.5))


def weighted_reference(arrays, samples, fused=False):
    """The weighted sum in client order with float32 weights: each product rounded, then each sum (NumPy), or
    product and sum rounded once together (a fused multiply-add, computed exactly in float64)."""
    factors = [np.float32(weight) for weight in normalise(samples)]
    total = arrays[0] * factors[0]
    for array, factor in zip(arrays[1:], factors[1:]):
        if fused:
            total = (total.astype(np.float64) + array.astype(np.float64) * np.float64(factor)).astype(np.float32)
        else:
            total = total + array * factor
    return total


def test_fedavg_rounds_each_product_and_sum_separately():
    """The bits of a NumPy multiply then add, never of a fused multiply-add, across chunk boundaries and odd tails."""
    generator = torch.Generator().manual_seed(9)
    size = 2 * CHUNK + 13
    stacks = [(torch.randn(size, generator=generator) * 10.0 ** torch.randint(-6, 7, (size,), generator=generator)) for _ in range(6)]
    samples = [3 + 7 * i for i in range(6)]
    clients = [client(f"c{i}", samples[i], w=stacks[i]) for i in range(6)]
    result = aggregate_models(clients).parameters["w"].numpy()
    arrays = [stack.numpy() for stack in stacks]
    expected = weighted_reference(arrays, samples)
    assert np.array_equal(result, expected)
    # The data tells the two apart: fused multiply-adds change thousands of elements.
    assert (weighted_reference(arrays, samples, fused=True) != expected).sum() > 1000


def test_many_small_parameters_are_packed_and_come_back_separate():
    """More small tensors than fit one pack, of several dtypes: each is averaged exactly and owns its storage."""
    generator = torch.Generator().manual_seed(4)
    count = 2 * CHUNK // 1000 + 3
    models = []
    for index in range(5):
        parameters = {f"bn{j}": torch.randn(10, 100, generator=generator) for j in range(count)}
        parameters |= {"steps": torch.tensor(index), "scale": torch.randn(7, generator=generator).double()}
        models.append(client(f"c{index}", 1 + index, **parameters))
    result = aggregate_models(models).parameters
    assert list(result) == list(models[0].parameters)
    samples = [model.data_samples for model in models]
    for name in [f"bn{j}" for j in range(count)]:
        expected = weighted_reference([model.parameters[name].numpy() for model in models], samples)
        assert result[name].shape == (10, 100) and np.array_equal(result[name].numpy(), expected), name
    assert result["steps"].item() == round(sum(i * (1 + i) for i in range(5)) / sum(samples))
    torch.testing.assert_close(result["scale"], sum(m.parameters["scale"] * s for m, s in zip(models, samples)) / sum(samples))
    storages = {tensor.untyped_storage().data_ptr() for tensor in result.values()}
    assert len(storages) == len(result)
    trimmed = aggregate_models(models, "trimmed_mean", {"trim_ratio": 0.2}).parameters
    stack = torch.stack([model.parameters[f"bn{count - 1}"] for model in models])
    torch.testing.assert_close(trimmed[f"bn{count - 1}"], sorted_reference(stack, 1).float())


def test_workers_run_pytorch_serially_and_leave_the_callers_threads_alone():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []
        run_workers(lambda: seen.append(torch.get_num_threads()), 2)
        run_workers(lambda: seen.append(torch.get_num_threads()), 1)
        assert seen == [1, 1, 1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
