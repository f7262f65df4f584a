"""Model quality of federated training on the breast-cancer (Wisconsin diagnostic) data.

Every figure is test accuracy of a logistic-regression model on the same
held-out split (143 patients, so one patient is 0.7 points). In the same run:
the centralized baseline (all training records pooled), FedAvg on IID and on
label-skewed (Dirichlet) shares of 5 hospitals, FedProx, FedAvg computed by
secure aggregation, FedAvg with compressed uploads, DP-SGD at every hospital
within epsilon 4 (delta 1e-5) over the whole study, client-level DP (Poisson
sampling of hospitals) at the accountant's epsilon <= 4, and a Byzantine
hospital (sign-flipped update scaled by 10) against FedAvg and the robust
rules. Which hospital attacks matters on skewed shares (losing a rare-label
hospital costs more), so each of the 5 takes the attacker's role in turn and
the figures are means over the 5 runs, with the worst case beside them.

DP noise and sampling come from the OS, so DP figures vary from run to run:
each DP setting runs 5 times and reports the mean with the spread. They are
computed in one process (``dp_inprocess_acc``), and again as on-chain rounds
(``dp_chain_acc``): ``medshare fl run --hospitals 5 --rounds 20 --dp-epsilon 4
--dp-delta 1e-5``'s library, each run on its own anvil with a coordinator and 5
hospital processes, each hospital's budget on chain (the run's shares are the
runner's, ``--share I/5``); ``--dp-chain-runs N`` runs it N times instead of 5
(0 skips it, as on-chain runs take minutes each), ``--only-dp-chain`` runs that
part alone.

The privacy figures (``--only-privacy`` alone; ``--privacy-runs N``, default 5):
``csprng_noise_overhead`` (a DP-SGD step with ChaCha20 noise and sampling over
one drawing from torch's generator, target <= 2), ``rounds_per_budget_rdp`` /
``rounds_per_budget_pld``, and local against distributed DP through on-chain
rounds at epsilon 1 and 4 per hospital (``local_dp_acc_eps*``,
``distributed_dp_acc_eps*``). Distributed DP is record level (``fl run
--distributed-dp``'s): each round one step of DP-SGD on the union of the
hospitals' records, each hospital adding its share of the noise inside the
secure sum, so one record's gradient is hidden among the whole consortium's
sample instead of one hospital's.

Targets: FedAvg (non-IID) within 1.5 points of centralized; DP-SGD (mean of 5
runs) within 3 points of centralized at epsilon <= 4; the best robust rule
within 3 points of clean FedAvg while FedAvg under attack visibly degrades.
Client-level DP has no accuracy target: with 5 hospitals each one's whole
update is what the noise must hide.
"""
from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fl.client import LocalTrainingConfig  # noqa: E402
from fl.compression import CompressionConfig  # noqa: E402
from fl.data import federated_breast_cancer  # noqa: E402
from fl.privacy import ClientLevelDPConfig, DPSGDConfig, calibrate_noise_multiplier  # noqa: E402
from fl.simulation import (  # noqa: E402
    FederatedConfig,
    SecureAggregationConfig,
    run_federated,
    train_centralized,
)

SEED = 0
HOSPITALS = 5
DIRICHLET_ALPHA = 0.5
ROUNDS = 50
TRAINING = LocalTrainingConfig(epochs=1, batch_size=16, learning_rate=0.05)
# Multi-Krum averages the n - 2f most central models.
ROBUST_RULES = {"trimmed_mean": {"trim_ratio": 0.2}, "median": {}, "krum": {"f": 1, "m": HOSPITALS - 2}}

# DP-SGD: the noise is calibrated so that all rounds together stay within the target.
DP_TARGET_EPSILON = 4.0
DP_DELTA = 1e-5
DP_ROUNDS = 20
DP_SAMPLE_RATE = 0.25
DP_CLIP = 1.0
DP_TRAINING = LocalTrainingConfig(epochs=1, learning_rate=1.0)
DP_RUNS = 5

# Client-level DP: few rounds of long local training, each hospital drawn with probability 4/5 per round.
CLIENT_DP_ROUNDS = 3
CLIENT_DP_EXPECTED = 4
CLIENT_DP_CLIP = 1.0
CLIENT_DP_TRAINING = LocalTrainingConfig(epochs=10, learning_rate=0.1)


