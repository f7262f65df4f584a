"""Models, updates and optimizer state as content-addressed safetensors.

An artifact is a state dict plus string metadata (round, client, sample count,
...), serialised in the safetensors format and named by the SHA-256 of its
bytes. The encoding is canonical, so the same tensors and metadata always give
the same bytes and the same digest in any process: tensors are laid out in
name order and the JSON header has sorted keys. (``safetensors.torch.save``
writes the metadata map in hash order, which changes from one process to the
next, so it cannot be used to name content.)

Loading checks the digest first and parses with the safetensors library;
nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import safetensors.torch
import torch

from fl.aggregation import ClientModel

SUFFIX = ".safetensors"
CLIENT_UPDATE = "client_update"

_DTYPE_CODES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
_DIGEST = re.compile(r"[0-9a-f]{64}")
_HEADER_SIZE = struct.Struct("<Q")
_ALIGNMENT = 8


class ArtifactError(ValueError):
    """An artifact that cannot be written or read as asked (bad input, digest mismatch, malformed bytes)."""


@dataclass(frozen=True)
class Artifact:
    """Decoded artifact: tensors, string metadata and the SHA-256 (hex) of its bytes."""

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]
    digest: str


def artifact_digest(data: bytes) -> str:
    """Hex SHA-256 of serialised artifact bytes: the artifact's identity."""
    return hashlib.sha256(data).hexdigest()


