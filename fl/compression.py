"""Compression of hospitals' uploads: top-k sparsification and 8-bit quantization.

Both are lossy, so each client keeps what it did not send (the residual) and
adds it to its next update: error feedback (Seide et al. 2014; Stich et al.
2018). The total sent over rounds then differs from the total of the true
updates by only the last residual, instead of by an error that grows with
every round.
"""
from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fl.artifacts import ArtifactError, decode_artifact, encode_artifact

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

    @property
    def sparse(self) -> bool:
        """Whether only some entries are sent (top-k below 1)."""
        return self.top_k_ratio is not None and self.top_k_ratio < 1.0

    def to_json(self) -> dict[str, Any]:
        return {"top_k_ratio": self.top_k_ratio, "quantize_8bit": self.quantize_8bit}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> CompressionConfig:
        """The config a study's JSON names; ValueError unless it is exactly this shape."""
        if not isinstance(document, Mapping) or set(document) != {"top_k_ratio", "quantize_8bit"}:
            raise ValueError(f"compression must be {{top_k_ratio, quantize_8bit}}, got {document!r}")
        ratio, quantize = document["top_k_ratio"], document["quantize_8bit"]
        if ratio is not None and (isinstance(ratio, bool) or not isinstance(ratio, (int, float))):
            raise ValueError(f"compression: top_k_ratio must be a number or null, got {ratio!r}")
        if not isinstance(quantize, bool):
            raise ValueError(f"compression: quantize_8bit must be true or false, got {quantize!r}")
        return cls(None if ratio is None else float(ratio), quantize)


def kept_count(size: int, config: CompressionConfig) -> int:
    """How many of a tensor's ``size`` entries top-k keeps: ceil(ratio * size), at least 1 (rounded
    first, so that 0.1 * 30 = 3.0000000000000004 keeps 3, as the ratio says)."""
    if not config.sparse:
        return size
    return max(1, math.ceil(round(config.top_k_ratio * size, 9)))


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
    if config.sparse:
        keep = kept_count(flat.numel(), config)
        # A stable sort keeps ties in index order, so the choice is deterministic.
        order = torch.sort(flat.abs(), descending=True, stable=True).indices
        indices = torch.sort(order[:keep]).values
        flat = flat[indices]
    scale = None
    if config.quantize_8bit:
        largest = float(flat.abs().max()) if flat.numel() else 0.0
        # A float32 scale: what the stored update carries, so the sender's residual and every reader
        # decode the same values.
        scale = float(torch.tensor(largest / _INT8_LEVELS, dtype=torch.float32)) if largest > 0 else 1.0
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
        compressed, self.residual = self.propose(update)
        return compressed

    def propose(
        self, update: Mapping[str, torch.Tensor]
    ) -> tuple[dict[str, CompressedTensor], dict[str, torch.Tensor]]:
        """Compress ``update + residual``; returns it with the residual it leaves, which the caller
        keeps (``self.residual = ...``) only once the update was really sent."""
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
        return compressed, residual


# Stored form -------------------------------------------------------------------------------------
#
# A compressed update is one safetensors artifact (fl.artifacts: canonical, never pickle) whose
# tensors cover the whole model in sorted-name order, the order ParameterLayout flattens in:
#   "positions": uint8, the kept entries as a bitmap (little-endian bits, unused tail bits 0);
#                present only under top-k. A bitmap costs 1 bit an entry where 4-byte indices would
#                cost 32 bits a kept entry: at 10 % kept it is 12 % of the indices' size.
#   "values":    the kept entries, int8 codes under quantization, else float32;
#   "scales":    float32, one per tensor, present only under quantization.
# Its metadata is its kind and round, and what a reader allows beside them (the hospital's published
# evaluation): the sender, its sample count and the shapes are on chain or in the study's model, and
# every reader checks the counts against the study's config.

COMPRESSED_UPDATE = "compressed_update"


def encode_compressed_update(compressed: Mapping[str, CompressedTensor], round_number: int,
                             extra: Mapping[str, str] | None = None) -> bytes:
    """The stored bytes of one hospital's compressed update for ``round_number``, with ``extra``
    metadata (e.g. the hospital's published evaluation) beside its kind and round."""
    names = sorted(compressed)
    tensors: dict[str, torch.Tensor] = {"values": torch.cat([compressed[name].values for name in names])}
    if any(compressed[name].indices is not None for name in names):
        bits = []
        for name in names:
            mask = np.zeros(math.prod(compressed[name].shape), dtype=bool)
            mask[compressed[name].indices.numpy()] = True
            bits.append(mask)
        tensors["positions"] = torch.from_numpy(np.packbits(np.concatenate(bits), bitorder="little"))
    if any(compressed[name].scale is not None for name in names):
        tensors["scales"] = torch.tensor([compressed[name].scale for name in names], dtype=torch.float32)
    metadata = {"kind": COMPRESSED_UPDATE, "round": str(round_number)}
    clashing = sorted(set(extra or {}) & set(metadata))
    if clashing:
        raise ArtifactError(f"extra metadata may not replace {clashing}")
    return encode_artifact(tensors, {**metadata, **(extra or {})})


