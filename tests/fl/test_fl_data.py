import numpy as np
import pytest
import torch

from fl.data import (
    Dataset,
    PartitionError,
    federated_breast_cancer,
    load_split,
    partition_dirichlet,
    partition_iid,
)


def test_split_is_stratified_seeded_and_standardised_on_training_rows_only():
    train, test = load_split(seed=0)
    assert (train.num_samples, test.num_samples) == (426, 143)
    assert train.num_features == test.num_features == 30
    # Training statistics give an exactly standardised training split...
    assert torch.allclose(train.features.mean(0), torch.zeros(30), atol=1e-5)
    assert torch.allclose(train.features.std(0, unbiased=False), torch.ones(30), atol=1e-4)
    # ...and a test split that is not (it would be if test rows leaked into the statistics).
    assert test.features.mean(0).abs().max() > 0.05
    assert abs(float(train.labels.mean()) - float(test.labels.mean())) < 0.01
    again, _ = load_split(seed=0)
    assert torch.equal(train.features, again.features)
    other, _ = load_split(seed=1)
    assert not torch.equal(train.features, other.features)


def test_test_split_does_not_depend_on_the_partition():
    iid = federated_breast_cancer(3, "iid")
    skewed = federated_breast_cancer(5, "dirichlet", alpha=0.3)
    assert torch.equal(iid.test.features, skewed.test.features)
    assert torch.equal(iid.test.labels, skewed.test.labels)


@pytest.mark.parametrize("num_hospitals", [3, 4, 5])
def test_iid_partition_covers_every_record_once_in_near_equal_shares(num_hospitals):
    federated = federated_breast_cancer(num_hospitals, "iid")
    sizes = [h.data.num_samples for h in federated.hospitals]
    assert sum(sizes) == federated.train.num_samples
    assert max(sizes) - min(sizes) <= 1
    assert [h.name for h in federated.hospitals] == [f"hospital_{i + 1}" for i in range(num_hospitals)]
    rows = torch.cat([h.data.features for h in federated.hospitals])
    assert torch.allclose(rows.sum(0), federated.train.features.sum(0), atol=1e-3)
    shares = partition_iid(federated.train.num_samples, num_hospitals, seed=0)
    assert sorted(np.concatenate(shares).tolist()) == list(range(federated.train.num_samples))


def test_dirichlet_partition_skews_labels_and_gives_everyone_a_usable_share():
    labels = load_split()[0].labels.numpy()
    shares = partition_dirichlet(labels, 5, alpha=0.3, seed=0, min_samples=20)
    assert sorted(np.concatenate(shares).tolist()) == list(range(len(labels)))
    assert min(len(s) for s in shares) >= 20
    positive_rates = [labels[s].mean() for s in shares]
    # IID shares would all sit near the overall 63 % positive rate.
    assert max(positive_rates) - min(positive_rates) > 0.4
    assert all(np.array_equal(a, b) for a, b in zip(shares, partition_dirichlet(labels, 5, 0.3, 0, 20)))
    assert not all(np.array_equal(a, b) for a, b in zip(shares, partition_dirichlet(labels, 5, 0.3, 1, 20)))


def test_larger_alpha_gives_less_skew():
    labels = load_split()[0].labels.numpy()

    def spread(alpha):
        rates = [labels[s].mean() for s in partition_dirichlet(labels, 5, alpha, seed=0)]
        return max(rates) - min(rates)

    assert spread(100.0) < 0.15 < spread(0.3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_hospitals": 0}, "at least one hospital"),
        ({"num_hospitals": 30, "min_samples": 20}, "cannot give 30 hospitals"),
        ({"partition": "dirichlet", "alpha": 0.0}, "alpha must be a positive"),
        ({"partition": "dirichlet", "alpha": float("nan")}, "alpha must be a positive"),
        ({"partition": "dirichlet", "min_samples": 0}, "min_samples must be at least 1"),
        # Tiny alpha puts each class at one hospital: three hospitals stay empty.
        ({"partition": "dirichlet", "alpha": 1e-4, "min_samples": 20}, "no Dirichlet"),
        ({"partition": "shards"}, "unknown partition"),
    ],
)
def test_impossible_partitions_are_refused(kwargs, message):
    with pytest.raises(PartitionError, match=message):
        federated_breast_cancer(**kwargs)


def test_bad_test_fraction_and_malformed_datasets_are_refused():
    with pytest.raises(ValueError, match="test_fraction"):
        load_split(test_fraction=1.0)
    with pytest.raises(ValueError, match="2 feature rows but 3 labels"):
        Dataset(torch.zeros(2, 4), torch.zeros(3))
    with pytest.raises(ValueError, match="must be at least 2-D"):
        Dataset(torch.zeros(4), torch.zeros(4))
    with pytest.raises(PartitionError, match="1-D"):
        partition_dirichlet(np.zeros((4, 2)), 2, 1.0, min_samples=1)
