"""Client models, aggregation results, the aggregator base class and input validation.

Every aggregator validates its input the same way (``Aggregator.aggregate``)
and then sees the clients in one canonical order, sorted by ``client_id``, so
that the aggregate does not depend on the order in which updates arrived.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

Tensor = torch.Tensor
StateDict = Mapping[str, Tensor]
ClientWeights = Mapping[str, float] | Sequence[float]

# Dtypes an aggregate can be computed for. Integer buffers (e.g. BatchNorm's
# num_batches_tracked) are averaged in float64 and rounded back.
SUPPORTED_DTYPES = frozenset(
    {
        torch.float64,
        torch.float32,
        torch.float16,
        torch.bfloat16,
        torch.int64,
        torch.int32,
        torch.int16,
        torch.int8,
        torch.uint8,
    }
)


#: The one client :meth:`Aggregator.aggregate_mean` hands a sum-based rule: the clients' weighted mean.
WEIGHTED_MEAN = "weighted-mean"


class AggregationError(ValueError):
    """Input an aggregator cannot combine; the message names the offending client."""


@dataclass(frozen=True)
class ClientModel:
    """One client's model after local training: a state dict plus what it trained on."""

    client_id: str
    parameters: Mapping[str, Tensor]
    data_samples: int
    training_loss: float | None = None
    training_accuracy: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.client_id, str) or not self.client_id:
            raise AggregationError(f"client_id must be a non-empty string, got {self.client_id!r}")
        who = f"client {self.client_id!r}"
        if not isinstance(self.parameters, Mapping):
            raise AggregationError(
                f"{who}: parameters must be a mapping of names to tensors, got {type(self.parameters).__name__}"
            )
        if not self.parameters:
            raise AggregationError(f"{who}: parameters are empty")
        for name, value in self.parameters.items():
            if not isinstance(value, Tensor):
                raise AggregationError(
                    f"{who}: parameter {name!r} is a {type(value).__name__}, expected a torch.Tensor"
                )
        if isinstance(self.data_samples, bool) or not isinstance(self.data_samples, numbers.Integral):
            raise AggregationError(f"{who}: data_samples must be an int, got {self.data_samples!r}")
        object.__setattr__(self, "data_samples", int(self.data_samples))
        if self.data_samples <= 0:
            raise AggregationError(f"{who}: data_samples must be positive, got {self.data_samples}")
        for metric in ("training_loss", "training_accuracy"):
            value = getattr(self, metric)
            if value is not None and not math.isfinite(value):
                raise AggregationError(f"{who}: {metric} must be finite, got {value!r}")


@dataclass(frozen=True)
class AggregationResult:
    """The aggregated state dict and how it was obtained."""

    parameters: dict[str, Tensor]
    aggregation_method: str
    participating_clients: list[str]
    client_weights: dict[str, float]
    metadata: dict[str, Any] = field(default_factory=dict)


