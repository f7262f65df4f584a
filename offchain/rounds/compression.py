"""Compressed updates on the chain path: a study whose config sets ``compression``.

A hospital node sends ``trained - base`` compressed (:mod:`fl.compression`: top-k, int8 codes, or
both) with error feedback: what it did not send is a residual kept in the node's own home, one file
per study and account, and added to its next update, so it survives restarts. The residual moves on
only once the update is on chain: an update the round never took left nothing behind.

Every reader (the coordinator, each auditor) decodes the same stored bytes into the model
``base + update`` by the same float32 arithmetic, so the aggregate is re-derived bit for bit. An
update that is not exactly what the study's config prescribes (a plain update, other tensors, more or
fewer kept entries than top-k keeps) is malformed like any other: rejected, as the hospital's silence.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from fl.artifacts import ArtifactError
from fl.aggregation import ClientModel
from fl.compression import CompressionConfig, load_residual, save_residual
from fl.round import UpdateEncoder
from fl.round import decode_update as decode_round_update
from offchain.rounds.evaluation import EVALUATION_METADATA
from offchain.rounds.errors import RoundsError


def residual_path(home: Path, study_key: str, account: str) -> Path:
    """Where a node keeps its error-feedback residual for one study (hospitals may share a home)."""
    return home / "fl" / "compression" / f"{study_key}-{account.lower()}.safetensors"


class UpdateCompressor(UpdateEncoder):
    """One hospital's update encoding in a compressed study (:class:`fl.round.UpdateEncoder`), its
    residual persisted at ``path`` (None: memory only)."""

    def __init__(self, config: CompressionConfig, path: Path | None = None) -> None:
        super().__init__(config)
        self.path = path
        if path is not None:
            try:
                self.compressor.residual = load_residual(path)
            except ArtifactError as error:
                raise RoundsError(f"the error-feedback residual {path} is damaged ({error}); delete it to start "
                                  "error feedback afresh") from None

    def encode(self, round_number: int, base: Mapping[str, torch.Tensor], model: ClientModel,
               metadata: Mapping[str, str] | None = None) -> bytes:
        """The stored bytes of ``model - base`` (plus the residual), compressed, with the node's
        evaluation metadata (:mod:`offchain.rounds.evaluation`); the residual it leaves waits for
        :meth:`keep`."""
        try:
            return super().encode(round_number, base, model, metadata)
        except ValueError as error:
            where = f" (residual {self.path})" if self.path is not None else ""
            raise RoundsError(f"cannot compress this update{where}: {error}") from None

    def keep(self) -> bool:
        """The update just encoded is on chain: its residual is the one to carry on, and to persist."""
        kept = super().keep()
        if kept and self.path is not None:
            save_residual(self.path, self.compressor.residual)
        return kept


def decode_update(data: bytes, base: Mapping[str, torch.Tensor],
                  config: CompressionConfig) -> tuple[dict[str, torch.Tensor], int]:
    """The model a compressed update stands for, ``base + update`` in the base's dtypes, and the round
    it declares (:func:`fl.round.decode_update`, the node's evaluation metadata allowed beside it);
    ArtifactError if it is not a compressed update of this model under ``config``."""
    return decode_round_update(data, base, config, optional_metadata=(EVALUATION_METADATA,))


def node_compressor(config: CompressionConfig | None, home: Path | None, study_key: str,
                    account: str) -> UpdateCompressor | None:
    """A hospital node's compressor for a study (None when the study sends plain updates); its residual
    in ``home`` when the node has one."""
    if config is None:
        return None
    return UpdateCompressor(config, None if home is None else residual_path(home, study_key, account))
