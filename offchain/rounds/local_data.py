"""A hospital's own data for a study: an image folder or its own loader, with its validation split.

The loader is an entry point the hospital names on its own node's command line (``--loader
package.module:load``), so it runs the hospital's own code, not the study's: it is called with the
hospital's keyword arguments and returns ``(features, labels)`` (tensors or arrays) or a
:class:`fl.data.Dataset`. Either way the hospital holds back a validation split fixed by its own
seed (:class:`offchain.rounds.node_settings.NodeSettings`), which never leaves the site.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from fl.data import Dataset, HospitalData, split_validation
from fl.entry_points import EntryPointError, load_entry_point
from fl.images import ImageFolderError, load_image_folder
from fl.models import ModelSpec
from offchain.rounds.errors import TableError
from offchain.rounds.node_settings import NodeSettings


def own_data(model: ModelSpec, home: Path, *, images: Path | None = None, loader: str | None = None,
             loader_args: Mapping[str, Any] | None = None) -> HospitalData:
    """The hospital's training records (``images`` or ``loader``'s) and its held-back validation split."""
    if (images is None) == (loader is None):
        raise TableError("give exactly one of an image folder and a data loader")
    try:
        if images is not None:
            data = load_image_folder(images, model.input_shape)
        else:
            data = HospitalData(loader, _loaded(loader, dict(loader_args or {})))
    except (ImageFolderError, EntryPointError) as error:
        raise TableError(str(error)) from None
    return split_validation(data, NodeSettings.seeded(home).validation_seed)


def _loaded(loader: str, arguments: dict[str, Any]) -> Dataset:
    # The hospital named this loader itself: it is its own allowlist.
    load = load_entry_point(loader, (loader,), "data loader")
    try:
        result = load(**arguments)
    except TypeError as error:
        raise EntryPointError(f"data loader {loader}: {error}") from None
    if isinstance(result, Dataset):
        return result
    if not (isinstance(result, tuple) and len(result) == 2):
        raise EntryPointError(f"data loader {loader} returned a {type(result).__name__}, not (features, labels) "
                              "or a Dataset")
    try:
        features, labels = (torch.as_tensor(part, dtype=torch.float32) for part in result)
        return Dataset(features, labels)
    except (TypeError, ValueError, RuntimeError) as error:
        raise EntryPointError(f"data loader {loader}: its (features, labels) are not a data set: {error}") from None