def spread(values: list[float]) -> str:
    return f"mean {100 * sum(values) / len(values):.2f}%, min {100 * min(values):.2f}%, max {100 * max(values):.2f}%"


DP_CHAIN_RUNS = 5


def measure_dp_chain(runs: int) -> dict:
    """``dp_chain_*``: DP-SGD within each hospital's on-chain budget, through the rounds' nodes."""
    import tempfile

    from offchain.rounds.runner import RunSettings, run_study
    from offchain.settings import Settings

    accuracies, epsilons, seconds = [], [], []
    for _ in range(runs):
        begun = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="medshare-dp-chain-") as home:
            result = run_study(
                RunSettings(rounds=DP_ROUNDS, hospitals=HOSPITALS, dp_epsilon=DP_TARGET_EPSILON, dp_delta=DP_DELTA,
                            passphrase="bench dp chain"),
                Settings(home=Path(home)), echo=lambda line: None, progress=False)
        assert all(entry.verified for entry in result.rounds), "an on-chain DP round failed verification"
        accuracies.append(result.rounds[-1].test_accuracy)
        epsilons.append(max(result.epsilon_spent.values()))
        seconds.append(time.perf_counter() - begun)
    if not runs:
        return {}
    return {
        "dp_chain_acc": round(sum(accuracies) / runs, 4),
        "dp_chain_acc_runs": [round(accuracy, 4) for accuracy in accuracies],
        "dp_chain_acc_spread": round(max(accuracies) - min(accuracies), 4),
        "dp_chain_epsilon": round(max(epsilons), 6),
        "dp_chain_budget": DP_TARGET_EPSILON,
        "dp_chain_runs": runs,
        "dp_chain_run_s": round(sum(seconds) / runs, 1),
    }


# Local against distributed DP through on-chain rounds, at epsilon 1 and 4 per hospital.
PRIVACY_RUNS = 5
PRIVACY_EPSILONS = (1.0, 4.0)
LOCAL_DP_ROUNDS = 5
DISTRIBUTED_DP_ROUNDS = 10  # record-level distributed DP-SGD: one step a round
BUDGET_EPSILON = 4.0  # rounds_per_budget_*: at the noise RDP calibrates for DP_ROUNDS rounds within it


def measure_csprng_overhead(repeats: int = 5, steps: int = 40) -> dict:
    """``csprng_noise_overhead``: seconds per DP-SGD step of one hospital with its noise and sampling from
    the ChaCha20 source (secure-mode sum of draws) over the same step drawing from torch's generator (a
    Mersenne Twister, as DP-SGD drew before); the best of ``repeats`` interleaved runs of ``steps`` steps each. Beside it,
    ``csprng_noise_only_ratio``: the noise alone for a 1 M-value update, ChaCha20 over torch.normal."""
    import warnings

    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer
    from torch.nn import functional

    from fl.models import ModelSpec, logits
    from fl.privacy import CryptoNoiseDPOptimizer, NoiseSource, os_generator

    data = federated_breast_cancer(HOSPITALS).hospitals[0].data
    spec = ModelSpec("logistic", data.num_features)

    def per_step(cryptographic: bool) -> float:
        model = GradSampleModule(spec.build(seed=0), loss_reduction="sum")
        settings = dict(noise_multiplier=1.0, max_grad_norm=DP_CLIP, expected_batch_size=DP_SAMPLE_RATE * data.num_samples,
                        loss_reduction="mean")
        sgd = torch.optim.SGD(model.parameters(), lr=1.0)
        if cryptographic:
            source = NoiseSource.fresh()
            optimizer = CryptoNoiseDPOptimizer(sgd, noise=source, **settings)
            draw = lambda: source.bernoulli(data.num_samples, DP_SAMPLE_RATE)  # noqa: E731
        else:
            generator = os_generator()
            optimizer = DPOptimizer(sgd, generator=generator, **settings)
            draw = lambda: torch.rand(data.num_samples, generator=generator) < DP_SAMPLE_RATE  # noqa: E731
        begun = time.perf_counter()
        for _ in range(steps):
            optimizer.zero_grad()
            drawn = draw()
            loss = functional.binary_cross_entropy_with_logits(
                logits(model, data.features[drawn]), data.labels[drawn], reduction="sum")
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                loss.backward()
            optimizer.step()
        return (time.perf_counter() - begun) / steps

    before, after = [], []
    for _ in range(repeats):
        before.append(per_step(False))
        after.append(per_step(True))
    size = 1_000_000
    generator, source = os_generator(), NoiseSource.fresh()
    begun = time.perf_counter()
    torch.normal(0.0, 1.0, (size,), generator=generator)
    plain = time.perf_counter() - begun
    begun = time.perf_counter()
    source.gaussian((size,), 1.0)
    cryptographic = time.perf_counter() - begun
    return {"csprng_noise_overhead": round(min(after) / min(before), 3),
            "dp_step_ms_mersenne": round(1000 * min(before), 3), "dp_step_ms_csprng": round(1000 * min(after), 3),
            "csprng_noise_only_ratio": round(cryptographic / plain, 2)}


