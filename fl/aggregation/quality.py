"""How far clients sit from an aggregate: evaluate_aggregation_quality."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from fl.aggregation.base import (
    AggregationError,
    ClientModel,
    StateDict,
    canonical_clients,
    check_structure,
    find_non_finite,
)


@dataclass(frozen=True)
class AggregationQuality:
    """Spread of the clients around the global model.

    A client's distance is the mean, over parameter tensors, of the L2 norm of
    (global - client); the figures are over clients (population std).
    Accuracy and loss figures are None unless every client reported them.
    """

    mean_distance: float
    std_distance: float
    max_distance: float
    min_distance: float
    mean_client_accuracy: float | None
    std_client_accuracy: float | None
    mean_client_loss: float | None
    std_client_loss: float | None

    def as_dict(self) -> dict[str, float | None]:
        return asdict(self)


def evaluate_aggregation_quality(global_model: StateDict, client_models: Sequence[ClientModel]) -> AggregationQuality:
    """Distances of every client from ``global_model`` and the clients' reported metrics."""
    clients = canonical_clients(client_models)
    check_structure(clients, global_model)
    distances = [client_distance(global_model, client) for client in clients]
    for client, distance in zip(clients, distances):
        if not math.isfinite(distance):
            for name in global_model:
                find_non_finite([client], name)
            raise AggregationError(f"client {client.client_id!r}: its distance from the global model overflows float64")
    accuracies = [client.training_accuracy for client in clients]
    losses = [client.training_loss for client in clients]
    accuracy_mean, accuracy_std = mean_std(accuracies)
    loss_mean, loss_std = mean_std(losses)
    return AggregationQuality(
        mean_distance=statistics.fmean(distances),
        std_distance=statistics.pstdev(distances),
        max_distance=max(distances),
        min_distance=min(distances),
        mean_client_accuracy=accuracy_mean,
        std_client_accuracy=accuracy_std,
        mean_client_loss=loss_mean,
        std_client_loss=loss_std,
    )


def client_distance(global_model: StateDict, client: ClientModel) -> float:
    norms = [
        torch.linalg.vector_norm(tensor.detach().double() - client.parameters[name].detach().double()).item()
        for name, tensor in global_model.items()
    ]
    return math.fsum(norms) / len(norms)


def mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    if any(value is None for value in values):
        return None, None
    return statistics.fmean(values), statistics.pstdev(values)
