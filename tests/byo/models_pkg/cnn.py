"""A user-supplied CNN: ``models_pkg.cnn:build`` (importable once tests/byo is on the path, as an installed package would be) with keyword arguments."""

from torch import nn


def build(channels: int = 1, classes: int = 3, width: int = 6) -> nn.Module:
    """Two 3x3 convolutions, global average pooling and a linear head of ``classes`` logits."""
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(width, classes),
    )


def not_a_model(**_):
    return "not a module"