def rounds_per_budget(epsilon: float = BUDGET_EPSILON) -> dict:
    """Rounds of the chain's DP-SGD (1 epoch of q = 0.25 steps) each hospital can afford within ``epsilon``
    (delta 1e-5) by each accountant, at the noise that ``fl run --dp-epsilon 4 --rounds 20`` calibrates
    (by RDP, so RDP affords exactly those 20)."""
    from fl.privacy import DPParameters, epsilon_of
    from offchain.rounds.privacy import chain_exact

    steps = DP_TRAINING.epochs * math.ceil(1 / DP_SAMPLE_RATE)
    noise = chain_exact(calibrate_noise_multiplier(epsilon, DP_DELTA, DP_SAMPLE_RATE, DP_ROUNDS * steps))
    figures = {}
    for accountant in ("rdp", "pld"):
        rounds = 0
        while epsilon_of([DPParameters(noise, DP_SAMPLE_RATE, steps * (rounds + 1), DP_CLIP)], DP_DELTA,
                         accountant) <= epsilon:
            rounds += 1
        figures[f"rounds_per_budget_{accountant}"] = rounds
    figures["rounds_per_budget_noise"] = noise
    return figures


@contextmanager
def chain_consortium(purpose: str) -> Iterator[tuple[Path, dict, Any, Any, list]]:
    """A local anvil (closed on exit) with MedicalAccess and RoundRegistry deployed and a coordinator, an
    auditor and ``HOSPITALS`` hospitals enrolled, their keystores in a temporary home: (the home, the
    members by address, the coordinator's account, the auditor's, the hospitals')."""
    import tempfile

    from ape import accounts, networks

    from offchain.consortium import deploy_contracts, enrol
    from offchain.settings import Settings

    with tempfile.TemporaryDirectory(prefix=f"medshare-bench-{purpose}-") as folder, \
            networks.parse_network_choice("ethereum:local:foundry", disconnect_after=True):
        home = Path(folder)
        test_accounts = accounts.test_accounts
        admin, coordinator_account, auditor = test_accounts[0], test_accounts[1], test_accounts[2]
        hospitals = [test_accounts[3 + i] for i in range(HOSPITALS)]
        contracts = deploy_contracts(admin, record=False)
        access, registry = contracts.access, contracts.registry
        members = enrol(access, registry, admin, coordinator_account, hospitals, [auditor], Settings(home=home),
                        f"bench {purpose} passphrase")
        yield home, members, coordinator_account, auditor, hospitals


