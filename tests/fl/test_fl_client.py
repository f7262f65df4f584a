import math

import numpy as np
import pytest
import torch
from opacus.accountants import RDPAccountant

from fl.aggregation import ClientModel
from fl.client import HospitalClient, LocalTrainingConfig
from fl.data import Dataset, HospitalData, federated_breast_cancer
from fl.models import ModelSpec, ParameterLayout, evaluate, get_parameters, set_parameters
from fl.privacy import DPParameters, DPSGDConfig, PrivacyBudgetExceeded, SeededNoise, epsilon_of, update_norm


@pytest.fixture(scope="module")
def hospital():
    return federated_breast_cancer(3, "iid").hospitals[0]


@pytest.fixture(scope="module")
def spec(hospital):
    return ModelSpec("logistic", hospital.data.num_features)


@pytest.fixture(scope="module")
def initial(spec):
    return get_parameters(spec.build(seed=0))


def distance(a, b):
    return update_norm(a, b)


@pytest.mark.parametrize("kind", ["logistic", "mlp"])
def test_models_are_deterministic_given_a_seed(kind):
    spec = ModelSpec(kind, 30)
    first, again, other = (get_parameters(spec.build(seed)) for seed in (7, 7, 8))
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert any(not torch.equal(first[name], other[name]) for name in first)


