"""The study's model: a built-in (logistic, MLP, a small CNN) or the consortium's own, by entry point.

A :class:`ModelSpec` says what every node must rebuild: the builder (a built-in name or an
importable ``package.module:build`` called with the spec's keyword arguments), the input shape,
the task (binary: one logit; multi-class: K logits; regression: one value) and, once the study is
created, the digest of the model's parameter layout (:func:`fl.artifacts.layout_digest`). A node
builds a model only through :meth:`ModelSpec.build`, which imports a builder only if the node's own
allowlist names it and refuses a model whose layout is not the study's. The built-ins use only
layers opacus can compute per-sample gradients for.
"""
from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional

from fl.data import Dataset
from fl.entry_points import EntryPointError, is_entry_point, load_entry_point

ModelKind = Literal["logistic", "mlp", "cnn"]
BUILTIN_MODELS: tuple[str, ...] = ("logistic", "mlp", "cnn")
Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[str, ...] = ("binary", "multiclass", "regression")
MLP_HIDDEN_UNITS = 16
CNN_CHANNELS = (8, 16)


class ModelLayoutMismatch(ValueError):
    """The model a node built is not the architecture the study committed to."""


@dataclass(frozen=True)
class ModelSpec:
    """What a node needs to rebuild the consortium's model.

    ``kind``: ``logistic``, ``mlp``, ``cnn`` or an entry point ``package.module:build``;
    ``num_features``: a table's width (``input_shape`` is then ``(num_features,)``);
    ``input_shape``: one example's shape, e.g. ``(channels, height, width)`` for ``cnn``;
    ``task`` and ``classes`` (K, multi-class only); ``options``: the entry point's keyword arguments;
    ``layout``: the hex digest of the parameter layout the study committed to (None until created).
    """

    kind: str
    num_features: int = 0
    input_shape: tuple[int, ...] = ()
    task: Task = "binary"
    classes: int = 2
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    layout: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in BUILTIN_MODELS and not is_entry_point(self.kind):
            raise ValueError(f"unknown model kind {self.kind!r}; use one of {', '.join(BUILTIN_MODELS)} or an "
                             "entry point package.module:build")
        shape = tuple(self.input_shape) or ((self.num_features,) if self.num_features else ())
        if not shape or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in shape):
            raise ValueError(f"num_features must be positive, got {self.num_features}" if not self.input_shape
                             else f"input_shape must be positive sizes, got {self.input_shape}")
        if self.num_features not in (0, math.prod(shape)):
            raise ValueError(f"num_features {self.num_features} is not the input shape's {math.prod(shape)}")
        object.__setattr__(self, "input_shape", shape)
        object.__setattr__(self, "num_features", math.prod(shape))
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; use one of {', '.join(TASKS)}")
        if self.task == "multiclass" and (isinstance(self.classes, bool) or not isinstance(self.classes, int)
                                          or self.classes < 2):
            raise ValueError(f"a multi-class task needs at least 2 classes, got {self.classes!r}")
        if self.kind == "cnn" and len(shape) != 3:
            raise ValueError(f"the cnn model takes (channels, height, width) images, not input shape {shape}")
        if not isinstance(self.options, Mapping) or not all(isinstance(key, str) for key in self.options):
            raise ValueError("model options must map argument names to values")
        if self.options and self.kind in BUILTIN_MODELS:
            raise ValueError(f"the built-in {self.kind} model takes no options")
        object.__setattr__(self, "options", dict(self.options))
        if self.layout is not None and not (isinstance(self.layout, str) and len(self.layout) == 64
                                            and all(c in "0123456789abcdef" for c in self.layout)):
            raise ValueError(f"a layout digest is 64 lowercase hex characters, got {self.layout!r}")

    @property
    def outputs(self) -> int:
        """The model's output width: K logits for multi-class, else one."""
        return self.classes if self.task == "multiclass" else 1

    def build(self, seed: int, allowed: Collection[str] = ()) -> nn.Module:
        """A freshly initialised model; the same seed always gives the same weights.

        An entry point is imported only if ``allowed`` (the node's allowlist) names it; with a
        ``layout``, a model of any other parameter layout is refused (:class:`ModelLayoutMismatch`).
        """
        builder = None if self.kind in BUILTIN_MODELS else load_entry_point(self.kind, allowed, "model")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = self._builtin() if builder is None else builder(**self.options)
        if not isinstance(model, nn.Module):
            raise EntryPointError(f"model {self.kind} built a {type(model).__name__}, not a torch.nn.Module")
        self.check_layout(model.state_dict())
        return model

    def check_layout(self, parameters: Mapping[str, torch.Tensor]) -> None:
        """Refuse ``parameters`` unless their layout digest is the study's (when it has one)."""
        from fl.artifacts import layout_digest

        if self.layout is None:
            return
        digest = layout_digest(parameters)
        if digest != self.layout:
            raise ModelLayoutMismatch(f"model {self.kind} has parameter layout {digest[:16]}..., the study's is "
                                      f"{self.layout[:16]}...: not the architecture the study trains")

    def _builtin(self) -> nn.Module:
        width, out = self.num_features, self.outputs
        flatten = [nn.Flatten()] if len(self.input_shape) > 1 else []
        if self.kind == "logistic":
            return nn.Sequential(*flatten, nn.Linear(width, out))
        if self.kind == "mlp":
            return nn.Sequential(*flatten, nn.Linear(width, MLP_HIDDEN_UNITS), nn.ReLU(),
                                 nn.Linear(MLP_HIDDEN_UNITS, out))
        first, second = CNN_CHANNELS
        return nn.Sequential(
            nn.Conv2d(self.input_shape[0], first, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(first, second, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(), nn.Linear(second, out),
        )

    def loss(self, outputs: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """The task's loss: binary cross-entropy on the logit, cross-entropy on K logits, or squared error."""
        if self.task == "multiclass":
            return functional.cross_entropy(outputs, labels.long(), reduction=reduction)
        if self.task == "regression":
            return functional.mse_loss(outputs.squeeze(-1), labels, reduction=reduction)
        return functional.binary_cross_entropy_with_logits(outputs.squeeze(-1), labels, reduction=reduction)

    def label_problem(self, labels: torch.Tensor) -> str | None:
        """Why ``labels`` do not fit the task (None: they do)."""
        if not torch.isfinite(labels).all():
            return "NaN or infinite labels"
        if self.task == "binary" and not torch.all((labels == 0) | (labels == 1)):
            return "labels other than 0 and 1"
        if self.task == "multiclass" and not torch.all((labels == labels.round()) & (labels >= 0)
                                                       & (labels < self.classes)):
            return f"labels other than the class numbers 0 to {self.classes - 1}"
        return None

    def to_json(self) -> dict[str, Any]:
        """As a study config holds it: a table's built-in binary model as before, the rest only when set."""
        document: dict[str, Any] = {"kind": self.kind, "num_features": self.num_features}
        if len(self.input_shape) > 1:
            document["input_shape"] = list(self.input_shape)
        if self.task != "binary":
            document["task"] = self.task
        if self.task == "multiclass":
            document["classes"] = self.classes
        if self.options:
            document["options"] = dict(self.options)
        if self.layout is not None:
            document["layout"] = self.layout
        return document

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> ModelSpec:
        fields = dict(document)
        if "input_shape" in fields:
            fields["input_shape"] = tuple(fields["input_shape"])
        return cls(**fields)


@dataclass(frozen=True)
class Evaluation:
    loss: float
    accuracy: float | None  # None for regression


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
def evaluate(model: nn.Module, data: Dataset, spec: ModelSpec | None = None) -> Evaluation:
    """The task's mean loss on ``data`` and its accuracy (binary: threshold 0.5; multi-class: the top
    class; regression: none). Without ``spec``, a binary task."""
    task = "binary" if spec is None else spec.task
    outputs = model(data.features)
    if spec is None:
        spec = _BINARY
    loss = float(spec.loss(outputs, data.labels))
    if task == "regression":
        return Evaluation(loss=loss, accuracy=None)
    predicted = outputs.argmax(-1).float() if task == "multiclass" else (outputs.squeeze(-1) > 0).float()
    return Evaluation(loss=loss, accuracy=float((predicted == data.labels).float().mean()))


_BINARY = ModelSpec("logistic", 1)


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
