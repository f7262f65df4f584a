import math

import pytest
import torch
from opacus.accountants import RDPAccountant

from fl.aggregation import ClientModel
from fl.privacy import (
    ClientLevelDP,
    ClientLevelDPConfig,
    DeclaredEpsilonMismatch,
    DPParameters,
    PrivacyBudget,
    PrivacyBudgetExceeded,
    PrivacyError,
    PrivacyLedger,
    SeededNoise,
    calibrate_noise_multiplier,
    check_declared_epsilon,
    epsilon_of,
    update_norm,
)

GLOBAL = {"w": torch.zeros(4), "b": torch.zeros(1)}


def client(client_id, w, b=0.0, samples=10):
    return ClientModel(client_id, {"w": torch.tensor(w, dtype=torch.float32), "b": torch.tensor([b])}, samples)


def opacus_epsilon(history, delta):
    accountant = RDPAccountant()
    accountant.history = history
    return accountant.get_epsilon(delta=delta)


def release(noise, rate, steps, clip=1.0):
    return DPParameters(noise_multiplier=noise, sample_rate=rate, steps=steps, clipping_norm=clip)


def test_ledger_matches_opacus_accountant_across_mixed_rounds():
    ledger = PrivacyLedger(delta=1e-5)
    assert ledger.total.epsilon == 0.0
    ledger.record(1, release(1.2, 0.25, 8))
    ledger.record(2, release(2.0, 0.5, 4))
    ledger.record(3, release(1.2, 0.25, 8))
    expected = opacus_epsilon([(1.2, 0.25, 8), (2.0, 0.5, 4), (1.2, 0.25, 8)], 1e-5)
    assert math.isclose(ledger.total.epsilon, expected, rel_tol=1e-9)
    assert math.isclose(ledger.rounds[1].round_epsilon, opacus_epsilon([(2.0, 0.5, 4)], 1e-5), rel_tol=1e-9)
    totals = [r.total_epsilon for r in ledger.rounds]
    assert totals == sorted(totals) and totals[-1] == ledger.total.epsilon
    assert ledger.total.delta == 1e-5 and not ledger.total.noise_seeded


def test_projection_and_budget():
    ledger = PrivacyLedger(delta=1e-5, epsilon_budget=6.0)
    projected = ledger.projected_total(release(1.0, 0.25, 4))
    ledger.ensure_affordable(release(1.0, 0.25, 4))
    ledger.record(1, release(1.0, 0.25, 4))
    assert math.isclose(ledger.total.epsilon, projected)
    with pytest.raises(PrivacyBudgetExceeded, match=r"from \d+\.\d+ to \d+\.\d+ \(delta 1e-05\), over the budget of 6"):
        ledger.ensure_affordable(release(1.0, 0.25, 400))
    with pytest.raises(ValueError, match="steps must be a non-negative integer"):
        release(1.0, 0.25, -1)


def test_a_seeded_ledger_still_enforces_the_budget_but_reports_no_epsilon():
    ledger = PrivacyLedger(delta=1e-5, epsilon_budget=6.0, noise_seeded=True)
    cost = ledger.record(1, release(1.0, 0.25, 4))
    assert cost.round_epsilon is None and cost.total_epsilon is None and cost.noise_seeded
    assert ledger.total.epsilon is None and ledger.total.noise_seeded
    with pytest.raises(PrivacyBudgetExceeded):
        ledger.ensure_affordable(release(1.0, 0.25, 400))


