"""The breast-cancer (Wisconsin diagnostic) data set split across hospitals.

scikit-learn ships the data set, so nothing is downloaded. One seeded
train/test split is used everywhere: the test split is held out by the
consortium for evaluation and never seen by any hospital. Features are
standardised with the mean and standard deviation of the training split only
(in deployment these two statistics are sums over hospitals, which secure
aggregation can compute without revealing any hospital's share).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

DEFAULT_SEED = 0
DEFAULT_TEST_FRACTION = 0.25
DEFAULT_MIN_SAMPLES = 20
BUNDLED_FEATURES = 30  # the breast-cancer table's width
# Dirichlet draws are repeated until every hospital gets its minimum share;
# this many failed draws means the request cannot be met in practice.
_MAX_DIRICHLET_DRAWS = 1000


class PartitionError(ValueError):
    """The data cannot be split as asked (too many hospitals, shares too small...)."""


@dataclass(frozen=True)
class Dataset:
    """Features (float32, one row per patient: a table's row or an image's channels x pixels) and
    labels (float32: 0 or 1, a class number, or a value)."""

    features: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.features.ndim < 2 or self.labels.ndim != 1:
            raise ValueError(
                f"features must be at least 2-D and labels 1-D, got {tuple(self.features.shape)} "
                f"and {tuple(self.labels.shape)}"
            )
        if self.features.shape[0] != self.labels.shape[0]:
            raise ValueError(
                f"{self.features.shape[0]} feature rows but {self.labels.shape[0]} labels"
            )

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_features(self) -> int:
        return int(self.features.shape[1])

    def subset(self, indices: np.ndarray) -> Dataset:
        index = torch.as_tensor(indices, dtype=torch.long)
        return Dataset(self.features[index], self.labels[index])


@dataclass(frozen=True)
class HospitalData:
    """One hospital's private training records, and the validation records it holds back (if any)."""

    name: str
    data: Dataset
    validation: Dataset | None = None


DEFAULT_VALIDATION_FRACTION = 0.2


def split_validation(hospital: HospitalData, seed: int,
                     fraction: float = DEFAULT_VALIDATION_FRACTION) -> HospitalData:
    """Hold back ``fraction`` of the hospital's records (at least one, when it has two or more) for
    validation. The split is a permutation drawn from the hospital's own ``seed``, so it is the same
    at every restart; it never leaves the site (nothing about it is published)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the validation fraction must be in (0, 1), got {fraction}")
    records = hospital.data.num_samples
    held = min(records - 1, max(1, round(records * fraction))) if records >= 2 else 0
    order = np.random.default_rng(seed).permutation(records)
    if held == 0:
        return hospital
    return HospitalData(hospital.name, hospital.data.subset(np.sort(order[held:])),
                        hospital.data.subset(np.sort(order[:held])))


@dataclass(frozen=True)
class FederatedDataset:
    """The hospitals' training shares, their union, and the common test split."""

    hospitals: tuple[HospitalData, ...]
    train: Dataset
    test: Dataset

    @property
    def num_features(self) -> int:
        return self.test.num_features