def measure_chain_privacy(runs: int, local_runs: int | None = None) -> dict:
    """``local_dp_acc_eps*``, ``distributed_dp_acc_eps*``: mean test accuracy over ``runs`` studies each,
    5 hospitals (the runner's shares), through the rounds' library on a local anvil: the coordinator
    and the hospital nodes stepping in this process, every update and every secure phase on chain and in
    the store, each hospital's budget on chain. Local: DP-SGD at each hospital; distributed: each
    hospital's clipped update plus its share of the noise inside the secure sum (threshold 3).
    ``local_runs`` (default ``runs``) for local DP alone: 0 measures distributed DP only."""

    from fl.models import ModelSpec, evaluate, set_parameters
    from offchain.rounds.config import SecureAggregationSettings, StudyConfig
    from offchain.rounds.coordinator import Coordinator
    from offchain.rounds.participant import HospitalNode
    from offchain.rounds.privacy import DP_LEARNING_RATE, budgeted_dp, study_privacy
    from offchain.rounds.config import default_threshold

    if not runs:
        return {}
    data = federated_breast_cancer(HOSPITALS)
    spec = ModelSpec("logistic", data.num_features)
    figures: dict = {}
    with chain_consortium("dp") as (home, members, coordinator_account, auditor, hospitals):
        coordinator_member = members[coordinator_account.address]
        hospital_members = [members[h.address] for h in hospitals]
        participants = tuple(h.address for h in hospitals)

        def accuracy(config: StudyConfig, rounds: int) -> float:
            study = coordinator_member.create_study(config, min_updates=3).number
            clock = [0.0]
            coordinator = Coordinator(coordinator_member, study, target_rounds=rounds, clock=lambda: clock[0])
            nodes = [HospitalNode(member, study, share) for member, share in zip(hospital_members, data.hospitals)]
            for _ in range(rounds * 20):
                for node in nodes:
                    node.step()
                if coordinator.step().action == "done":
                    break
                clock[0] += 1
            model = spec.build(seed=0)
            set_parameters(model, coordinator.study.model(rounds))
            return evaluate(model, data.test).accuracy

        training = LocalTrainingConfig(learning_rate=DP_LEARNING_RATE)
        secure = SecureAggregationSettings(default_threshold(HOSPITALS))
        for epsilon in PRIVACY_EPSILONS:
            name = f"eps{epsilon:g}"
            local = [accuracy(StudyConfig(spec, participants, (auditor.address,), training=training,
                                          dp=budgeted_dp(epsilon, DP_DELTA, LOCAL_DP_ROUNDS, training)),
                              LOCAL_DP_ROUNDS) for _ in range(runs if local_runs is None else local_runs)]
            # As `fl run --dp-epsilon E --secure-aggregation --distributed-dp` makes it.
            distributed_training, _, distributed_dp = study_privacy(epsilon, DP_DELTA, DISTRIBUTED_DP_ROUNDS,
                                                                    distributed_survivors=secure.threshold)
            distributed = [accuracy(StudyConfig(spec, participants, (auditor.address,), training=distributed_training,
                                                secure_aggregation=secure, distributed_dp=distributed_dp),
                                    DISTRIBUTED_DP_ROUNDS) for _ in range(runs)]
            if local:
                figures[f"local_dp_acc_{name}"] = round(sum(local) / len(local), 4)
                figures[f"local_dp_acc_{name}_runs"] = [round(value, 4) for value in local]
            figures[f"distributed_dp_acc_{name}"] = round(sum(distributed) / runs, 4)
            figures[f"distributed_dp_acc_{name}_runs"] = [round(value, 4) for value in distributed]
            figures[f"distributed_dp_noise_{name}"] = round(distributed_dp.noise_multiplier, 3)
    figures["privacy_runs"] = runs
    return figures


def _options():
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dp-chain-runs", type=int, default=DP_CHAIN_RUNS)
    parser.add_argument("--only-dp-chain", action="store_true")
    parser.add_argument("--privacy-runs", type=int, default=PRIVACY_RUNS,
                        help="studies per setting for local_dp_acc_* / distributed_dp_acc_* (0 skips them)")
    parser.add_argument("--local-privacy-runs", type=int, default=None,
                        help="studies per setting for local_dp_acc_* alone (default: --privacy-runs; 0 skips them)")
    parser.add_argument("--only-privacy", action="store_true",
                        help="only the privacy figures: csprng_noise_overhead, rounds_per_budget_*, local and "
                             "distributed DP on chain, centralized_acc")
    parser.add_argument("--only-chain-robustness", action="store_true",
                        help="only the chain path's robustness and compression figures: byzantine_chain_gap_pts, "
                             "topk_int8_bytes_ratio, topk_int8_gap_pts")
    return parser.parse_args()


