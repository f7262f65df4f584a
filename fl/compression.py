"""Compression of hospitals' uploads: top-k sparsification and 8-bit quantization.

Both are lossy, so each client keeps what it did not send (the residual) and
adds it to its next update: error feedback (Seide et al. 2014; Stich et al.
2018). The total sent over rounds then differs from the total of the true
updates by only the last residual, instead of by an error that grows with
every round.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

_INT8_LEVELS = 127  # symmetric codes in [-127, 127]; -128 unused so 0 stays exact


@dataclass(frozen=True)
class CompressionConfig:
    """``top_k_ratio``: share of entries kept per tensor (largest magnitudes); ``quantize_8bit``:
    send int8 codes with one float scale per tensor. Either or both."""

    top_k_ratio: float | None = None
    quantize_8bit: bool = False

    def __post_init__(self) -> None:
        if self.top_k_ratio is None and not self.quantize_8bit:
            raise ValueError("choose top_k_ratio, quantize_8bit or both")
        if self.top_k_ratio is not None and not 0.0 < self.top_k_ratio <= 1.0:
            raise ValueError(f"top_k_ratio must be in (0, 1], got {self.top_k_ratio}")


@dataclass(frozen=True)
class CompressedTensor:
    """One tensor as sent: optional flat ``indices`` (sparse), values or int8 codes, optional scale."""

    shape: tuple[int, ...]
    values: torch.Tensor
    indices: torch.Tensor | None = None
    scale: float | None = None

    def __post_init__(self) -> None:
        expected = math.prod(self.shape) if self.indices is None else self.indices.numel()
        if self.values.ndim != 1 or self.values.numel() != expected:
            raise ValueError(f"{self.values.numel()} values for {expected} positions")
        if (self.scale is None) != (self.values.dtype != torch.int8):
            raise ValueError("int8 values need a scale, and only they do")
        if self.indices is not None and self.indices.numel() and (
            self.indices.min() < 0 or self.indices.max() >= math.prod(self.shape)
        ):
            raise ValueError(f"indices out of range for shape {self.shape}")
        # A repeated index would leave which of its values lands to the scatter's whim.
        if self.indices is not None and not bool((self.indices[1:] > self.indices[:-1]).all()):
            raise ValueError("indices must be strictly increasing")

    def decode(self) -> torch.Tensor:
        """The float32 tensor this stands for (zeros where entries were dropped)."""
        values = self.values.float() * self.scale if self.scale is not None else self.values.float()
        if self.indices is None:
            return values.reshape(self.shape)
        dense = torch.zeros(math.prod(self.shape), dtype=torch.float32)
        dense[self.indices] = values
        return dense.reshape(self.shape)

    @property
    def num_bytes(self) -> int:
        """Bytes on the wire: values, 4-byte indices and a 4-byte scale where present."""
        size = self.values.numel() * self.values.element_size()
        if self.indices is not None:
            size += 4 * self.indices.numel()
        return size + (4 if self.scale is not None else 0)


def compress_tensor(tensor: torch.Tensor, config: CompressionConfig) -> CompressedTensor:
    if not tensor.is_floating_point():
        raise ValueError(f"only floating-point tensors compress, got {tensor.dtype}")
    if not torch.isfinite(tensor).all():
        raise ValueError("tensor contains NaN or infinity")
    flat = tensor.detach().float().reshape(-1)
    indices = None
    if config.top_k_ratio is not None and config.top_k_ratio < 1.0:
        keep = max(1, math.ceil(config.top_k_ratio * flat.numel()))
        # A stable sort keeps ties in index order, so the choice is deterministic.
        order = torch.sort(flat.abs(), descending=True, stable=True).indices
        indices = torch.sort(order[:keep]).values
        flat = flat[indices]
    scale = None
    if config.quantize_8bit:
        largest = float(flat.abs().max()) if flat.numel() else 0.0
        scale = largest / _INT8_LEVELS if largest > 0 else 1.0
        flat = torch.round(flat / scale).clamp(-_INT8_LEVELS, _INT8_LEVELS).to(torch.int8)
    return CompressedTensor(shape=tuple(tensor.shape), values=flat, indices=indices, scale=scale)


def decompress(update: Mapping[str, CompressedTensor]) -> dict[str, torch.Tensor]:
    return {name: compressed.decode() for name, compressed in update.items()}


def compressed_size(update: Mapping[str, CompressedTensor]) -> int:
    return sum(compressed.num_bytes for compressed in update.values())


class ErrorFeedbackCompressor:
    """One client's compressor: carries the untransmitted residual into the next round."""

    def __init__(self, config: CompressionConfig) -> None:
        self.config = config
        self.residual: dict[str, torch.Tensor] = {}

    def compress(self, update: Mapping[str, torch.Tensor]) -> dict[str, CompressedTensor]:
        """Compress ``update + residual`` and keep what was lost as the new residual."""
        if self.residual:
            if set(update) != set(self.residual):
                raise ValueError(
                    f"update tensors {sorted(update)} differ from earlier rounds' {sorted(self.residual)}"
                )
            for name, tensor in update.items():
                if tensor.shape != self.residual[name].shape:
                    raise ValueError(
                        f"tensor {name!r} has shape {tuple(tensor.shape)}, "
                        f"earlier rounds had {tuple(self.residual[name].shape)}"
                    )
        compressed, residual = {}, {}
        for name, tensor in update.items():
            corrected = tensor.detach().float() + self.residual.get(name, 0.0)
            compressed[name] = compress_tensor(corrected, self.config)
            residual[name] = corrected - compressed[name].decode()
        # Replaced only once every tensor compressed, so a rejected update changes nothing.
        self.residual = residual
        return compressed