def load_split(
    seed: int = DEFAULT_SEED, test_fraction: float = DEFAULT_TEST_FRACTION
) -> tuple[Dataset, Dataset]:
    """The seeded, label-stratified (train, test) split, standardised with training statistics."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    # sklearn (with scipy and pandas, about a second) only where the data is loaded, not at every import.
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    bunch = load_breast_cancer()
    x_train, x_test, y_train, y_test = train_test_split(
        bunch.data, bunch.target, test_size=test_fraction, random_state=seed, stratify=bunch.target
    )
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std == 0.0] = 1.0

    def to_dataset(x: np.ndarray, y: np.ndarray) -> Dataset:
        return Dataset(
            torch.from_numpy(((x - mean) / std).astype(np.float32)),
            torch.from_numpy(y.astype(np.float32)),
        )

    return to_dataset(x_train, y_train), to_dataset(x_test, y_test)


def partition_iid(
    num_samples: int, num_hospitals: int, seed: int = DEFAULT_SEED, min_samples: int = 1
) -> list[np.ndarray]:
    """Shuffle and cut into near-equal shares (sizes differ by at most one)."""
    _check_partition_request(num_samples, num_hospitals, min_samples)
    order = np.random.default_rng(seed).permutation(num_samples)
    return [np.sort(share) for share in np.array_split(order, num_hospitals)]


def partition_dirichlet(
    labels: np.ndarray,
    num_hospitals: int,
    alpha: float,
    seed: int = DEFAULT_SEED,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> list[np.ndarray]:
    """Label-skewed shares: each class is spread over hospitals by Dirichlet(alpha) proportions.

    Small alpha gives strong skew. Draws repeat (seeded) until every hospital
    holds at least ``min_samples`` records, so no hospital is left with an
    unusable share; a request that cannot be met raises ``PartitionError``.
    """
    if not alpha > 0.0 or not np.isfinite(alpha):
        raise PartitionError(f"Dirichlet alpha must be a positive finite number, got {alpha}")
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise PartitionError(f"labels must be 1-D, got shape {labels.shape}")
    _check_partition_request(len(labels), num_hospitals, min_samples)
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    for _ in range(_MAX_DIRICHLET_DRAWS):
        shares: list[list[np.ndarray]] = [[] for _ in range(num_hospitals)]
        for label in classes:
            members = rng.permutation(np.flatnonzero(labels == label))
            proportions = rng.dirichlet(np.full(num_hospitals, alpha))
            cuts = (np.cumsum(proportions)[:-1] * len(members)).astype(int)
            for hospital, part in enumerate(np.split(members, cuts)):
                shares[hospital].append(part)
        result = [np.sort(np.concatenate(parts)) for parts in shares]
        if min(len(share) for share in result) >= min_samples:
            return result
    raise PartitionError(
        f"no Dirichlet(alpha={alpha}) draw in {_MAX_DIRICHLET_DRAWS} gave each of "
        f"{num_hospitals} hospitals {min_samples} of {len(labels)} records; "
        "raise alpha or lower min_samples"
    )


def _check_partition_request(num_samples: int, num_hospitals: int, min_samples: int) -> None:
    if num_hospitals < 1:
        raise PartitionError(f"need at least one hospital, got {num_hospitals}")
    if min_samples < 1:
        raise PartitionError(f"min_samples must be at least 1, got {min_samples}")
    if num_hospitals * min_samples > num_samples:
        raise PartitionError(
            f"{num_samples} records cannot give {num_hospitals} hospitals "
            f"{min_samples} records each"
        )


def hospital_name(index: int) -> str:
    """The consortium's name for the hospital at ``index`` (0-based): ``hospital_1``..."""
    return f"hospital_{index + 1}"


def federated_breast_cancer(
    num_hospitals: int = 5,
    partition: Literal["iid", "dirichlet"] = "iid",
    alpha: float = 0.5,
    seed: int = DEFAULT_SEED,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> FederatedDataset:
    """The breast-cancer training split shared across ``num_hospitals`` hospitals.

    The test split depends only on ``seed`` and ``test_fraction``, never on how
    the training split is partitioned, so every experiment is scored on the
    same patients.
    """
    train, test = load_split(seed, test_fraction)
    if partition == "iid":
        shares = partition_iid(train.num_samples, num_hospitals, seed, min_samples)
    elif partition == "dirichlet":
        shares = partition_dirichlet(train.labels.numpy(), num_hospitals, alpha, seed, min_samples)
    else:
        raise PartitionError(f"unknown partition {partition!r}; use 'iid' or 'dirichlet'")
    hospitals = tuple(
        HospitalData(hospital_name(i), train.subset(share)) for i, share in enumerate(shares)
    )
    return FederatedDataset(hospitals=hospitals, train=train, test=test)


def held_out_share(index: int, num_hospitals: int, seed: int = DEFAULT_SEED) -> Dataset:
    """Hospital ``index``'s (0-based) validation split for the bundled data: its share of the held-out
    records cut ``num_hospitals`` ways (records no hospital trains on), standardised as the training split."""
    if not 0 <= index < num_hospitals:
        raise PartitionError(f"share {index + 1} of {num_hospitals} does not exist")
    test = load_split(seed)[1]
    return test.subset(partition_iid(test.num_samples, num_hospitals, seed)[index])
