"""A hospital's own training table: a CSV file with a header row, one label column, numeric features.

Every problem is refused before anything trains or is submitted, with the
file, the row (as a spreadsheet numbers it: the header is row 1) and the
column named, so the hospital can fix the cell.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import torch

from fl.data import Dataset, HospitalData
from offchain.rounds.errors import TableError


def load_table(path: Path, label: str, num_features: int, *, name: str | None = None) -> HospitalData:
    """The table at ``path`` as training data: every column but ``label`` is a feature, in file order."""
    path = Path(path)
    try:
        with path.open(newline="") as file:
            rows = list(csv.reader(file))
    except UnicodeDecodeError:
        raise TableError(f"{path}: not a text CSV file") from None
    except csv.Error as error:
        raise TableError(f"{path}: not a CSV file ({error})") from None
    if not rows:
        raise TableError(f"{path}: empty file; expected a header row naming the columns")
    header = [column.strip() for column in rows[0]]
    if label not in header:
        raise TableError(f"{path}, row 1: no column {label!r} (columns: {', '.join(header)})")
    label_index = header.index(label)
    feature_columns = [i for i in range(len(header)) if i != label_index]
    if len(feature_columns) != num_features:
        raise TableError(
            f"{path}, row 1: {len(feature_columns)} feature columns besides {label!r}, the study's model expects {num_features}"
        )
    features, labels = [], []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise TableError(f"{path}, row {number}: {len(row)} cells, the header has {len(header)}")
        values = [_number(path, number, header[i], row[i]) for i in range(len(header))]
        if values[label_index] not in (0.0, 1.0):
            raise TableError(f"{path}, row {number}, column {label!r}: label {row[label_index]!r} is not 0 or 1")
        features.append([values[i] for i in feature_columns])
        labels.append(values[label_index])
    if not labels:
        raise TableError(f"{path}: no data rows below the header")
    data = Dataset(torch.tensor(features, dtype=torch.float32), torch.tensor(labels, dtype=torch.float32))
    return HospitalData(name or path.stem, data)


def _number(path: Path, row: int, column: str, cell: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise TableError(f"{path}, row {row}, column {column!r}: {cell!r} is not a number") from None
    if not math.isfinite(value):
        raise TableError(f"{path}, row {row}, column {column!r}: {cell.strip()!r} is not a finite number")
    return value
