"""Byzantine-robust rules: coordinate-wise trimmed mean and median, Krum and multi-Krum.

They are unweighted on purpose: a sample count is the client's own claim, and
weighting by it would let one attacker outvote the rest. Passing
``client_weights`` to them is an error.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any

from fl.aggregation.averaging import weighted_average
from fl.aggregation.base import (
    AggregationError,
    AggregationResult,
    Aggregator,
    ClientModel,
    StateDict,
    check_number,
    find_non_finite,
    require,
)
from fl.aggregation.kernels import (
    median_reducer,
    pairwise_squared_distances,
    reduce_chunks,
    trimmed_mean_reducer,
)


class RobustAggregator(Aggregator):
    """Common frame of the unweighted rules: reject weights, report every client's weight."""

    def _aggregate(
        self, clients: list[ClientModel], explicit: list[float] | None, global_model: StateDict | None
    ) -> AggregationResult:
        if explicit is not None:
            raise AggregationError(f"{self.name} is unweighted by design; client_weights are not accepted")
        return self._result(clients, *self._combine(clients))

    @abstractmethod
    def _combine(self, clients: list[ClientModel]) -> tuple[dict, dict[str, float], dict[str, Any]]:
        """The aggregate, each client's effective weight, and the rule's metadata."""


def uniform(clients: list[ClientModel]) -> dict[str, float]:
    return {client.client_id: 1.0 / len(clients) for client in clients}


class TrimmedMeanAggregator(RobustAggregator):
    """Coordinate-wise trimmed mean: per coordinate, drop ``floor(trim_ratio * n)`` values at each end and average the rest."""

    name = "trimmed_mean"
    default_config = {"trim_ratio": 0.1}

    def _check_config(self) -> None:
        check_number(self.config["trim_ratio"], "trimmed_mean: trim_ratio", low=0.0, high=0.5, high_open=True)

    def _combine(self, clients):
        ratio = float(self.config["trim_ratio"])
        # Rounded first so that a product like 0.29 * 100 = 28.999999999999996 trims 29, as the ratio says.
        trim = math.floor(round(ratio * len(clients), 9))
        if trim == 0 and ratio > 0:
            raise AggregationError(
                f"trimmed_mean: trim_ratio {ratio} trims no client out of {len(clients)}; "
                f"it needs at least {math.ceil(1 / ratio)} clients (or a larger trim_ratio)"
            )
        parameters = reduce_chunks(clients, trimmed_mean_reducer(trim))
        settings = {
            "trim_ratio": ratio,
            "trimmed_per_side": trim,
            "trimmed_clients": 2 * trim,
            "effective_clients": len(clients) - 2 * trim,
        }
        return parameters, uniform(clients), settings


class MedianAggregator(RobustAggregator):
    """Coordinate-wise median (the mean of the two middle values for an even number of clients)."""

    name = "median"

    def _combine(self, clients):
        parameters = reduce_chunks(clients, median_reducer(len(clients)))
        return parameters, uniform(clients), {"effective_clients": 2 - len(clients) % 2}


class KrumAggregator(RobustAggregator):
    """Krum and multi-Krum (Blanchard et al. 2017).

    Each client's score is the sum of squared distances to its ``n - f - 2``
    nearest other clients; the ``m`` lowest-scoring clients (ties broken by
    client id) are averaged with equal weight. Needs ``n >= 2f + 3`` and
    ``m <= n - f``.
    """

    name = "krum"
    default_config = {"f": 1, "m": 1}

    def _check_config(self) -> None:
        for key, low in (("f", 0), ("m", 1)):
            value = self.config[key]
            require(
                isinstance(value, int) and not isinstance(value, bool) and value >= low,
                f"krum: {key} must be an integer >= {low}, got {value!r}",
            )

    def _combine(self, clients):
        count, byzantine, selected_count = len(clients), self.config["f"], self.config["m"]
        require(
            count >= 2 * byzantine + 3,
            f"krum: f={byzantine} needs at least {2 * byzantine + 3} clients (n >= 2f + 3), got {count}",
        )
        require(
            selected_count <= count - byzantine,
            f"krum: m={selected_count} exceeds n - f = {count - byzantine}",
        )
        distances = pairwise_squared_distances([client.parameters for client in clients])
        if not all(math.isfinite(value) for row in distances for value in row):
            for name in clients[0].parameters:
                find_non_finite(clients, name)
            raise AggregationError("krum: squared distances between clients overflow float64")
        neighbours = count - byzantine - 2
        scores = {
            client.client_id: math.fsum(sorted(row[:index] + row[index + 1 :])[:neighbours])
            for index, (client, row) in enumerate(zip(clients, distances))
        }
        ranked = sorted(clients, key=lambda client: (scores[client.client_id], client.client_id))
        chosen = sorted(ranked[:selected_count], key=lambda client: client.client_id)
        parameters = weighted_average(chosen, [1.0 / selected_count] * selected_count)
        chosen_ids = {client.client_id for client in chosen}
        weights = {
            client.client_id: (1.0 / selected_count if client.client_id in chosen_ids else 0.0) for client in clients
        }
        settings = {
            "f": byzantine,
            "m": selected_count,
            "selected_clients": [client.client_id for client in chosen],
            "krum_scores": scores,
        }
        return parameters, weights, settings
