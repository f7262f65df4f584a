"""Federated training runs in one process: hospitals, server, and the options between them.

A round: every hospital trains from the global model (FedProx, optionally
DP-SGD); a Byzantine hospital may replace its model by a poisoned one;
uploads may be compressed with error feedback; the server combines them by
a named aggregator from ``fl.aggregation``, by secure aggregation (FedAvg on
masked updates, the server seeing only their sum), or with client-level DP.
The global model is scored on the common test split after every round.

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

from fl.aggregation import Aggregator, ClientModel, create_aggregator, sum_based_aggregators
from fl.client import HospitalClient, LocalTrainingConfig
from fl.compression import CompressionConfig, ErrorFeedbackCompressor, compressed_size, decompress
from fl.data import FederatedDataset, HospitalData
from fl.models import Evaluation, ModelKind, ModelSpec, ParameterLayout, evaluate, get_parameters, set_parameters
from fl.privacy import ClientLevelDP, ClientLevelDPConfig, DPSGDConfig, PrivacySpent, RoundPrivacy, SeededNoise
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


def poison(global_parameters: Mapping[str, torch.Tensor], model: ClientModel, scale: float) -> ClientModel:
    """The sign-flipped, scaled model a Byzantine client sends: ``global - scale * (model - global)``."""
    return ClientModel(
        client_id=model.client_id,
        parameters={
            name: tensor - scale * (model.parameters[name] - tensor)
            for name, tensor in global_parameters.items()
        },
        data_samples=model.data_samples,
        training_loss=model.training_loss,
        training_accuracy=model.training_accuracy,
    )


def _update_bytes(parameters: Mapping[str, torch.Tensor]) -> int:
    return sum(tensor.numel() * tensor.element_size() for tensor in parameters.values())


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
    compressors = (
        {name: ErrorFeedbackCompressor(config.compression) for name in names}
        if config.compression is not None else {}
    )
    client_dp = (
        ClientLevelDP(config.client_level_dp, seeded_noise=config.seeded_noise) if config.client_level_dp else None
    )
    aggregator = create_aggregator(config.aggregator, dict(config.aggregator_config))
    records = []
    for round_number in range(1, config.rounds + 1):
        uploads = []
        uploaded_bytes = 0
        survivors = dropped = ()
        drawn = set(names if client_dp is None else client_dp.sample(names, round_number))
        participants = [client for client in clients if client.client_id in drawn]
        for client in participants:
            trained = client.train(global_parameters, round_number)
            if client.client_id in config.byzantine_clients:
                trained = poison(global_parameters, trained, config.byzantine_scale)
            if compressors:
                trained, sent = _compress_upload(global_parameters, trained, compressors[client.client_id])
            else:
                sent = _update_bytes(trained.parameters)
            uploaded_bytes += sent
            uploads.append(trained)
        if config.secure_aggregation is not None:
            global_parameters, secure_sum = _secure_aggregate(
                aggregator, global_parameters, uploads, config.secure_aggregation, round_number
            )
            survivors, dropped = secure_sum.survivors, secure_sum.dropped
        elif client_dp is not None:
            global_parameters = client_dp.aggregate(round_number, global_parameters, uploads)
        else:
            global_parameters = aggregator.aggregate(uploads, global_model=global_parameters).parameters
        set_parameters(model, global_parameters)
        records.append(
            RoundRecord(
                round_number=round_number,
                participants=tuple(client.client_id for client in participants),
                test=evaluate(model, dataset.test),
                uploaded_bytes=uploaded_bytes,
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


def _compress_upload(
    global_parameters: Mapping[str, torch.Tensor], trained: ClientModel, compressor: ErrorFeedbackCompressor
) -> tuple[ClientModel, int]:
    """What the server rebuilds from the compressed update, and the bytes it received."""
    update = {name: trained.parameters[name] - tensor for name, tensor in global_parameters.items()}
    compressed = compressor.compress(update)
    received = decompress(compressed)
    rebuilt = ClientModel(
        client_id=trained.client_id,
        parameters={name: tensor + received[name].to(tensor.dtype) for name, tensor in global_parameters.items()},
        data_samples=trained.data_samples,
        training_loss=trained.training_loss,
        training_accuracy=trained.training_accuracy,
    )
    return rebuilt, compressed_size(compressed)


def _secure_aggregate(
    aggregator: Aggregator,
    global_parameters: Mapping[str, torch.Tensor],
    uploads: Sequence[ClientModel],
    config: SecureAggregationConfig,
    round_number: int,
) -> tuple[dict[str, torch.Tensor], SecureSum]:
    """The sum-based ``aggregator`` on the updates' mean weighted by sample counts, computed from the
    masked updates' sum alone."""
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
    mean = layout.unflatten(base + torch.from_numpy(total.mean))
    return aggregator.aggregate_mean(mean, total.total_weight, global_model=global_parameters).parameters, total


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