class Aggregator(ABC):
    """Combines client state dicts into one.

    Subclasses set ``name`` and ``default_config`` (every accepted config key
    with its default) and implement ``_aggregate``, which receives validated
    clients in canonical order and their normalised weights.
    """

    name: ClassVar[str]
    default_config: ClassVar[Mapping[str, Any]] = {}
    #: Whether the result depends on the clients only through their sample-weighted mean (FedAvg, and a
    #: server optimizer stepping on that mean): only such a rule runs under secure aggregation, which
    #: reveals the sum of the weighted updates and nothing else (:meth:`aggregate_mean`).
    sum_based: ClassVar[bool] = False

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        given = dict(config or {})
        unknown = sorted(set(given) - set(self.default_config))
        if unknown:
            allowed = ", ".join(sorted(self.default_config)) or "none"
            raise AggregationError(f"{self.name}: unknown config key(s) {unknown}; allowed: {allowed}")
        self.config: dict[str, Any] = {**self.default_config, **given}
        self._check_config()

    def _check_config(self) -> None:
        """Reject bad config values; subclasses with settings override this."""

    def aggregate(
        self,
        client_models: Sequence[ClientModel],
        client_weights: ClientWeights | None = None,
        global_model: StateDict | None = None,
    ) -> AggregationResult:
        """Validate the clients, then combine them.

        ``client_weights`` (a mapping by client id, or a sequence aligned with
        ``client_models``) replaces the default weights, which are the clients'
        sample counts. ``global_model`` is the model the clients started from;
        when given, every client must match its structure.
        """
        clients = canonical_clients(client_models)
        check_structure(clients, global_model)
        raw = explicit_weights(clients, client_models, client_weights)
        return self._aggregate(clients, raw, global_model)

    def aggregate_mean(self, mean: StateDict, total_weight: int, global_model: StateDict | None = None) -> AggregationResult:
        """Combine from the clients' sample-weighted mean model alone (``total_weight``: their summed sample
        counts), which a sum-based rule turns into exactly what :meth:`aggregate` gives on the clients
        themselves; AggregationError for any other rule."""
        require(
            self.sum_based,
            f"{self.name} needs each client's model, not only their weighted mean: it cannot run under secure "
            "aggregation",
        )
        return self.aggregate([ClientModel(WEIGHTED_MEAN, mean, total_weight)], global_model=global_model)

    def _result(
        self,
        clients: Sequence[ClientModel],
        parameters: dict[str, Tensor],
        weights: Mapping[str, float],
        settings: Mapping[str, Any],
    ) -> AggregationResult:
        """The result every built-in rule returns: common metadata plus the rule's own settings."""
        return AggregationResult(
            parameters=parameters,
            aggregation_method=self.name,
            participating_clients=[client.client_id for client in clients],
            client_weights=dict(weights),
            metadata={**base_metadata(clients), **settings},
        )

    @abstractmethod
    def _aggregate(
        self,
        clients: list[ClientModel],
        explicit: list[float] | None,
        global_model: StateDict | None,
    ) -> AggregationResult:
        """Combine validated clients (canonical order); ``explicit`` are caller-given weights."""


def require(condition: bool, message: str) -> None:
    """Raise AggregationError with ``message`` unless ``condition`` holds."""
    if not condition:
        raise AggregationError(message)


