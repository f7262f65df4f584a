import math

import pytest
import torch
from opacus.accountants import RDPAccountant

from fl.aggregation import ClientModel
from fl.privacy import (
    ClientLevelDP,
    ClientLevelDPConfig,
    PrivacyBudgetExceeded,
    PrivacyLedger,
    calibrate_noise_multiplier,
    update_norm,
)

GLOBAL = {"w": torch.zeros(4), "b": torch.zeros(1)}


def client(client_id, w, b=0.0, samples=10):
    return ClientModel(client_id, {"w": torch.tensor(w, dtype=torch.float32), "b": torch.tensor([b])}, samples)


def opacus_epsilon(history, delta):
    accountant = RDPAccountant()
    accountant.history = history
    return accountant.get_epsilon(delta=delta)


def test_ledger_matches_opacus_accountant_across_mixed_rounds():
    ledger = PrivacyLedger(delta=1e-5)
    assert ledger.total.epsilon == 0.0
    ledger.record(1, 1.2, 0.25, 8)
    ledger.record(2, 2.0, 0.5, 4)
    ledger.record(3, 1.2, 0.25, 8)
    expected = opacus_epsilon([(1.2, 0.25, 8), (2.0, 0.5, 4), (1.2, 0.25, 8)], 1e-5)
    assert math.isclose(ledger.total.epsilon, expected, rel_tol=1e-9)
    assert math.isclose(ledger.rounds[1].round_epsilon, opacus_epsilon([(2.0, 0.5, 4)], 1e-5), rel_tol=1e-9)
    totals = [r.total_epsilon for r in ledger.rounds]
    assert totals == sorted(totals) and totals[-1] == ledger.total.epsilon
    assert ledger.total.delta == 1e-5


def test_projection_and_budget():
    ledger = PrivacyLedger(delta=1e-5, epsilon_budget=6.0)
    projected = ledger.projected_total(1.0, 0.25, 4)
    ledger.ensure_affordable(1.0, 0.25, 4)
    ledger.record(1, 1.0, 0.25, 4)
    assert math.isclose(ledger.total.epsilon, projected)
    with pytest.raises(PrivacyBudgetExceeded, match=r"from \d+\.\d+ to \d+\.\d+ \(delta 1e-05\), over the budget of 6"):
        ledger.ensure_affordable(1.0, 0.25, 400)
    with pytest.raises(ValueError, match="steps must be non-negative"):
        ledger.record(2, 1.0, 0.25, -1)


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


def test_client_level_noise_has_the_calibrated_scale_and_is_accounted():
    config = ClientLevelDPConfig(clip_norm=1.0, noise_multiplier=2.0, clients_per_round=2, population=20)
    dp = ClientLevelDP(config, seed=3)
    size = 20000
    zero = {"w": torch.zeros(size)}
    models = [ClientModel("a", {"w": torch.zeros(size)}, 5), ClientModel("b", {"w": torch.zeros(size)}, 50)]
    noisy = dp.aggregate(1, zero, models)["w"]
    # std = noise_multiplier * clip_norm / clients_per_round = 1.0
    assert abs(float(noisy.std()) - 1.0) < 0.03
    assert abs(float(noisy.mean())) < 0.03
    assert math.isclose(dp.ledger.total.epsilon, opacus_epsilon([(2.0, 0.1, 1)], 1e-5), rel_tol=1e-9)
    again = ClientLevelDP(config, seed=3).aggregate(1, zero, models)["w"]
    assert torch.equal(noisy, again)
    # Without a seed the noise comes from OS entropy: nobody can rebuild and subtract it.
    unseeded = [ClientLevelDP(config).aggregate(1, zero, models)["w"] for _ in range(2)]
    assert not torch.equal(unseeded[0], unseeded[1]) and not torch.equal(unseeded[0], noisy)


@pytest.mark.filterwarnings("ignore:Optimal order")  # negligible noise on purpose
def test_client_level_average_is_uniform_over_clipped_updates():
    config = ClientLevelDPConfig(clip_norm=1.0, noise_multiplier=1e-9, clients_per_round=2, population=4)
    dp = ClientLevelDP(config)
    # A large hospital with a huge update counts no more than a small one.
    result = dp.aggregate(1, GLOBAL, [client("a", [100.0, 0, 0, 0], samples=1000), client("b", [0, 0.5, 0, 0], samples=1)])
    assert torch.allclose(result["w"], torch.tensor([0.5, 0.25, 0.0, 0.0]), atol=1e-6)


def test_client_level_budget_and_bad_settings_are_refused():
    config = ClientLevelDPConfig(clip_norm=1.0, noise_multiplier=0.5, clients_per_round=2, population=2, epsilon_budget=1.0)
    dp = ClientLevelDP(config)
    with pytest.raises(PrivacyBudgetExceeded):
        dp.aggregate(1, GLOBAL, [client("a", [0, 0, 0, 0]), client("b", [0, 0, 0, 0])])
    assert dp.ledger.rounds == []
    ok = ClientLevelDP(ClientLevelDPConfig(clip_norm=1.0, noise_multiplier=1.0, clients_per_round=2, population=4))
    with pytest.raises(ValueError, match="expected 2 clients this round, got 1"):
        ok.aggregate(1, GLOBAL, [client("a", [0, 0, 0, 0])])
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