def test_the_accountant_is_a_pure_function_of_the_declared_parameters():
    history = [release(1.1, 0.25, 8, clip=2.0), release(0.9, 0.1, 40, clip=0.5)]
    epsilon = epsilon_of(history, 1e-5)
    assert epsilon == epsilon_of(list(history), 1e-5)  # deterministic, bit for bit
    assert math.isclose(epsilon, opacus_epsilon([(1.1, 0.25, 8), (0.9, 0.1, 40)], 1e-5), rel_tol=1e-12)
    assert epsilon_of([], 1e-5) == 0.0
    assert epsilon_of(history, 1e-6) > epsilon  # a smaller delta costs more epsilon
    # A verifier recomputes a declared epsilon and refuses a wrong one.
    check_declared_epsilon(history, 1e-5, epsilon)
    with pytest.raises(DeclaredEpsilonMismatch, match=r"declared epsilon 1\.0 differs from"):
        check_declared_epsilon(history, 1e-5, 1.0)
    with pytest.raises(DeclaredEpsilonMismatch):
        check_declared_epsilon(history, 1e-5, float("nan"))
    assert issubclass(DeclaredEpsilonMismatch, PrivacyError) and issubclass(PrivacyBudgetExceeded, PrivacyError)
    with pytest.raises(ValueError, match="delta must be in"):
        epsilon_of(history, 0.0)


def test_the_budget_check_gives_the_spend_after_an_update_or_refuses_it():
    budget = PrivacyBudget(epsilon=4.0, delta=1e-5)
    history = [release(3.0, 0.1, 40)]
    after = budget.check(history, release(3.0, 0.1, 40))
    assert math.isclose(after, opacus_epsilon([(3.0, 0.1, 80)], 1e-5), rel_tol=1e-9) and after <= 4.0
    with pytest.raises(PrivacyBudgetExceeded, match=r"over the budget of 4"):
        budget.check(history, release(0.5, 0.5, 100))
    for kwargs, message in [({"epsilon": 0.0}, "epsilon_budget must be a positive"), ({"epsilon": 1.0, "delta": 1.0}, "delta")]:
        with pytest.raises(ValueError, match=message):
            PrivacyBudget(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"noise_multiplier": 0.0}, "noise_multiplier must be a positive"),
        ({"clipping_norm": float("inf")}, "clipping_norm must be a positive"),
        ({"sample_rate": 0.0}, "sample_rate must be in"),
        ({"sample_rate": 1.5}, "sample_rate must be in"),
        ({"steps": 1.5}, "steps must be a non-negative integer"),
        ({"steps": True}, "steps must be a non-negative integer"),
    ],
)
def test_bad_declared_parameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DPParameters(**{"noise_multiplier": 1.0, "sample_rate": 0.1, "steps": 1, "clipping_norm": 1.0, **kwargs})


def test_calibrated_noise_meets_the_target_and_no_less_noise_would():
    sigma = calibrate_noise_multiplier(4.0, 1e-5, 0.25, 80)
    assert opacus_epsilon([(sigma, 0.25, 80)], 1e-5) <= 4.0
    assert opacus_epsilon([(sigma * 0.9, 0.25, 80)], 1e-5) > 4.0
    with pytest.raises(ValueError, match="steps must be at least 1"):
        calibrate_noise_multiplier(4.0, 1e-5, 0.25, 0)
    with pytest.raises(ValueError, match="epsilon_budget must be a positive"):
        calibrate_noise_multiplier(-1.0, 1e-5, 0.25, 10)


def test_clip_scales_only_updates_over_the_norm():
    dp = ClientLevelDP(ClientLevelDPConfig(clip_norm=1.0, noise_multiplier=1.0, clients_per_round=2, population=10))
    big = dp.clip(GLOBAL, client("a", [3.0, 4.0, 0.0, 0.0]))
    assert math.isclose(update_norm(big.parameters, GLOBAL), 1.0, rel_tol=1e-6)
    assert torch.allclose(big.parameters["w"], torch.tensor([0.6, 0.8, 0.0, 0.0]))
    small = dp.clip(GLOBAL, client("b", [0.3, 0.0, 0.0, 0.0]))
    assert torch.equal(small.parameters["w"], torch.tensor([0.3, 0.0, 0.0, 0.0]))
    assert big.client_id == "a" and big.data_samples == 10