def main() -> None:
    options = _options()
    chain_runs, only_chain = options.dp_chain_runs, options.only_dp_chain
    if options.only_chain_robustness:
        print(json.dumps(robust_and_compressed_chain()))
        return
    if options.only_privacy:
        _, central = train_centralized(federated_breast_cancer(HOSPITALS, "iid", seed=SEED),
                                       epochs=ROUNDS * TRAINING.epochs, training=TRAINING, seed=SEED)
        figures = {"centralized_acc": round(central.accuracy, 4), **measure_csprng_overhead(), **rounds_per_budget(),
                   **measure_chain_privacy(options.privacy_runs, options.local_privacy_runs)}
        print(json.dumps(figures))
        return
    if only_chain:
        _, central = train_centralized(federated_breast_cancer(HOSPITALS, "iid", seed=SEED),
                                       epochs=ROUNDS * TRAINING.epochs, training=TRAINING, seed=SEED)
        figures = measure_dp_chain(chain_runs)
        print(f"centralized {100 * central.accuracy:.2f}%; on chain, DP-SGD within epsilon {DP_TARGET_EPSILON:g}: "
              f"{100 * figures.get('dp_chain_acc', 0):.2f}% over {chain_runs} runs")
        print(json.dumps({"centralized_acc": round(central.accuracy, 4), **figures}))
        return
    torch.set_num_threads(1)  # small model: threads only add scheduling noise
    started = time.perf_counter()
    iid = federated_breast_cancer(HOSPITALS, "iid", seed=SEED)
    skewed = federated_breast_cancer(HOSPITALS, "dirichlet", alpha=DIRICHLET_ALPHA, seed=SEED)
    rows: list[tuple[str, float, str]] = []

    def federated(name: str, dataset, **settings) -> float:
        config = FederatedConfig(**{"rounds": ROUNDS, "training": TRAINING, "seed": SEED, **settings})
        result = run_federated(dataset, config)
        rows.append((name, result.test_accuracy, f"{result.rounds[-1].uploaded_bytes} B uploaded in the last round"))
        return result.test_accuracy

    _, central = train_centralized(iid, epochs=ROUNDS * TRAINING.epochs, training=TRAINING, seed=SEED)
    rows.append(("centralized (pooled records)", central.accuracy, f"{ROUNDS} epochs"))
    federated("FedAvg, IID", iid)
    fedavg_noniid = federated("FedAvg, Dirichlet", skewed)
    federated("FedProx mu=0.1, Dirichlet", skewed, training=LocalTrainingConfig(
        epochs=TRAINING.epochs, batch_size=TRAINING.batch_size, learning_rate=TRAINING.learning_rate, mu=0.1))
    federated("FedAvg by secure aggregation, Dirichlet", skewed,
              secure_aggregation=SecureAggregationConfig(threshold=3))
    federated("FedAvg, top-10% + int8 uploads, Dirichlet", skewed,
              compression=CompressionConfig(top_k_ratio=0.1, quantize_8bit=True))

    # The steps each hospital will take (HospitalClient.dp_steps_per_round), so the noise covers every one.
    steps = DP_ROUNDS * DP_TRAINING.epochs * math.ceil(1 / DP_SAMPLE_RATE)
    noise = calibrate_noise_multiplier(DP_TARGET_EPSILON, DP_DELTA, DP_SAMPLE_RATE, steps)
    dp_runs = [
        run_federated(skewed, FederatedConfig(
            rounds=DP_ROUNDS, training=DP_TRAINING, seed=SEED,
            dp=DPSGDConfig(noise_multiplier=noise, max_grad_norm=DP_CLIP, sample_rate=DP_SAMPLE_RATE, delta=DP_DELTA),
        ))
        for _ in range(DP_RUNS)
    ]
    assert not any(result.noise_seeded for result in dp_runs)
    dp_accuracies = [result.test_accuracy for result in dp_runs]
    dp_acc = sum(dp_accuracies) / len(dp_accuracies)
    dp_epsilon = max(spent.epsilon for result in dp_runs for spent in result.hospital_privacy.values())
    rows.append((f"DP-SGD FedAvg, Dirichlet ({DP_ROUNDS} rounds)", dp_acc,
                 f"{spread(dp_accuracies)} over {DP_RUNS} runs; epsilon {dp_epsilon:.2f} at delta {DP_DELTA:g} "
                 f"per hospital, noise {noise:.2f}"))

    client_dp = ClientLevelDPConfig(
        clip_norm=CLIENT_DP_CLIP,
        noise_multiplier=calibrate_noise_multiplier(
            DP_TARGET_EPSILON, DP_DELTA, CLIENT_DP_EXPECTED / HOSPITALS, CLIENT_DP_ROUNDS),
        clients_per_round=CLIENT_DP_EXPECTED, population=HOSPITALS, delta=DP_DELTA,
    )
    client_runs = [
        run_federated(skewed, FederatedConfig(
            rounds=CLIENT_DP_ROUNDS, training=CLIENT_DP_TRAINING, seed=SEED, client_level_dp=client_dp))
        for _ in range(DP_RUNS)
    ]
    assert not any(result.noise_seeded for result in client_runs)
    client_accuracies = [result.test_accuracy for result in client_runs]
    client_dp_acc = sum(client_accuracies) / len(client_accuracies)
    client_dp_epsilon = max(result.client_level_privacy.epsilon for result in client_runs)
    rows.append((f"client-level DP FedAvg, Dirichlet ({CLIENT_DP_ROUNDS} rounds)", client_dp_acc,
                 f"{spread(client_accuracies)} over {DP_RUNS} runs; epsilon {client_dp_epsilon:.2f} at delta "
                 f"{DP_DELTA:g} per hospital, Poisson q={client_dp.sample_rate:g}, "
                 f"noise {client_dp.noise_multiplier:.2f}"))

    chain = measure_dp_chain(chain_runs)
    if chain:
        rows.append((f"DP-SGD on chain, --share I/5 ({DP_ROUNDS} rounds)", chain["dp_chain_acc"],
                     f"{spread(chain['dp_chain_acc_runs'])} over {chain_runs} runs; epsilon {chain['dp_chain_epsilon']:.2f} "
                     f"of {DP_TARGET_EPSILON:g} on chain per hospital"))

    def under_attack(rule: str, config: dict) -> tuple[float, float]:
        """Mean and worst test accuracy over the choice of attacking hospital."""
        accuracies = [
            run_federated(skewed, FederatedConfig(
                rounds=ROUNDS, training=TRAINING, seed=SEED, aggregator=rule,
                aggregator_config=config, byzantine_clients=(hospital.name,),
            )).test_accuracy
            for hospital in skewed.hospitals
        ]
        mean, worst = sum(accuracies) / len(accuracies), min(accuracies)
        rows.append((f"{rule}, 1 Byzantine of 5, Dirichlet", mean, f"mean over attackers; worst {100 * worst:.2f}%"))
        return mean, worst

    fedavg_byzantine, fedavg_byzantine_worst = under_attack("fedavg", {})
    robust = {rule: under_attack(rule, config) for rule, config in ROBUST_RULES.items()}
    best_rule = max(robust, key=lambda rule: robust[rule][0])

    print(f"{'run':<46} {'test acc':>8}  notes")
    for name, accuracy, note in rows:
        print(f"{name:<46} {100 * accuracy:7.2f}%  {note}")
    print(f"best robust rule: {best_rule}; total time {time.perf_counter() - started:.1f} s")
    for target, met in (
        ("FedAvg (Dirichlet) within 1.5 points of centralized", central.accuracy - fedavg_noniid <= 0.015),
        (f"DP-SGD (mean of {DP_RUNS} runs) within 3 points of centralized at epsilon <= {DP_TARGET_EPSILON:g}",
         central.accuracy - dp_acc <= 0.03 and dp_epsilon <= DP_TARGET_EPSILON),
        (f"client-level DP at the accountant's epsilon <= {DP_TARGET_EPSILON:g}", client_dp_epsilon <= DP_TARGET_EPSILON),
        *([(f"DP-SGD on chain (mean of {chain_runs} runs) within 3 points of centralized at epsilon <= "
             f"{DP_TARGET_EPSILON:g}", central.accuracy - chain["dp_chain_acc"] <= 0.03
             and chain["dp_chain_epsilon"] <= DP_TARGET_EPSILON)] if chain else []),
        ("best robust rule within 3 points of clean FedAvg", fedavg_noniid - robust[best_rule][0] <= 0.03),
        ("FedAvg under attack visibly degraded (over 10 points)", fedavg_noniid - fedavg_byzantine > 0.10),
    ):
        print(f"target {'met' if met else 'MISSED'}: {target}")
    print(json.dumps({
        "centralized_acc": round(central.accuracy, 4),
        "fedavg_noniid_acc": round(fedavg_noniid, 4),
        "dp_inprocess_acc": round(dp_acc, 4),
        "dp_inprocess_acc_runs": [round(accuracy, 4) for accuracy in dp_accuracies],
        "dp_inprocess_acc_spread": round(max(dp_accuracies) - min(dp_accuracies), 4),
        "dp_inprocess_epsilon": round(dp_epsilon, 3),
        "dp_delta": DP_DELTA,
        "client_dp_acc": round(client_dp_acc, 4),
        "client_dp_acc_runs": [round(accuracy, 4) for accuracy in client_accuracies],
        "client_dp_epsilon": round(client_dp_epsilon, 3),
        "client_dp_sample_rate": client_dp.sample_rate,
        "fedavg_byzantine_acc": round(fedavg_byzantine, 4),
        "fedavg_byzantine_worst_acc": round(fedavg_byzantine_worst, 4),
        "robust_byzantine_acc": round(robust[best_rule][0], 4),
        "robust_byzantine_worst_acc": round(robust[best_rule][1], 4),
        "robust_byzantine_rule": best_rule,
        **chain,
        **measure_csprng_overhead(),
        **rounds_per_budget(),
        **measure_chain_privacy(options.privacy_runs),
        **robust_and_compressed_chain(),
    }))


