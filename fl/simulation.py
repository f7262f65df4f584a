"""Federated training runs in one process: hospitals, server, and the options between them.

A round is the chain path's round (:mod:`fl.round`) over an in-memory board and
store: every hospital trains from the global model (FedProx, optionally
DP-SGD); a Byzantine hospital may replace its model by a poisoned one; it
encodes its update as the chain path stores it (optionally compressed with
error feedback) and posts it; the server decodes and checks each posted
update and combines them by a named aggregator from ``fl.aggregation``, by
secure aggregation (FedAvg on masked updates, the server seeing only their
sum), or with client-level DP. The global model is scored on the common test
split after every round.

``FederatedConfig.seed`` fixes the model's initialisation and the batch order
of training without DP; DP noise, record sampling, the choice of hospitals
under client-level DP and secure aggregation's keys and masks come from the
OS, unless a test opts into ``seeded_noise`` (then the result is marked
``noise_seeded`` and reports no epsilon).
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from fl.aggregation import ClientModel, create_aggregator, sum_based_aggregators
from fl.client import HospitalClient, LocalTrainingConfig
from fl.compression import CompressionConfig
from fl.data import FederatedDataset, HospitalData
from fl.models import Evaluation, ModelKind, ModelSpec, ParameterLayout, evaluate, get_parameters, set_parameters
from fl.privacy import ClientLevelDP, ClientLevelDPConfig, DPSGDConfig, PrivacySpent, RoundPrivacy, SeededNoise
from fl.round import CoordinatorStep, HospitalStep, InMemoryBoard, InMemoryStore
from fl.secure_aggregation import FixedPointCodec, SecureSum, SessionParameters, secure_weighted_sum

@dataclass(frozen=True)
class SecureAggregationConfig:
    """Secure aggregation of the updates: ``threshold`` of the hospitals must survive each round."""

    threshold: int
    codec: FixedPointCodec = FixedPointCodec()
    dropouts_per_round: Mapping[int, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class FederatedConfig:
    """One federated run. ``byzantine_clients`` send ``global - scale * (model - global)``."""

    rounds: int = 20
    model_kind: ModelKind = "logistic"
    training: LocalTrainingConfig = LocalTrainingConfig()
    aggregator: str = "fedavg"
    aggregator_config: Mapping[str, Any] = field(default_factory=dict)
    dp: DPSGDConfig | None = None
    client_level_dp: ClientLevelDPConfig | None = None
    secure_aggregation: SecureAggregationConfig | None = None
    compression: CompressionConfig | None = None
    byzantine_clients: tuple[str, ...] = ()
    byzantine_scale: float = 10.0
    seed: int = 0
    #: Tests only: reproducible DP noise and sampling, at the price of every epsilon.
    seeded_noise: SeededNoise | None = None

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError(f"rounds must be at least 1, got {self.rounds}")
        if self.secure_aggregation is not None and self.aggregator not in sum_based_aggregators():
            raise ValueError(
                f"secure aggregation reveals only the sum of updates, which {self.aggregator!r} "
                f"cannot work from; use one of {', '.join(sum_based_aggregators())}"
            )
        if self.client_level_dp is not None and self.secure_aggregation is not None:
            raise ValueError("client-level DP and secure aggregation are not combined in this simulation")


@dataclass(frozen=True)
class RoundRecord:
    round_number: int
    participants: tuple[str, ...]
    test: Evaluation
    #: The round's updates as stored (what the chain path would put in its store).
    uploaded_bytes: int
    privacy: Mapping[str, RoundPrivacy]
    #: Under secure aggregation: whose masked input the sum holds, and who dropped after sharing keys.
    survivors: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()


@dataclass(frozen=True)
class FederatedResult:
    parameters: dict[str, torch.Tensor]
    rounds: tuple[RoundRecord, ...]
    #: Record-level (epsilon, delta) per hospital over all rounds (DP-SGD runs).
    hospital_privacy: Mapping[str, PrivacySpent]
    #: Client-level (epsilon, delta) of the whole run, when client-level DP is on.
    client_level_privacy: PrivacySpent | None

    @property
    def test_accuracy(self) -> float:
        return self.rounds[-1].test.accuracy

    @property
    def noise_seeded(self) -> bool:
        """Whether DP noise came from a seed: then no epsilon holds, and none is reported."""
        spent = [*self.hospital_privacy.values(), *([self.client_level_privacy] if self.client_level_privacy else [])]
        return any(privacy.noise_seeded for privacy in spent)


def run_federated(dataset: FederatedDataset, config: FederatedConfig) -> FederatedResult:
    """Train for ``config.rounds`` rounds and score the global model after each one."""
    names = [hospital.name for hospital in dataset.hospitals]
    unknown = sorted(set(config.byzantine_clients) - set(names))
    if unknown:
        raise ValueError(f"Byzantine clients {unknown} are not among the hospitals {names}")
    spec = ModelSpec(config.model_kind, dataset.num_features)
    model = spec.build(config.seed)
    global_parameters = get_parameters(model)
    clients = [
        HospitalClient(hospital, spec, config.training, config.dp, seed=config.seed, seeded_noise=config.seeded_noise)
        for hospital in dataset.hospitals
    ]
    hospitals = {
        client.client_id: HospitalStep(client.client_id, client.train, config.compression,
                                       config.byzantine_scale if client.client_id in config.byzantine_clients else None)
        for client in clients
    }
    client_dp = (
        ClientLevelDP(config.client_level_dp, seeded_noise=config.seeded_noise) if config.client_level_dp else None
    )
    aggregator = create_aggregator(config.aggregator, dict(config.aggregator_config))
    coordinator = CoordinatorStep(aggregator, config.compression)
    board, store = InMemoryBoard(), InMemoryStore()
    records = []
    for round_number in range(1, config.rounds + 1):
        survivors = dropped = ()
        drawn = set(names if client_dp is None else client_dp.sample(names, round_number))
        participants = [client for client in clients if client.client_id in drawn]
        posted = [hospitals[client.client_id].step(round_number, global_parameters, board, store)
                  for client in participants]
        if config.secure_aggregation is not None or client_dp is not None:
            screening = coordinator.screen(round_number, global_parameters, board, store)
            if screening.rejected:
                raise ValueError(f"round {round_number}: malformed updates {screening.rejected}")
            if config.secure_aggregation is not None:
                global_parameters, secure_sum = _secure_aggregate(
                    coordinator, global_parameters, screening.accepted, config.secure_aggregation, round_number
                )
                survivors, dropped = secure_sum.survivors, secure_sum.dropped
            else:
                global_parameters = client_dp.aggregate(round_number, global_parameters, screening.accepted)
        else:
            global_parameters = coordinator.step(round_number, global_parameters, board, store).parameters
        set_parameters(model, global_parameters)
        records.append(
            RoundRecord(
                round_number=round_number,
                participants=tuple(client.client_id for client in participants),
                test=evaluate(model, dataset.test),
                uploaded_bytes=sum(store.size(update.ref) for update in posted),
                privacy={c.client_id: c.last_round_privacy for c in participants if c.last_round_privacy},
                survivors=survivors,
                dropped=dropped,
            )
        )
    return FederatedResult(
        parameters=global_parameters,
        rounds=tuple(records),
        hospital_privacy={c.client_id: c.ledger.total for c in clients if c.ledger is not None},
        client_level_privacy=client_dp.ledger.total if client_dp is not None else None,
    )


def _secure_aggregate(
    coordinator: CoordinatorStep,
    global_parameters: Mapping[str, torch.Tensor],
    uploads: Sequence[ClientModel],
    config: SecureAggregationConfig,
    round_number: int,
) -> tuple[dict[str, torch.Tensor], SecureSum]:
    """The coordinator's (sum-based) aggregator on the updates' mean weighted by sample counts, computed
    from the masked updates' sum alone."""
    layout = ParameterLayout.of(global_parameters)
    base = layout.flatten(global_parameters)
    session = SessionParameters(
        session_id=os.urandom(16),
        threshold=config.threshold,
        vector_length=layout.size,
        codec=config.codec,
    )
    inputs = {
        upload.client_id: ((layout.flatten(upload.parameters) - base).numpy(), upload.data_samples)
        for upload in uploads
    }
    total = secure_weighted_sum(inputs, session, config.dropouts_per_round.get(round_number, ()))
    return coordinator.aggregate_secure(round_number, global_parameters, total).parameters, total


def train_centralized(
    dataset: FederatedDataset,
    epochs: int,
    training: LocalTrainingConfig = LocalTrainingConfig(),
    model_kind: ModelKind = "logistic",
    seed: int = 0,
) -> tuple[dict[str, torch.Tensor], Evaluation]:
    """The baseline: the same model trained on all hospitals' records pooled, scored on the test split."""
    spec = ModelSpec(model_kind, dataset.num_features)
    pooled = HospitalClient(
        HospitalData("centralized", dataset.train),
        spec,
        LocalTrainingConfig(epochs=epochs, batch_size=training.batch_size, learning_rate=training.learning_rate),
        seed=seed,
    )
    model = spec.build(seed)
    trained = pooled.train(get_parameters(model), round_number=1)
    set_parameters(model, trained.parameters)
    return trained.parameters, evaluate(model, dataset.test)
