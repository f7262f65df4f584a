import dataclasses

import pytest

from fl.client import LocalTrainingConfig
from fl.compression import CompressionConfig
from fl.data import federated_breast_cancer
from fl.privacy import ClientLevelDPConfig, DPSGDConfig, SeededNoise, update_norm
from fl.secure_aggregation import SecureAggregationError
from fl.simulation import FederatedConfig, SecureAggregationConfig, run_federated, train_centralized

TRAINING = LocalTrainingConfig(learning_rate=0.05)


@pytest.fixture(scope="module")
def five():
    return federated_breast_cancer(5, "dirichlet", alpha=0.5)


@pytest.fixture(scope="module")
def three():
    return federated_breast_cancer(3, "iid")


def test_fedavg_learns_and_is_deterministic(three):
    config = FederatedConfig(rounds=3, training=TRAINING)
    result = run_federated(three, config)
    assert [r.round_number for r in result.rounds] == [1, 2, 3]
    assert all(r.participants == ("hospital_1", "hospital_2", "hospital_3") for r in result.rounds)
    assert result.test_accuracy > 0.9
    assert result.rounds[-1].test.loss < result.rounds[0].test.loss
    # Each update as stored: 31 float32 parameters and a safetensors header.
    assert 3 * 31 * 4 < result.rounds[0].uploaded_bytes < 3 * (31 * 4 + 1024)
    assert result.hospital_privacy == {} and result.client_level_privacy is None
    again = run_federated(three, config)
    assert update_norm(result.parameters, again.parameters) == 0.0


def test_centralized_baseline_learns(three):
    _, evaluation = train_centralized(three, epochs=3, training=TRAINING)
    assert evaluation.accuracy > 0.9


def test_secure_sum_gives_fedavg_up_to_fixed_point_rounding(three):
    plain = run_federated(three, FederatedConfig(rounds=2, training=TRAINING))
    secure = run_federated(
        three, FederatedConfig(rounds=2, training=TRAINING, secure_aggregation=SecureAggregationConfig(threshold=2))
    )
    assert 0.0 < update_norm(plain.parameters, secure.parameters) < 1e-5


def test_a_dropped_hospital_is_left_out_of_the_secure_average(five):
    dropped = SecureAggregationConfig(threshold=3, dropouts_per_round={1: ("hospital_2",)})
    secure = run_federated(five, FederatedConfig(rounds=1, training=TRAINING, secure_aggregation=dropped))
    without = dataclasses.replace(five, hospitals=tuple(h for h in five.hospitals if h.name != "hospital_2"))
    plain = run_federated(without, FederatedConfig(rounds=1, training=TRAINING))
    assert update_norm(plain.parameters, secure.parameters) < 1e-5
    assert secure.rounds[0].dropped == ("hospital_2",)
    assert secure.rounds[0].survivors == ("hospital_1", "hospital_3", "hospital_4", "hospital_5")
    everyone = run_federated(five, FederatedConfig(rounds=1, training=TRAINING))
    assert update_norm(everyone.parameters, secure.parameters) > 1e-3


def test_secure_aggregation_refuses_to_leave_two_survivors(three):
    """Issue 10: with three hospitals and one dropout, each of the two survivors would learn the other's update."""
    dropped = SecureAggregationConfig(threshold=2, dropouts_per_round={1: ("hospital_2",)})
    with pytest.raises(SecureAggregationError, match="at least 3 must survive"):
        run_federated(three, FederatedConfig(rounds=1, training=TRAINING, secure_aggregation=dropped))


def test_a_byzantine_hospital_wrecks_fedavg_but_not_the_median(five):
    def accuracy(aggregator):
        config = FederatedConfig(rounds=8, training=TRAINING, aggregator=aggregator, byzantine_clients=("hospital_1",))
        return run_federated(five, config).test_accuracy

    clean = run_federated(five, FederatedConfig(rounds=8, training=TRAINING)).test_accuracy
    assert accuracy("fedavg") < clean - 0.15
    assert accuracy("median") > clean - 0.05


def test_dp_sgd_runs_report_privacy_per_round_and_in_total(three):
    dp = DPSGDConfig(noise_multiplier=1.5, max_grad_norm=1.0, sample_rate=0.25)
    result = run_federated(three, FederatedConfig(rounds=2, training=LocalTrainingConfig(learning_rate=0.5), dp=dp))
    assert set(result.hospital_privacy) == {"hospital_1", "hospital_2", "hospital_3"}
    for record in result.rounds:
        assert set(record.privacy) == set(result.hospital_privacy)
    for hospital, total in result.hospital_privacy.items():
        first, second = (record.privacy[hospital] for record in result.rounds)
        assert first.total_epsilon < second.total_epsilon == total.epsilon
        assert total.delta == 1e-5
    assert result.test_accuracy > 0.8