# Robust aggregation and compression through the chain path.
BYZANTINE_CHAIN_ROUNDS = 5
BYZANTINE_CHAIN_RULE = ("trimmed_mean", {"trim_ratio": 0.2})
BYZANTINE_SCALE = 10.0
BYZANTINE_HOOK = Path(__file__).resolve().parent.parent / "tests" / "compression" / "byzantine"
TOPK_CHAIN_ROUNDS = 10
TOPK_CHAIN_RUNS = 1
TOPK_CHAIN = CompressionConfig(top_k_ratio=0.1, quantize_8bit=True)


def measure_byzantine_chain(rounds: int = BYZANTINE_CHAIN_ROUNDS) -> dict:
    """``byzantine_chain_gap_pts``: ``medshare fl run``'s library with 5 hospital node processes, each
    its own OS process on its ``--share I/5``: clean FedAvg against the robust rule with hospital 1
    sending ``base - 10 * (trained - base)`` every round (the test-only hook in tests/compression/byzantine,
    put on the nodes' PYTHONPATH), and FedAvg under the same attack; every round verified by the auditor."""
    import os
    import tempfile

    from offchain.rounds.runner import RunSettings, run_study
    from offchain.settings import Settings

    def final_accuracy(aggregator: str, params: dict, attacked: bool) -> float:
        saved = {name: os.environ.get(name) for name in ("PYTHONPATH", "MEDSHARE_TEST_BYZANTINE")}
        if attacked:
            os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BYZANTINE_HOOK), saved["PYTHONPATH"]]))
            os.environ["MEDSHARE_TEST_BYZANTINE"] = f"1:{BYZANTINE_SCALE:g}"
        try:
            with tempfile.TemporaryDirectory(prefix="medshare-byzantine-chain-") as home:
                result = run_study(RunSettings(rounds=rounds, hospitals=HOSPITALS, aggregator=aggregator,
                                               aggregator_params=params, passphrase="bench byzantine chain"),
                                   Settings(home=Path(home)), echo=lambda line: None, progress=False)
                if attacked:
                    log = (Path(home) / "fl" / "logs" / "hospital-1.log").read_text()
                    assert "byzantine (test hook)" in log, "the Byzantine hook did not run in hospital-1"
        finally:
            for name, value in saved.items():
                os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
        assert all(entry.verified for entry in result.rounds), "a round failed verification"
        return result.rounds[-1].test_accuracy

    rule, params = BYZANTINE_CHAIN_RULE
    clean = final_accuracy("fedavg", {}, attacked=False)
    robust = final_accuracy(rule, params, attacked=True)
    fedavg = final_accuracy("fedavg", {}, attacked=True)
    return {"byzantine_chain_gap_pts": round(100 * (clean - robust), 2), "byzantine_chain_rule": rule,
            "byzantine_chain_clean_fedavg_acc": round(clean, 4), "byzantine_chain_robust_acc": round(robust, 4),
            "byzantine_chain_fedavg_attacked_acc": round(fedavg, 4), "byzantine_chain_rounds": rounds}