def encode_artifact(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> bytes:
    """Canonical safetensors bytes for ``tensors`` and ``metadata`` (strings only)."""
    metadata = dict(metadata or {})
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ArtifactError(f"metadata must map strings to strings, got {key!r}: {value!r}")
    header: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    blobs: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        tensor = tensors[name]
        if not isinstance(tensor, torch.Tensor):
            raise ArtifactError(f"{name!r} is a {type(tensor).__name__}, expected a torch.Tensor")
        if name == "__metadata__":
            raise ArtifactError("'__metadata__' is reserved and cannot name a tensor")
        code = _DTYPE_CODES.get(tensor.dtype)
        if code is None:
            raise ArtifactError(f"{name!r} has dtype {tensor.dtype}, which artifacts cannot store")
        blob = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": code, "shape": list(tensor.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    # Pad with spaces so the data starts 8-byte aligned, as safetensors writes it.
    text += b" " * (-(len(text) + _HEADER_SIZE.size) % _ALIGNMENT)
    return b"".join([_HEADER_SIZE.pack(len(text)), text, *blobs])


def layout_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """Hex SHA-256 of a state dict's parameter layout (names, shapes, dtypes), written as a safetensors
    header is (sorted names, each with its dtype code and shape; no offsets, no metadata): two models
    share it exactly when their state dicts have the same architecture."""
    header = {}
    for name in sorted(tensors):
        code = _DTYPE_CODES.get(tensors[name].dtype)
        if code is None:
            raise ArtifactError(f"{name!r} has dtype {tensors[name].dtype}, which artifacts cannot store")
        header[name] = {"dtype": code, "shape": list(tensors[name].shape)}
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    return hashlib.sha256(text).hexdigest()


def decode_artifact(data: bytes, expected_digest: str | None = None) -> Artifact:
    """Parse artifact bytes; with ``expected_digest``, refuse bytes whose SHA-256 differs."""
    digest = artifact_digest(data)
    if expected_digest is not None:
        check_digest(expected_digest)
        if digest != expected_digest:
            raise ArtifactError(f"digest mismatch: expected {expected_digest}, the bytes hash to {digest}")
    if len(data) < _HEADER_SIZE.size:
        raise ArtifactError("not a safetensors artifact: shorter than its header length field")
    (length,) = _HEADER_SIZE.unpack_from(data)
    if length > len(data) - _HEADER_SIZE.size:
        raise ArtifactError("not a safetensors artifact: header length exceeds the data")
    try:
        # safetensors first: its parser bounds the header's size and nesting, so json.loads below
        # only ever sees a header it accepted (a deeply nested one would exhaust the stack).
        tensors = safetensors.torch.load(bytes(data))
        header = json.loads(data[_HEADER_SIZE.size : _HEADER_SIZE.size + length])
    except (ValueError, UnicodeDecodeError, RecursionError, safetensors.SafetensorError) as error:
        raise ArtifactError(f"not a safetensors artifact: {error}") from None
    if not isinstance(header, dict):
        raise ArtifactError("not a safetensors artifact: the header is not a JSON object")
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ArtifactError("artifact metadata must map strings to strings")
    return Artifact(tensors=tensors, metadata=metadata, digest=digest)


def check_digest(digest: str) -> None:
    """A digest is 64 lowercase hex characters."""
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise ArtifactError(f"a digest is 64 lowercase hex characters, got {digest!r}")


def save_artifact(
    directory: str | os.PathLike, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> str:
    """Write ``<directory>/<digest>.safetensors`` atomically and return the digest."""
    data = encode_artifact(tensors, metadata)
    digest = artifact_digest(data)
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{digest}{SUFFIX}"
    if not target.exists():
        handle, temporary = tempfile.mkstemp(dir=folder, suffix=".partial")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    return digest


def load_artifact(directory: str | os.PathLike, digest: str) -> Artifact:
    """Read the artifact named ``digest`` from ``directory``, verifying its bytes against the name."""
    check_digest(digest)
    path = Path(directory) / f"{digest}{SUFFIX}"
    if not path.is_file():
        raise ArtifactError(f"no artifact {digest} in {directory}")
    return decode_artifact(path.read_bytes(), expected_digest=digest)


def encode_client_model(model: ClientModel, round_number: int, extra: Mapping[str, str] | None = None) -> bytes:
    """A client's update for a round as artifact bytes (metadata: kind, round, client, samples, metrics,
    and the ``extra`` entries, which may not replace any of those)."""
    if isinstance(round_number, bool) or not isinstance(round_number, int) or round_number < 0:
        raise ArtifactError(f"round must be a non-negative int, got {round_number!r}")
    metadata = {
        "kind": CLIENT_UPDATE,
        "round": str(round_number),
        "client_id": model.client_id,
        "data_samples": str(model.data_samples),
    }
    for metric in ("training_loss", "training_accuracy"):
        value = getattr(model, metric)
        if value is not None:
            metadata[metric] = repr(float(value))
    clashing = sorted(set(extra or {}) & set(metadata))
    if clashing:
        raise ArtifactError(f"extra metadata may not replace {clashing}")
    return encode_artifact(model.parameters, {**metadata, **(extra or {})})


def decode_client_model(data: bytes, expected_digest: str | None = None) -> tuple[ClientModel, int]:
    """The client model and round number stored by ``encode_client_model``."""
    artifact = decode_artifact(data, expected_digest)
    metadata = artifact.metadata
    if metadata.get("kind") != CLIENT_UPDATE:
        raise ArtifactError(f"artifact kind is {metadata.get('kind')!r}, expected {CLIENT_UPDATE!r}")
    try:
        round_number = int(metadata["round"])
        model = ClientModel(
            client_id=metadata["client_id"],
            parameters=artifact.tensors,
            data_samples=int(metadata["data_samples"]),
            training_loss=float(metadata["training_loss"]) if "training_loss" in metadata else None,
            training_accuracy=float(metadata["training_accuracy"]) if "training_accuracy" in metadata else None,
        )
    except KeyError as missing:
        raise ArtifactError(f"client update metadata lacks {missing}") from None
    except ValueError as error:
        raise ArtifactError(f"client update metadata is malformed: {error}") from None
    if round_number < 0:
        raise ArtifactError(f"client update metadata is malformed: round {round_number} is negative")
    return model, round_number