def check_number(
    value: Any,
    what: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite real number within the given bounds (open bounds exclude the end), as float."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        parts = []
        if low is not None:
            parts.append(f"{'>' if low_open else '>='} {low}")
        if high is not None:
            parts.append(f"{'<' if high_open else '<='} {high}")
        bounds = " " + " and ".join(parts) if parts else ""
        raise AggregationError(f"{what} must be a finite number{bounds}, got {value!r}")
    return float(value)


def canonical_clients(client_models: Sequence[ClientModel]) -> list[ClientModel]:
    """Clients sorted by id; rejects an empty list, non-ClientModel items and duplicate ids."""
    if isinstance(client_models, (str, bytes, Mapping)) or not isinstance(client_models, Sequence):
        raise AggregationError("client_models must be a sequence of ClientModel")
    require(len(client_models) > 0, "no client models to aggregate")
    seen: set[str] = set()
    for position, client in enumerate(client_models):
        if not isinstance(client, ClientModel):
            raise AggregationError(
                f"client_models[{position}] is a {type(client).__name__}, expected ClientModel"
            )
        require(client.client_id not in seen, f"client {client.client_id!r} appears more than once")
        seen.add(client.client_id)
    return sorted(client_models, key=lambda client: client.client_id)


def check_structure(clients: list[ClientModel], global_model: StateDict | None) -> None:
    """Every client has the reference's keys, shapes and dtypes (reference: the global model, else the first client)."""
    if global_model is not None:
        reference, origin = global_model, "the global model"
        check_state_dict(reference, "global model")
    else:
        reference, origin = clients[0].parameters, f"client {clients[0].client_id!r}"
    for name, tensor in reference.items():
        require(
            tensor.dtype in SUPPORTED_DTYPES,
            f"{origin}: parameter {name!r} has unsupported dtype {tensor.dtype}",
        )
    expected = {name: (tensor.shape, tensor.dtype) for name, tensor in reference.items()}
    # Messages are formatted only on failure: this runs for every tensor of every client.
    for client in clients:
        who = f"client {client.client_id!r}"
        parameters = client.parameters
        if parameters.keys() != reference.keys():
            missing = [name for name in reference if name not in parameters]
            require(not missing, f"{who}: missing parameter(s) {missing} (present in {origin})")
            extra = [name for name in parameters if name not in reference]
            require(not extra, f"{who}: unexpected parameter(s) {extra} (absent from {origin})")
        for name, (shape, dtype) in expected.items():
            actual = parameters[name]
            if actual.shape != shape:
                raise AggregationError(
                    f"{who}: parameter {name!r} has shape {tuple(actual.shape)}, expected {tuple(shape)} as in {origin}"
                )
            if actual.dtype != dtype:
                raise AggregationError(f"{who}: parameter {name!r} has dtype {actual.dtype}, expected {dtype} as in {origin}")
            if not actual.is_cpu:
                raise AggregationError(f"{who}: parameter {name!r} is on {actual.device}, expected cpu")


def check_state_dict(state: StateDict, what: str) -> None:
    """A non-empty mapping of names to finite CPU tensors."""
    require(isinstance(state, Mapping) and len(state) > 0, f"{what} must be a non-empty mapping of tensors")
    for name, value in state.items():
        require(isinstance(value, Tensor), f"{what}: {name!r} is a {type(value).__name__}, expected a torch.Tensor")
        require(value.device.type == "cpu", f"{what}: {name!r} is on {value.device}, expected cpu")
        require(
            not value.is_floating_point() or bool(torch.isfinite(value).all()),
            f"{what}: {name!r} contains NaN or Inf",
        )


def find_non_finite(clients: Sequence[ClientModel], name: str) -> None:
    """Raise naming the first client whose ``name`` tensor has NaN or Inf (the slow path after a failed fused check)."""
    for client in clients:
        tensor = client.parameters[name]
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise AggregationError(f"client {client.client_id!r}: parameter {name!r} contains NaN or Inf")


def explicit_weights(
    clients: list[ClientModel],
    client_models: Sequence[ClientModel],
    client_weights: ClientWeights | None,
) -> list[float] | None:
    """Caller-given weights in canonical client order, validated; None when not given."""
    if client_weights is None:
        return None
    if isinstance(client_weights, Mapping):
        ids = {client.client_id for client in clients}
        unknown = sorted(set(client_weights) - ids)
        require(not unknown, f"client_weights name unknown client(s) {unknown}")
        absent = [client.client_id for client in clients if client.client_id not in client_weights]
        require(not absent, f"client_weights has no weight for client(s) {absent}")
        by_id = dict(client_weights)
    else:
        require(
            isinstance(client_weights, Sequence) and not isinstance(client_weights, (str, bytes)),
            "client_weights must be a mapping from client id to weight or a sequence aligned with client_models",
        )
        require(
            len(client_weights) == len(client_models),
            f"client_weights has {len(client_weights)} entries for {len(client_models)} client models",
        )
        by_id = {client.client_id: weight for client, weight in zip(client_models, client_weights)}
    weights = [by_id[client.client_id] for client in clients]
    return check_weights(clients, weights)


def check_weights(clients: Sequence[ClientModel], weights: Sequence[Any]) -> list[float]:
    """Finite, non-negative, not all zero; returned as floats in the clients' order."""
    checked = [
        check_number(weight, f"client {client.client_id!r}: weight", low=0.0) for client, weight in zip(clients, weights)
    ]
    require(any(weight > 0 for weight in checked), "all client weights are zero")
    return checked


def normalise(weights: Sequence[float]) -> list[float]:
    """Weights scaled to sum to one (math.fsum: exact, order-independent total)."""
    total = math.fsum(weights)
    return [weight / total for weight in weights]


def base_metadata(clients: Sequence[ClientModel]) -> dict[str, Any]:
    """Metadata every result carries: total samples and mean reported training loss and accuracy."""
    losses = [c.training_loss for c in clients if c.training_loss is not None]
    accuracies = [c.training_accuracy for c in clients if c.training_accuracy is not None]
    return {
        "num_clients": len(clients),
        "total_samples": sum(client.data_samples for client in clients),
        "mean_training_loss": math.fsum(losses) / len(losses) if losses else None,
        "mean_training_accuracy": math.fsum(accuracies) / len(accuracies) if accuracies else None,
    }