def measure_topk_chain(rounds: int = TOPK_CHAIN_ROUNDS, runs: int = TOPK_CHAIN_RUNS) -> dict:
    """``topk_int8_bytes_ratio``, ``topk_int8_gap_pts``: the MLP (513 parameters, the larger built-in
    model) through on-chain rounds, 5 hospitals (the runner's shares), the library's coordinator and
    nodes stepping in this process on a local anvil and the embedded store, uncompressed against top-10 %
    + int8 with error feedback, from the same genesis; ``runs`` studies each (the hospitals' batch order
    comes from the OS). Bytes are what the store holds per update (sealed: the wrapped keys of 2 readers
    and the AEAD framing included), beside the safetensors plaintext and its tensor data alone."""
    import io


    from fl.models import ModelSpec, evaluate, set_parameters
    from offchain.rounds.config import StudyConfig
    from offchain.rounds.coordinator import Coordinator
    from offchain.rounds.participant import HospitalNode
    from offchain.rounds.sealed import UPDATE

    data = federated_breast_cancer(HOSPITALS)
    spec = ModelSpec("mlp", data.num_features)
    genesis = spec.build(seed=SEED).state_dict()
    with chain_consortium("topk") as (home, members, coordinator_account, auditor, hospitals):
        coordinator_member, auditor_member = members[coordinator_account.address], members[auditor.address]
        participants = tuple(h.address for h in hospitals)

        def study(compression) -> tuple[float, list[int], list[int], list[int]]:
            config = StudyConfig.from_options(participants, (auditor.address,), model=spec,
                                              top_k=compression and compression.top_k_ratio,
                                              int8=bool(compression and compression.quantize_8bit))
            number = coordinator_member.create_study(config, min_updates=HOSPITALS, genesis=genesis).number
            coordinator = Coordinator(coordinator_member, number, target_rounds=rounds)
            nodes = [HospitalNode(members[address], number, share, home=home / address)
                     for address, share in zip(participants, data.hospitals)]
            for _ in range(rounds * 4):
                for node in nodes:
                    node.step()
                if coordinator.step().action == "done":
                    break
            view = auditor_member.study(number)
            stored, plaintext, tensors = [], [], []
            for update in auditor_member.rounds.updates(number, rounds):
                stored.append(auditor_member.store.cat(update.artifact.cid, io.BytesIO()))
                opened = view.open(update.artifact, view.place(rounds, UPDATE, update.participant))
                plaintext.append(len(opened))
                tensors.append(len(opened) - 8 - int.from_bytes(opened[:8], "little"))
            model = spec.build(seed=0)
            set_parameters(model, view.model(rounds))
            return evaluate(model, data.test).accuracy, stored, plaintext, tensors

        outcomes = {name: [study(compression) for _ in range(runs)]
                    for name, compression in (("plain", None), ("topk_int8", TOPK_CHAIN))}
    mean = {name: sum(run[0] for run in runs_of) / runs for name, runs_of in outcomes.items()}

    def per_update(name: str, index: int) -> float:
        values = [size for run in outcomes[name] for size in run[index]]
        return sum(values) / len(values)

    return {"topk_int8_bytes_ratio": round(per_update("topk_int8", 1) / per_update("plain", 1), 4),
            "topk_int8_gap_pts": round(100 * (mean["plain"] - mean["topk_int8"]), 2),
            "topk_int8_plaintext_ratio": round(per_update("topk_int8", 2) / per_update("plain", 2), 4),
            "topk_int8_tensor_bytes_ratio": round(per_update("topk_int8", 3) / per_update("plain", 3), 4),
            "topk_int8_stored_bytes": round(per_update("topk_int8", 1)), "plain_stored_bytes": round(per_update("plain", 1)),
            "topk_int8_chain_acc": round(mean["topk_int8"], 4), "plain_chain_acc": round(mean["plain"], 4),
            "topk_int8_acc_runs": [round(run[0], 4) for run in outcomes["topk_int8"]],
            "plain_acc_runs": [round(run[0], 4) for run in outcomes["plain"]],
            "topk_chain_model": "mlp", "topk_chain_rounds": rounds}


def robust_and_compressed_chain() -> dict:
    """The chain path's figures (``--only-chain-robustness``): robust aggregation and compression on chain."""
    return {**measure_byzantine_chain(), **measure_topk_chain()}


if __name__ == "__main__":
    main()
