"""Aggregation of client models into a global model.

Strategies by name (``create_aggregator``): fedavg, fedprox, fedadam,
weighted, trimmed_mean, median, krum; ``register_aggregator`` adds your own.
Results are bit-identical whatever order the client models arrive in.
"""

from fl.aggregation.base import AggregationError, AggregationResult, Aggregator, ClientModel
from fl.aggregation.quality import AggregationQuality, evaluate_aggregation_quality
from fl.aggregation.registry import (
    aggregate_models,
    available_aggregators,
    create_aggregator,
    register_aggregator,
    sum_based_aggregators,
)

__all__ = [
    "AggregationError",
    "AggregationQuality",
    "AggregationResult",
    "Aggregator",
    "ClientModel",
    "aggregate_models",
    "available_aggregators",
    "create_aggregator",
    "evaluate_aggregation_quality",
    "register_aggregator",
    "sum_based_aggregators",
]