def test_model_spec_and_parameter_loading_reject_bad_input(spec, initial):
    with pytest.raises(ValueError, match="unknown model kind"):
        ModelSpec("resnet", 30)
    with pytest.raises(ValueError, match="num_features must be positive"):
        ModelSpec("logistic", 0)
    model = spec.build(0)
    with pytest.raises(ValueError, match=r"missing \['0.bias'\]"):
        set_parameters(model, {"0.weight": initial["0.weight"]})
    with pytest.raises(ValueError, match=r"extra \['head'\]"):
        set_parameters(model, {**initial, "head": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"'0.weight' has shape \(1, 29\)"):
        set_parameters(model, {**initial, "0.weight": torch.zeros(1, 29)})


def test_parameter_layout_round_trips_and_checks_shapes():
    params = get_parameters(ModelSpec("mlp", 30).build(0))
    layout = ParameterLayout.of(params)
    vector = layout.flatten(params)
    assert vector.dtype == torch.float64 and vector.shape == (layout.size,) == (30 * 16 + 16 + 16 + 1,)
    back = layout.unflatten(vector)
    assert all(torch.equal(back[name], params[name]) and back[name].dtype == params[name].dtype for name in params)
    with pytest.raises(ValueError, match="differ from the layout"):
        layout.flatten({"0.weight": params["0.weight"]})
    with pytest.raises(ValueError, match="expected"):
        layout.flatten({**params, "0.bias": torch.zeros(3)})
    with pytest.raises(ValueError, match=f"expected a vector of {layout.size}"):
        layout.unflatten(vector[:-1])


def test_local_training_returns_a_client_model_that_fits_the_local_data(hospital, spec, initial):
    client = HospitalClient(hospital, spec, LocalTrainingConfig(epochs=3))
    result = client.train(initial, round_number=1)
    assert isinstance(result, ClientModel)
    assert result.client_id == hospital.name
    assert result.data_samples == hospital.data.num_samples
    model = spec.build(0)
    before = evaluate(model, hospital.data)
    set_parameters(model, result.parameters)
    after = evaluate(model, hospital.data)
    assert after.loss < before.loss / 2
    assert math.isclose(result.training_loss, after.loss, rel_tol=1e-6)
    assert math.isclose(result.training_accuracy, after.accuracy)
    assert result.training_accuracy > 0.9
    # The caller's global parameters are untouched.
    assert torch.equal(initial["0.weight"], get_parameters(spec.build(0))["0.weight"])


def test_training_is_deterministic_per_seed_and_round(hospital, spec, initial):
    def run(seed, round_number):
        return HospitalClient(hospital, spec, seed=seed).train(initial, round_number).parameters

    assert distance(run(0, 1), run(0, 1)) == 0.0
    assert distance(run(0, 1), run(0, 2)) > 0.0
    assert distance(run(0, 1), run(1, 1)) > 0.0


def test_proximal_term_keeps_the_model_near_the_global_one(hospital, spec, initial):
    distances = [
        distance(
            HospitalClient(hospital, spec, LocalTrainingConfig(epochs=5, mu=mu), seed=0).train(initial, 1).parameters,
            initial,
        )
        for mu in (0.0, 1.0, 10.0)
    ]
    assert distances[0] > distances[1] > distances[2] > 0.0


def test_dp_sgd_is_accounted_and_reports_no_metrics(hospital, spec, initial):
    dp = DPSGDConfig(noise_multiplier=1.1, max_grad_norm=1.0, sample_rate=0.25)
    client = HospitalClient(hospital, spec, LocalTrainingConfig(epochs=2), dp=dp)
    assert client.dp_steps_per_round == 8
    assert client.dp_round_parameters == DPParameters(noise_multiplier=1.1, sample_rate=0.25, steps=8, clipping_norm=1.0)
    first = client.train(initial, 1)
    assert first.training_loss is None and first.training_accuracy is None
    client.train(initial, 2)

    reference = RDPAccountant()
    reference.history = [(1.1, 0.25, 8)]
    one_round = reference.get_epsilon(delta=dp.delta)
    reference.history = [(1.1, 0.25, 16)]
    two_rounds = reference.get_epsilon(delta=dp.delta)
    rounds = client.ledger.rounds
    assert [r.round_number for r in rounds] == [1, 2]
    assert math.isclose(rounds[0].round_epsilon, one_round, rel_tol=1e-9)
    assert math.isclose(rounds[1].round_epsilon, one_round, rel_tol=1e-9)
    assert math.isclose(rounds[1].total_epsilon, two_rounds, rel_tol=1e-9)
    assert math.isclose(client.ledger.total.epsilon, two_rounds, rel_tol=1e-9)
    assert one_round < two_rounds < 2 * one_round  # RDP composes better than adding epsilons
    assert client.last_round_privacy == rounds[1]
    plain = HospitalClient(hospital, spec, LocalTrainingConfig(epochs=2), seed=0).train(initial, 1)
    assert distance(first.parameters, plain.parameters) > 0.0


def test_a_seed_does_not_fix_dp_noise_or_sampling(hospital, spec, initial):
    """Issue 10: a seed fixed every hospital's DP-SGD noise and batches, so anyone with the config could
    regenerate the noise and subtract it. Now a seed leaves DP-SGD to the OS's randomness."""
    dp = DPSGDConfig(noise_multiplier=1.0, max_grad_norm=1.0, sample_rate=0.25)
    first, again = (
        HospitalClient(hospital, spec, LocalTrainingConfig(epochs=2), dp=dp, seed=0).train(initial, 1).parameters
        for _ in range(2)
    )
    assert distance(first, again) > 0.0
    client = HospitalClient(hospital, spec, LocalTrainingConfig(epochs=2), dp=dp, seed=0)
    client.train(initial, 1)
    assert client.ledger.total.epsilon > 0 and not client.ledger.total.noise_seeded


def test_seeded_noise_is_an_explicit_test_only_opt_in_that_reports_no_epsilon(hospital, spec, initial):
    dp = DPSGDConfig(noise_multiplier=1.1, max_grad_norm=1.0, sample_rate=0.25)

    def client():
        return HospitalClient(hospital, spec, LocalTrainingConfig(epochs=2), dp=dp, seeded_noise=SeededNoise(0))

    seeded = client()
    first = seeded.train(initial, 1)
    assert distance(first.parameters, client().train(initial, 1).parameters) == 0.0
    assert distance(first.parameters, client().train(initial, 2).parameters) > 0.0
    assert seeded.last_round_privacy.round_epsilon is None and seeded.last_round_privacy.noise_seeded
    assert seeded.ledger.total.epsilon is None and seeded.ledger.total.noise_seeded


def test_dp_noise_is_fresh_for_every_training_without_a_seed(hospital, spec, initial):
    """Noise derived from a default seed, the hospital's name and the round could be rebuilt and
    subtracted by the server, and a repeated round would repeat it, cancelling it in the difference."""
    dp = DPSGDConfig(noise_multiplier=1.0, max_grad_norm=1.0, sample_rate=0.25)
    client = HospitalClient(hospital, spec, dp=dp)
    first, repeated = (client.train(initial, 1).parameters for _ in range(2))
    assert distance(first, repeated) > 0.0
    other = HospitalClient(hospital, spec, dp=dp).train(initial, 1).parameters
    assert distance(first, other) > 0.0 and distance(repeated, other) > 0.0


# Noise this small puts the optimal RDP order at the edge of opacus's range; irrelevant here.
@pytest.mark.filterwarnings("ignore:Optimal order")
def test_dp_sgd_clips_each_record_gradient(hospital, spec, initial):
    clip, lr, rate = 1e-3, 0.1, 0.5
    dp = DPSGDConfig(noise_multiplier=1e-3, max_grad_norm=clip, sample_rate=rate)
    client = HospitalClient(hospital, spec, LocalTrainingConfig(learning_rate=lr), dp=dp)
    moved = distance(client.train(initial, 1).parameters, initial)
    # Each step moves by lr * (sum of at most n clipped gradients + tiny noise) / (rate * n).
    steps = client.dp_steps_per_round
    assert 0.0 < moved <= steps * lr * clip / rate * 1.1
    unclipped = HospitalClient(hospital, spec, LocalTrainingConfig(learning_rate=lr)).train(initial, 1)
    assert distance(unclipped.parameters, initial) > 100 * moved


def test_proximal_term_still_works_under_dp_sgd(hospital, spec, initial):
    dp = DPSGDConfig(noise_multiplier=0.5, max_grad_norm=1.0, sample_rate=0.25)

    def moved(mu):
        client = HospitalClient(
            hospital, spec, LocalTrainingConfig(epochs=5, learning_rate=0.5, mu=mu), dp=dp, seeded_noise=SeededNoise(0)
        )
        return distance(client.train(initial, 1).parameters, initial)

    # Same seeded noise, so the same records and the same noise: only the proximal pull differs.
    assert moved(0.0) > moved(2.0) > 0.0


def test_a_round_over_the_privacy_budget_is_refused_before_training(hospital, spec, initial):
    dp = DPSGDConfig(noise_multiplier=1.0, max_grad_norm=1.0, sample_rate=0.25, epsilon_budget=6.0)
    client = HospitalClient(hospital, spec, dp=dp)
    client.train(initial, 1)
    spent = client.ledger.total.epsilon
    assert spent < 6.0
    with pytest.raises(PrivacyBudgetExceeded, match="over the budget of 6"):
        client.train(initial, 2)
    assert client.ledger.total.epsilon == spent and len(client.ledger.rounds) == 1


def test_a_restarted_node_carries_its_study_history_into_the_budget(hospital, spec, initial):
    dp = DPSGDConfig(noise_multiplier=1.0, max_grad_norm=1.0, sample_rate=0.25, epsilon_budget=6.0)
    fresh = HospitalClient(hospital, spec, dp=dp)
    one_round = fresh.dp_round_parameters
    assert fresh.epsilon_after_next_round == epsilon_of([one_round], dp.delta)
    # What the chain says this hospital's earlier updates declared: one round already spent.
    restarted = HospitalClient(hospital, spec, dp=dp, dp_history=[one_round])
    assert restarted.epsilon_after_next_round == epsilon_of([one_round, one_round], dp.delta) > 6.0
    with pytest.raises(PrivacyBudgetExceeded, match="over the budget of 6"):
        restarted.train(initial, 2)
    fresh.train(initial, 1)
    with pytest.raises(ValueError, match="trains without DP-SGD but was given a DP history"):
        HospitalClient(hospital, spec, dp_history=[one_round])
    with pytest.raises(ValueError, match="holds DPParameters only"):
        HospitalClient(hospital, spec, dp=dp, dp_history=[(1.0, 0.25, 4)])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mu": -0.1}, "mu must be a non-negative"),
        ({"mu": float("nan")}, "mu must be a non-negative"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"learning_rate": 0.0}, "learning_rate must be a positive"),
        ({"learning_rate": float("inf")}, "learning_rate must be a positive"),
    ],
)
def test_bad_training_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LocalTrainingConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_grad_norm": 0.0}, "max_grad_norm must be a positive"),
        ({"max_grad_norm": -1.0}, "max_grad_norm must be a positive"),
        ({"max_grad_norm": float("inf")}, "max_grad_norm must be a positive"),
        ({"noise_multiplier": 0.0}, "noise_multiplier must be a positive"),
        ({"sample_rate": 0.0}, "sample_rate must be in"),
        ({"sample_rate": 1.5}, "sample_rate must be in"),
        ({"delta": 0.0}, "delta must be in"),
        ({"delta": 1.0}, "delta must be in"),
        ({"epsilon_budget": -1.0}, "epsilon_budget must be a positive"),
    ],
)
def test_bad_dp_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DPSGDConfig(**{"noise_multiplier": 1.0, "max_grad_norm": 1.0, **kwargs})


