"""A hospital's own images as training data: a folder of PNG, JPEG or DICOM files.

Two layouts: one sub-folder per class, named by its class number (``0/``, ``1/``, ``2/``...: a
number, not a name, so every hospital maps a class to the same output whatever classes it holds),
or a ``labels.csv`` (header ``file,label``; paths relative to the folder; the label a class number
or, for regression, a value). Every image must have the study's shape: it is read as grayscale for
one channel, RGB for three, and scaled to [0, 1] (a DICOM image by its own pixel range, through
pydicom). Every problem is refused before anything trains, naming the file.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from fl.data import Dataset, HospitalData

LABELS_FILE = "labels.csv"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DICOM_SUFFIXES = (".dcm",)


class ImageFolderError(ValueError):
    """An image folder that cannot be trained on (layout, label, unreadable or mis-sized image)."""


def load_image_folder(folder: Path, input_shape: tuple[int, ...], *, name: str | None = None) -> HospitalData:
    """The images under ``folder`` as a data set of ``input_shape`` (channels, height, width)."""
    folder = Path(folder)
    if len(input_shape) != 3 or input_shape[0] not in (1, 3):
        raise ImageFolderError(f"the study's model takes input shape {tuple(input_shape)}, not images "
                               "(1 or 3 channels, height, width)")
    if not folder.is_dir():
        raise ImageFolderError(f"{folder}: no such folder")
    examples = _labelled_files(folder)
    if not examples:
        raise ImageFolderError(f"{folder}: no images (expected one folder per class number, or {LABELS_FILE})")
    images = np.stack([_read(path, input_shape) for path, _ in examples])
    labels = np.array([label for _, label in examples], dtype=np.float32)
    return HospitalData(name or folder.name, Dataset(torch.from_numpy(images), torch.from_numpy(labels)))


def _labelled_files(folder: Path) -> list[tuple[Path, float]]:
    labels_file = folder / LABELS_FILE
    if labels_file.is_file():
        return _from_labels_file(folder, labels_file)
    examples = []
    for class_folder in sorted(p for p in folder.iterdir() if p.is_dir()):
        if not class_folder.name.isdigit():
            raise ImageFolderError(f"{class_folder}: a class folder is named by its class number (0, 1, 2...), "
                                   f"not {class_folder.name!r}")
        examples += [(path, float(int(class_folder.name))) for path in sorted(class_folder.iterdir())
                     if path.suffix.lower() in IMAGE_SUFFIXES + DICOM_SUFFIXES]
    return examples


def _from_labels_file(folder: Path, labels_file: Path) -> list[tuple[Path, float]]:
    try:
        with labels_file.open(newline="") as file:
            rows = list(csv.reader(file))
    except (UnicodeDecodeError, csv.Error) as error:
        raise ImageFolderError(f"{labels_file}: not a CSV file ({error})") from None
    if not rows or [cell.strip() for cell in rows[0]] != ["file", "label"]:
        raise ImageFolderError(f"{labels_file}, row 1: the header must be file,label")
    root = folder.resolve()
    examples = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 2:
            raise ImageFolderError(f"{labels_file}, row {number}: {len(row)} cells, expected file,label")
        path = (folder / row[0].strip()).resolve()
        if not path.is_relative_to(root):
            raise ImageFolderError(f"{labels_file}, row {number}: {row[0]!r} is outside {folder}")
        try:
            label = float(row[1])
        except ValueError:
            raise ImageFolderError(f"{labels_file}, row {number}: label {row[1]!r} is not a number") from None
        if not np.isfinite(label):
            raise ImageFolderError(f"{labels_file}, row {number}: label {row[1]!r} is not finite")
        examples.append((path, label))
    return examples


def _read(path: Path, input_shape: tuple[int, ...]) -> np.ndarray:
    channels, height, width = input_shape
    if not path.is_file():
        raise ImageFolderError(f"{path}: no such image")
    if path.suffix.lower() in DICOM_SUFFIXES:
        pixels = _read_dicom(path, channels)
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError) as error:
            raise ImageFolderError(f"{path}: not a readable PNG or JPEG image ({error})") from None
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    if pixels.shape != (channels, height, width):
        raise ImageFolderError(f"{path}: a {pixels.shape[2]}x{pixels.shape[1]} image, the study's model takes "
                               f"{width}x{height}")
    return np.ascontiguousarray(pixels, dtype=np.float32)


def _read_dicom(path: Path, channels: int) -> np.ndarray:
    import pydicom
    from pydicom.errors import InvalidDicomError

    if channels != 1:
        raise ImageFolderError(f"{path}: DICOM images are read as one grayscale channel; the study's model takes "
                               f"{channels}")
    try:
        pixels = pydicom.dcmread(path).pixel_array.astype(np.float32)
    except (InvalidDicomError, AttributeError, ValueError, OSError) as error:
        raise ImageFolderError(f"{path}: not a readable single-frame DICOM image ({error})") from None
    if pixels.ndim != 2:
        raise ImageFolderError(f"{path}: a DICOM image of shape {pixels.shape}; only single-frame grayscale is read")
    low, high = float(pixels.min()), float(pixels.max())
    return (pixels - low) / (high - low) if high > low else np.zeros_like(pixels)
