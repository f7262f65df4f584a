"""Small PyTorch classifiers for tabular medical data, deterministic given a seed.

Both output one logit per patient (binary diagnosis) and use only layers
opacus can compute per-sample gradients for.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn import functional

from fl.data import Dataset

ModelKind = Literal["logistic", "mlp"]
MLP_HIDDEN_UNITS = 16


@dataclass(frozen=True)
class ModelSpec:
    """What a hospital needs to rebuild the consortium's model: its kind and input width."""

    kind: ModelKind
    num_features: int

    def __post_init__(self) -> None:
        if self.kind not in ("logistic", "mlp"):
            raise ValueError(f"unknown model kind {self.kind!r}; use 'logistic' or 'mlp'")
        if self.num_features < 1:
            raise ValueError(f"num_features must be positive, got {self.num_features}")

    def build(self, seed: int) -> nn.Module:
        """A freshly initialised model; the same seed always gives the same weights."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if self.kind == "logistic":
                return nn.Sequential(nn.Linear(self.num_features, 1))
            return nn.Sequential(
                nn.Linear(self.num_features, MLP_HIDDEN_UNITS),
                nn.ReLU(),
                nn.Linear(MLP_HIDDEN_UNITS, 1),
            )


@dataclass(frozen=True)
class Evaluation:
    loss: float
    accuracy: float


def get_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the model's state dict (safe to keep after further training)."""
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def set_parameters(model: nn.Module, parameters: Mapping[str, torch.Tensor]) -> None:
    """Load ``parameters`` into ``model``; names and shapes must match exactly."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(parameters))
    extra = sorted(set(parameters) - set(expected))
    if missing or extra:
        raise ValueError(f"parameter names differ from the model: missing {missing}, extra {extra}")
    for name, tensor in expected.items():
        if tuple(parameters[name].shape) != tuple(tensor.shape):
            raise ValueError(
                f"parameter {name!r} has shape {tuple(parameters[name].shape)}, "
                f"the model expects {tuple(tensor.shape)}"
            )
    model.load_state_dict({name: parameters[name].to(tensor.dtype) for name, tensor in expected.items()})


def logits(model: nn.Module, features: torch.Tensor) -> torch.Tensor:
    return model(features).squeeze(-1)


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset) -> Evaluation:
    """Mean binary cross-entropy and accuracy (threshold 0.5) on ``data``."""
    scores = logits(model, data.features)
    loss = functional.binary_cross_entropy_with_logits(scores, data.labels)
    accuracy = ((scores > 0).float() == data.labels).float().mean()
    return Evaluation(loss=float(loss), accuracy=float(accuracy))


@dataclass(frozen=True)
class ParameterLayout:
    """How a state dict maps to one flat vector: names in sorted order, with shapes and dtypes."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[torch.dtype, ...]

    @classmethod
    def of(cls, parameters: Mapping[str, torch.Tensor]) -> ParameterLayout:
        names = tuple(sorted(parameters))
        return cls(
            names=names,
            shapes=tuple(tuple(parameters[name].shape) for name in names),
            dtypes=tuple(parameters[name].dtype for name in names),
        )

    @property
    def size(self) -> int:
        return sum(math.prod(shape) for shape in self.shapes)

    def flatten(self, parameters: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """All tensors as one float64 vector in this layout's order."""
        if set(parameters) != set(self.names):
            raise ValueError(
                f"parameter names {sorted(parameters)} differ from the layout's {list(self.names)}"
            )
        for name, shape in zip(self.names, self.shapes):
            if tuple(parameters[name].shape) != shape:
                raise ValueError(
                    f"parameter {name!r} has shape {tuple(parameters[name].shape)}, expected {shape}"
                )
        return torch.cat([parameters[name].detach().double().reshape(-1) for name in self.names])

    def unflatten(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """The state dict a flat vector stands for (each tensor in its original dtype)."""
        if vector.shape != (self.size,):
            raise ValueError(f"expected a vector of {self.size} values, got shape {tuple(vector.shape)}")
        pieces = vector.split([math.prod(shape) for shape in self.shapes])
        return {
            name: piece.reshape(shape).to(dtype)
            for name, shape, dtype, piece in zip(self.names, self.shapes, self.dtypes, pieces)
        }