def test_a_seed_fixes_neither_dp_noise_nor_the_choice_of_hospitals(three):
    """Issue 10: every hospital's DP-SGD noise, its batches, the server's client-level noise and the choice
    of hospitals came from ``config.seed``, so anyone with the config could subtract the noise."""
    dp = DPSGDConfig(noise_multiplier=1.5, max_grad_norm=1.0, sample_rate=0.25)
    config = FederatedConfig(rounds=1, training=LocalTrainingConfig(learning_rate=0.5), dp=dp, seed=0)
    first, again = run_federated(three, config), run_federated(three, config)
    assert update_norm(first.parameters, again.parameters) > 0.0
    assert not first.noise_seeded and all(spent.epsilon > 0 for spent in first.hospital_privacy.values())
    client_dp = ClientLevelDPConfig(clip_norm=1.0, noise_multiplier=0.5, clients_per_round=3, population=3)
    config = FederatedConfig(rounds=1, training=TRAINING, client_level_dp=client_dp, seed=0)
    assert update_norm(run_federated(three, config).parameters, run_federated(three, config).parameters) > 0.0


def test_seeded_noise_reproduces_a_dp_run_and_voids_its_epsilon(three):
    dp = DPSGDConfig(noise_multiplier=1.5, max_grad_norm=1.0, sample_rate=0.25)
    config = FederatedConfig(rounds=2, training=LocalTrainingConfig(learning_rate=0.5), dp=dp, seeded_noise=SeededNoise(7))
    first, again = run_federated(three, config), run_federated(three, config)
    assert update_norm(first.parameters, again.parameters) == 0.0
    assert first.noise_seeded
    assert all(spent.epsilon is None and spent.noise_seeded for spent in first.hospital_privacy.values())
    assert all(cost.total_epsilon is None for record in first.rounds for cost in record.privacy.values())


def test_client_level_dp_samples_hospitals_by_poisson_and_is_accounted(three):
    dp = ClientLevelDPConfig(clip_norm=1.0, noise_multiplier=0.5, clients_per_round=2, population=3)
    result = run_federated(three, FederatedConfig(rounds=12, training=TRAINING, client_level_dp=dp))
    counts = [len(record.participants) for record in result.rounds]
    # Each hospital takes part with probability 2/3 each round: the count varies (P(all 12 equal) < 1e-4).
    assert len(set(counts)) > 1 and all(0 <= count <= 3 for count in counts)
    assert result.client_level_privacy.epsilon > 0 and not result.noise_seeded
    assert result.hospital_privacy == {}
    everyone = ClientLevelDPConfig(clip_norm=1.0, noise_multiplier=0.5, clients_per_round=3, population=3)
    full = run_federated(three, FederatedConfig(rounds=12, training=TRAINING, client_level_dp=everyone))
    assert all(record.participants == ("hospital_1", "hospital_2", "hospital_3") for record in full.rounds)
    # Poisson sampling at 2/3 earns the amplification the accountant credits it with.
    assert result.client_level_privacy.epsilon < full.client_level_privacy.epsilon
    wrong = ClientLevelDPConfig(clip_norm=1.0, noise_multiplier=0.5, clients_per_round=2, population=10)
    with pytest.raises(ValueError, match="population of 10, but there are 3 hospitals"):
        run_federated(three, FederatedConfig(rounds=1, client_level_dp=wrong))


def test_compressed_uploads_are_smaller_and_still_learn(three):
    config = FederatedConfig(rounds=3, training=TRAINING, compression=CompressionConfig(top_k_ratio=0.25, quantize_8bit=True))
    result = run_federated(three, config)
    plain = run_federated(three, dataclasses.replace(config, compression=None, rounds=1))
    # Per hospital: 9 int8 codes (8 of 30 weights, the bias), a 4-byte bitmap, two 4-byte scales: 21 of 124
    # bytes, headers aside.
    assert result.rounds[0].uploaded_bytes <= plain.rounds[0].uploaded_bytes - 3 * (124 - 21)
    assert result.test_accuracy > 0.85


def test_fedadam_gets_the_global_model(three):
    config = FederatedConfig(rounds=2, training=TRAINING, aggregator="fedadam", aggregator_config={"learning_rate": 0.05})
    assert run_federated(three, config).test_accuracy > 0.8


def test_bad_run_settings_are_refused(three):
    with pytest.raises(ValueError, match="rounds must be at least 1"):
        FederatedConfig(rounds=0)
    with pytest.raises(ValueError, match="secure aggregation reveals only the sum of updates, which 'median'"):
        FederatedConfig(aggregator="median", secure_aggregation=SecureAggregationConfig(threshold=2))
    with pytest.raises(ValueError, match="not combined"):
        FederatedConfig(
            secure_aggregation=SecureAggregationConfig(threshold=2),
            client_level_dp=ClientLevelDPConfig(clip_norm=1.0, noise_multiplier=1.0, clients_per_round=3, population=3),
        )
    with pytest.raises(ValueError, match=r"Byzantine clients \['hospital_9'\]"):
        run_federated(three, FederatedConfig(rounds=1, byzantine_clients=("hospital_9",)))