def test_bad_hospitals_and_bad_global_models_are_refused(hospital, spec, initial):
    data = hospital.data
    with pytest.raises(ValueError, match="has 30 features, the model expects 29"):
        HospitalClient(hospital, ModelSpec("logistic", 29))
    with pytest.raises(ValueError, match="labels other than 0 and 1"):
        HospitalClient(HospitalData("h", Dataset(data.features, data.labels * 2)), spec)
    nan_features = data.features.clone()
    nan_features[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite features"):
        HospitalClient(HospitalData("h", Dataset(nan_features, data.labels)), spec)
    with pytest.raises(ValueError, match="no training records"):
        HospitalClient(HospitalData("h", data.subset(np.array([], dtype=int))), spec)

    client = HospitalClient(hospital, spec)
    with pytest.raises(ValueError, match="round_number must be at least 1"):
        client.train(initial, 0)
    with pytest.raises(ValueError, match="'0.bias' has NaN"):
        client.train({**initial, "0.bias": torch.tensor([float("nan")])}, 1)
    with pytest.raises(ValueError, match="has shape"):
        client.train({**initial, "0.weight": torch.zeros(2, 30)}, 1)
    with pytest.raises(ValueError, match="missing"):
        client.train({"0.weight": initial["0.weight"]}, 1)
    with pytest.raises(ValueError, match="trains without DP-SGD"):
        client.dp_steps_per_round