def test_client_level_noise_has_the_calibrated_scale_comes_from_the_os_and_is_accounted():
    config = ClientLevelDPConfig(clip_norm=1.0, noise_multiplier=2.0, clients_per_round=2, population=20)
    size = 20000
    zero = {"w": torch.zeros(size)}
    models = [ClientModel("a", {"w": torch.zeros(size)}, 5), ClientModel("b", {"w": torch.zeros(size)}, 50)]
    dp = ClientLevelDP(config)
    noisy = dp.aggregate(1, zero, models)["w"]
    # std = noise_multiplier * clip_norm / clients_per_round = 1.0
    assert abs(float(noisy.std()) - 1.0) < 0.03
    assert abs(float(noisy.mean())) < 0.03
    assert math.isclose(dp.ledger.total.epsilon, opacus_epsilon([(2.0, 0.1, 1)], 1e-5), rel_tol=1e-9)
    # The noise comes from the OS: nobody can rebuild and subtract it.
    again = ClientLevelDP(config).aggregate(1, zero, models)["w"]
    assert not torch.equal(noisy, again)
    # Seeded noise (tests only) repeats, and is marked: no epsilon.
    seeded = [ClientLevelDP(config, seeded_noise=SeededNoise(3)) for _ in range(2)]
    first, second = (dp.aggregate(1, zero, models)["w"] for dp in seeded)
    assert torch.equal(first, second)
    assert seeded[0].ledger.total.epsilon is None and seeded[0].ledger.total.noise_seeded


def test_client_level_sampling_is_poisson_from_the_os():
    """Issue 10: a fixed-size sample of m hospitals was accounted as Poisson sampling at m/N. Now each
    hospital takes part independently with probability m/N, so the count varies round to round."""
    config = ClientLevelDPConfig(clip_norm=1.0, noise_multiplier=1.0, clients_per_round=3, population=10)
    hospitals = [f"h{i}" for i in range(10)]
    dp = ClientLevelDP(config)
    draws = [dp.sample(hospitals, round_number) for round_number in range(1, 401)]
    counts = [len(drawn) for drawn in draws]
    assert len(set(counts)) > 3  # Binomial(10, 0.3), not always 3
    assert abs(sum(counts) / len(counts) - 3.0) < 0.3
    assert 0 in counts or min(counts) <= 1
    frequency = {h: sum(h in drawn for drawn in draws) / len(draws) for h in hospitals}
    assert all(abs(f - 0.3) < 0.1 for f in frequency.values())
    assert all(drawn == sorted(drawn, key=hospitals.index) for drawn in draws)
    with pytest.raises(ValueError, match="population of 10, but there are 3 hospitals"):
        dp.sample(hospitals[:3], 1)
    seeded = ClientLevelDP(config, seeded_noise=SeededNoise(1))
    assert [seeded.sample(hospitals, r) for r in (1, 2)] == [
        ClientLevelDP(config, seeded_noise=SeededNoise(1)).sample(hospitals, r) for r in (1, 2)
    ]


@pytest.mark.filterwarnings("ignore:Optimal order")  # negligible noise on purpose
def test_client_level_average_divides_by_the_expected_count_whoever_was_drawn():
    config = ClientLevelDPConfig(clip_norm=1.0, noise_multiplier=1e-9, clients_per_round=2, population=4)
    dp = ClientLevelDP(config)
    # A large hospital with a huge update counts no more than a small one.
    result = dp.aggregate(1, GLOBAL, [client("a", [100.0, 0, 0, 0], samples=1000), client("b", [0, 0.5, 0, 0], samples=1)])
    assert torch.allclose(result["w"], torch.tensor([0.5, 0.25, 0.0, 0.0]), atol=1e-6)
    # One drawn hospital of an expected two: its clipped update still counts half (the drawn count is not revealed).
    alone = dp.aggregate(2, GLOBAL, [client("a", [100.0, 0, 0, 0])])
    assert torch.allclose(alone["w"], torch.tensor([0.5, 0.0, 0.0, 0.0]), atol=1e-6)
    # Nobody drawn: noise only, and the round is still accounted.
    empty = dp.aggregate(3, GLOBAL, [])
    assert torch.allclose(empty["w"], torch.zeros(4), atol=1e-6)
    assert [r.round_number for r in dp.ledger.rounds] == [1, 2, 3]


