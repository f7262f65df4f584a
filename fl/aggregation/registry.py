"""Aggregators by name: create, list, register, and a one-call helper."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fl.aggregation.adaptive import FedAdamAggregator
from fl.aggregation.averaging import FedAvgAggregator, FedProxAggregator, WeightedAggregator
from fl.aggregation.base import AggregationError, AggregationResult, Aggregator, ClientModel, ClientWeights, StateDict
from fl.aggregation.robust import KrumAggregator, MedianAggregator, TrimmedMeanAggregator

_REGISTRY: dict[str, type[Aggregator]] = {}


def register_aggregator(name: str, aggregator_class: type[Aggregator], *, replace: bool = False) -> None:
    """Make ``aggregator_class`` (a subclass of Aggregator) available as ``name``; refuses to shadow a name unless ``replace``."""
    if not isinstance(name, str) or not name:
        raise AggregationError(f"aggregator name must be a non-empty string, got {name!r}")
    if not (isinstance(aggregator_class, type) and issubclass(aggregator_class, Aggregator)):
        raise TypeError(f"{aggregator_class!r} is not a subclass of fl.aggregation.Aggregator")
    if name in _REGISTRY and not replace:
        raise AggregationError(f"aggregator {name!r} is already registered (pass replace=True to override)")
    _REGISTRY[name] = aggregator_class


def available_aggregators() -> list[str]:
    """Registered aggregator names, sorted."""
    return sorted(_REGISTRY)


def sum_based_aggregators() -> list[str]:
    """Names of the registered aggregators that run under secure aggregation (``Aggregator.sum_based``), sorted."""
    return [name for name in available_aggregators() if _REGISTRY[name].sum_based]


def create_aggregator(name: str, config: Mapping[str, Any] | None = None) -> Aggregator:
    """A new aggregator of the registered kind ``name``, configured by ``config``."""
    try:
        aggregator_class = _REGISTRY[name]
    except (KeyError, TypeError):
        raise AggregationError(
            f"unknown aggregator {name!r}; available: {', '.join(available_aggregators())}"
        ) from None
    return aggregator_class(config)


def aggregate_models(
    client_models: Sequence[ClientModel],
    aggregator_type: str = "fedavg",
    aggregator_config: Mapping[str, Any] | None = None,
    client_weights: ClientWeights | None = None,
    global_model: StateDict | None = None,
) -> AggregationResult:
    """Aggregate once with a fresh aggregator (stateful ones such as fedadam start from step 0)."""
    aggregator = create_aggregator(aggregator_type, aggregator_config)
    return aggregator.aggregate(client_models, client_weights=client_weights, global_model=global_model)


for _builtin in (
    FedAvgAggregator,
    FedProxAggregator,
    FedAdamAggregator,
    WeightedAggregator,
    TrimmedMeanAggregator,
    MedianAggregator,
    KrumAggregator,
):
    register_aggregator(_builtin.name, _builtin)
