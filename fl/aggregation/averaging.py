"""Weighted-average strategies: FedAvg, FedProx (server side) and metric-weighted averaging."""

from __future__ import annotations

import math
from typing import Any

from fl.aggregation.base import (
    AggregationError,
    AggregationResult,
    Aggregator,
    ClientModel,
    StateDict,
    Tensor,
    check_number,
    normalise,
    require,
)
from fl.aggregation.kernels import reduce_chunks, weighted_sum_reducer


def by_id(clients: list[ClientModel], weights: list[float]) -> dict[str, float]:
    return {client.client_id: weight for client, weight in zip(clients, weights)}


def weighted_average(clients: list[ClientModel], weights: list[float]) -> dict[str, Tensor]:
    """sum_i weights[i] * client_i, chunked and in canonical order; weights must be normalised."""
    return reduce_chunks(clients, weighted_sum_reducer(weights))


class FedAvgAggregator(Aggregator):
    """FedAvg (McMahan et al.): the average of client models weighted by their sample counts."""

    name = "fedavg"
    sum_based = True

    def _weights(self, clients: list[ClientModel], explicit: list[float] | None) -> list[float]:
        return normalise(explicit if explicit is not None else [c.data_samples for c in clients])

    def _settings(self) -> dict[str, Any]:
        return {}

    def _aggregate(
        self, clients: list[ClientModel], explicit: list[float] | None, global_model: StateDict | None
    ) -> AggregationResult:
        weights = self._weights(clients, explicit)
        return self._result(clients, weighted_average(clients, weights), by_id(clients, weights), self._settings())


class FedProxAggregator(FedAvgAggregator):
    """FedProx (Li et al.): the server averages like FedAvg.

    The proximal term ``mu/2 * ||w - w_global||^2`` belongs to client training;
    ``mu`` is kept here so the round's record states the setting clients used.
    """

    name = "fedprox"
    default_config = {"mu": 0.01}

    def _check_config(self) -> None:
        check_number(self.config["mu"], "fedprox: mu", low=0.0)

    def _settings(self) -> dict[str, Any]:
        return {"mu": float(self.config["mu"])}


class WeightedAggregator(FedAvgAggregator):
    """Average weighted by a client metric: softmax of accuracies, inverse loss, or sample count.

    Every weight is then raised to at least ``min_weight`` and the weights are
    renormalised, so no client is silenced entirely. Explicit ``client_weights``
    replace the metric-derived weights (the floor still applies).
    """

    name = "weighted"
    sum_based = False  # its weights come from each client's metrics, which no sum reveals
    default_config = {"weight_strategy": "accuracy", "min_weight": 0.01}
    strategies = ("accuracy", "loss", "data_size")

    def _check_config(self) -> None:
        strategy, floor = self.config["weight_strategy"], self.config["min_weight"]
        require(
            strategy in self.strategies,
            f"weighted: weight_strategy must be one of {', '.join(self.strategies)}, got {strategy!r}",
        )
        check_number(floor, "weighted: min_weight", low=0.0, high=1.0)

    def _weights(self, clients: list[ClientModel], explicit: list[float] | None) -> list[float]:
        raw = normalise(explicit if explicit is not None else self._metric_weights(clients))
        floor = float(self.config["min_weight"])
        return normalise([max(weight, floor) for weight in raw])

    def _metric_weights(self, clients: list[ClientModel]) -> list[float]:
        strategy = self.config["weight_strategy"]
        if strategy == "data_size":
            return [float(client.data_samples) for client in clients]
        metric = "training_accuracy" if strategy == "accuracy" else "training_loss"
        values = []
        for client in clients:
            value = getattr(client, metric)
            if value is None:
                raise AggregationError(
                    f"client {client.client_id!r}: weight_strategy {strategy!r} needs {metric}, which it did not report"
                )
            values.append(value)
        if strategy == "accuracy":
            # Softmax, shifted by the maximum so exp cannot overflow.
            top = max(values)
            return [math.exp(value - top) for value in values]
        for client, loss in zip(clients, values):
            require(loss > 0, f"client {client.client_id!r}: training_loss must be positive for inverse-loss weights, got {loss!r}")
        return [1.0 / loss for loss in values]

    def _settings(self) -> dict[str, Any]:
        return {"weight_strategy": self.config["weight_strategy"], "min_weight": float(self.config["min_weight"])}