def test_client_level_budget_and_bad_settings_are_refused():
    config = ClientLevelDPConfig(clip_norm=1.0, noise_multiplier=0.5, clients_per_round=2, population=2, epsilon_budget=1.0)
    dp = ClientLevelDP(config)
    with pytest.raises(PrivacyBudgetExceeded):
        dp.aggregate(1, GLOBAL, [client("a", [0, 0, 0, 0]), client("b", [0, 0, 0, 0])])
    assert dp.ledger.rounds == []
    ok = ClientLevelDP(ClientLevelDPConfig(clip_norm=1.0, noise_multiplier=1.0, clients_per_round=2, population=4))
    with pytest.raises(ValueError, match="distinct hospitals"):
        ok.aggregate(1, GLOBAL, [client("a", [0, 0, 0, 0]), client("a", [0, 0, 0, 0])])
    for kwargs, message in [
        ({"clip_norm": 0.0}, "clip_norm must be a positive"),
        ({"clip_norm": float("nan")}, "clip_norm must be a positive"),
        ({"noise_multiplier": -1.0}, "noise_multiplier must be a positive"),
        ({"clients_per_round": 0}, "clients_per_round must be between 1 and population"),
        ({"clients_per_round": 5}, "clients_per_round must be between 1 and population"),
        ({"delta": 2.0}, "delta must be in"),
    ]:
        with pytest.raises(ValueError, match=message):
            ClientLevelDPConfig(**{"clip_norm": 1.0, "noise_multiplier": 1.0, "clients_per_round": 2, "population": 4, **kwargs})


# Issue 19, item 4: DP noise and sampling from a cryptographic generator -----------------------------


def test_noise_source_is_chacha20_keyed_from_the_os_with_the_right_distribution():
    from fl.privacy import SECURE_GAUSSIAN_DRAWS, NoiseSource

    source = NoiseSource.fresh()
    noise = source.gaussian((200_000,), 3.0)
    assert noise.dtype == torch.float64 and noise.shape == (200_000,)
    assert abs(float(noise.std()) - 3.0) < 0.03 and abs(float(noise.mean())) < 0.03
    standard = noise / 3.0
    assert abs(float((standard**4).mean()) - 3.0) < 0.1  # Gaussian kurtosis
    assert SECURE_GAUSSIAN_DRAWS >= 2  # opacus's secure-mode mitigation: every value sums several draws
    uniform = source.uniform(100_000)
    assert 0.0 < float(uniform.min()) and float(uniform.max()) < 1.0 and abs(float(uniform.mean()) - 0.5) < 0.01
    assert abs(float(source.bernoulli(100_000, 0.25).double().mean()) - 0.25) < 0.01
    # Fresh keys never repeat; one key always gives the same stream (ChaCha20 under it).
    assert not torch.equal(NoiseSource.fresh().gaussian((8,), 1.0), NoiseSource.fresh().gaussian((8,), 1.0))
    key = bytes(range(32))
    assert torch.equal(NoiseSource(key).gaussian((8,), 1.0), NoiseSource(key).gaussian((8,), 1.0))
    with pytest.raises(ValueError, match="32 bytes"):
        NoiseSource(b"short")