def decode_compressed_update(
    data: bytes, shapes: Mapping[str, tuple[int, ...]], config: CompressionConfig,
    optional_metadata: Collection[str] = (),
) -> tuple[dict[str, CompressedTensor], int]:
    """The compressed tensors and round stored by :func:`encode_compressed_update` for a model of
    ``shapes`` under ``config``; ArtifactError for anything else (other tensors, counts, dtypes, a
    bitmap keeping other than top-k's count of a tensor, a scale that is not finite and positive)."""
    artifact = decode_artifact(data)
    metadata = artifact.metadata
    if metadata.get("kind") != COMPRESSED_UPDATE or set(metadata) - set(optional_metadata) != {"kind", "round"}:
        raise ArtifactError(f"not a compressed update (kind {metadata.get('kind')!r}, metadata {sorted(metadata)})")
    if not metadata["round"].isdigit() or not metadata["round"].isascii():
        raise ArtifactError(f"compressed update metadata is malformed: round {metadata['round']!r}")
    round_number = int(metadata["round"])
    names = sorted(shapes)
    sizes = [math.prod(shapes[name]) for name in names]
    expected = {"values"} | ({"positions"} if config.sparse else set()) | ({"scales"} if config.quantize_8bit else set())
    tensors = artifact.tensors
    if set(tensors) != expected:
        raise ArtifactError(f"a compressed update holds tensors {sorted(expected)}, this one {sorted(tensors)}")
    counts = [kept_count(size, config) for size in sizes]
    values = _vector(tensors["values"], "values", torch.int8 if config.quantize_8bit else torch.float32, sum(counts))
    if values.is_floating_point() and not bool(torch.isfinite(values).all()):
        raise ArtifactError("compressed update values hold NaN or infinite entries")
    scales: list[float | None] = [None] * len(names)
    if config.quantize_8bit:
        scale_vector = _vector(tensors["scales"], "scales", torch.float32, len(names))
        if not bool((torch.isfinite(scale_vector) & (scale_vector > 0)).all()):
            raise ArtifactError("compressed update scales must be finite and positive")
        scales = scale_vector.tolist()
        if bool((values == -128).any()):
            raise ArtifactError("compressed update int8 codes lie in [-127, 127]")
    indices: list[torch.Tensor | None] = [None] * len(names)
    if config.sparse:
        total = sum(sizes)
        packed = _vector(tensors["positions"], "positions", torch.uint8, (total + 7) // 8)
        mask = np.unpackbits(packed.numpy(), bitorder="little")
        if mask[total:].any():
            raise ArtifactError("compressed update positions set bits past the model's entries")
        offsets = np.cumsum([0, *sizes])
        for i, (name, count) in enumerate(zip(names, counts)):
            kept = np.flatnonzero(mask[offsets[i] : offsets[i + 1]])
            if kept.size != count:
                raise ArtifactError(f"compressed update keeps {kept.size} entries of {name}, top-k keeps {count}")
            indices[i] = torch.from_numpy(kept.astype(np.int64))
    result, start = {}, 0
    for name, count, scale, index in zip(names, counts, scales, indices):
        result[name] = CompressedTensor(tuple(shapes[name]), values[start : start + count], index, scale)
        start += count
    return result, round_number


def _vector(tensor: torch.Tensor, what: str, dtype: torch.dtype, size: int) -> torch.Tensor:
    if tensor.dtype != dtype or tensor.shape != (size,):
        raise ArtifactError(f"compressed update {what} must be {dtype} of shape ({size},), "
                            f"got {tensor.dtype} {tuple(tensor.shape)}")
    return tensor


def save_residual(path, residual: Mapping[str, torch.Tensor]) -> None:
    """Write an error-feedback residual to ``path`` (safetensors, atomically: a crash leaves the old one)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(encode_artifact(residual, {"kind": "residual"}))
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_residual(path) -> dict[str, torch.Tensor]:
    """The residual :func:`save_residual` wrote (empty when there is none yet); ArtifactError if damaged."""
    target = Path(path)
    if not target.exists():
        return {}
    artifact = decode_artifact(target.read_bytes())
    if artifact.metadata != {"kind": "residual"}:
        raise ArtifactError(f"{target} is not an error-feedback residual")
    for name, tensor in artifact.tensors.items():
        if tensor.dtype != torch.float32 or not bool(torch.isfinite(tensor).all()):
            raise ArtifactError(f"{target}: residual {name!r} is not finite float32")
    return artifact.tensors