def test_dp_noise_and_sampling_never_come_from_torchs_mersenne_twister(monkeypatch):
    """Issue 19 item 4: torch's generator (a Mersenne Twister, seeded or not) gave DP-SGD its noise and its
    record sampling, and client-level DP its noise and its choice of hospitals. With every draw from it
    made to fail, each DP path still runs: their randomness comes from elsewhere (the ChaCha20 source)."""
    from fl.client import HospitalClient, LocalTrainingConfig
    from fl.data import federated_breast_cancer
    from fl.models import ModelSpec, get_parameters
    from fl.privacy import DPSGDConfig

    spec = ModelSpec("logistic", 30)
    hospital = federated_breast_cancer(3).hospitals[0]
    start = get_parameters(spec.build(seed=0))
    dp_client = HospitalClient(hospital, spec, LocalTrainingConfig(), DPSGDConfig(1.0, 1.0))
    config = ClientLevelDPConfig(clip_norm=1.0, noise_multiplier=1.0, clients_per_round=2, population=3)

    def refused(*args, **kwargs):
        raise AssertionError("DP randomness drawn from torch's generator")

    for name in ("normal", "randn", "rand", "bernoulli", "randint", "randperm"):
        monkeypatch.setattr(torch, name, refused)
    trained = dp_client.train(start, 1)
    assert any(not torch.equal(trained.parameters[name], start[name]) for name in start)
    dp = ClientLevelDP(config)
    assert set(dp.sample(["a", "b", "c"], 1)) <= {"a", "b", "c"}
    dp.aggregate(1, GLOBAL, [client("a", [1.0, 0, 0, 0])])


def test_a_distributed_dp_step_bounds_each_records_part_by_the_clip_and_adds_only_a_share_of_the_noise():
    from fl.client import distributed_dp_step
    from fl.data import Dataset, federated_breast_cancer
    from fl.models import ModelSpec
    from fl.privacy import DistributedDPConfig, NoiseSource

    data = federated_breast_cancer(5).hospitals[0].data
    spec = ModelSpec("logistic", data.num_features)
    base = spec.build(seed=0).state_dict()
    flat = lambda parameters: torch.cat([parameters[name].double().flatten() for name in sorted(parameters)])  # noqa: E731
    # Every record drawn, next to no noise: the step is the learning rate times the sum of clipped gradients,
    # so removing one record moves it by at most learning rate * clip, however large that record's gradient.
    exact = DistributedDPConfig(clip_norm=0.5, noise_multiplier=1e-9, min_survivors=3, sample_rate=1.0)
    assert exact.record_level and exact.round_release == DPParameters(1e-9, 1.0, 1, 0.5)
    whole = flat(distributed_dp_step(spec, base, data, exact, 0.1, NoiseSource.fresh()))
    fewer = Dataset(data.features[1:], data.labels[1:])
    less = flat(distributed_dp_step(spec, base, fewer, exact, 0.1, NoiseSource.fresh()))
    assert 0 < float(torch.linalg.vector_norm(whole - less)) <= 0.1 * 0.5 + 1e-6
    # The sum of all clipped gradients is far larger than one record's clip: clipping did not scale it away.
    assert float(torch.linalg.vector_norm(whole - flat(base))) > 0.1 * 0.5 * 5
    # The noise: each hospital's share has deviation sigma * clip / sqrt(min_survivors), so that the shares of
    # any min_survivors hospitals add up to the full deviation (seen on an empty sample: noise alone).
    noisy = DistributedDPConfig(clip_norm=0.5, noise_multiplier=4.0, min_survivors=4, sample_rate=1e-12)
    steps = torch.stack([flat(distributed_dp_step(spec, base, data, noisy, 1.0, NoiseSource.fresh())) - flat(base)
                         for _ in range(200)])
    assert math.isclose(float(steps.std()), 4.0 * 0.5 / 2, rel_tol=0.1)
    # A client-level config is not record level: its update is clipped and noised whole (privatize).
    assert not DistributedDPConfig(clip_norm=0.5, noise_multiplier=4.0, min_survivors=4).record_level
    with pytest.raises(ValueError, match="sample_rate"):
        DistributedDPConfig(clip_norm=0.5, noise_multiplier=4.0, min_survivors=4, sample_rate=0.0)
