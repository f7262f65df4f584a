"""Which aggregators run under secure aggregation (``Aggregator.sum_based``), and that a sum-based one gets
from the clients' weighted mean exactly what it gets from the clients."""

import pytest
import torch

from fl.aggregation import AggregationError, ClientModel, create_aggregator, sum_based_aggregators


def clients():
    generator = torch.Generator().manual_seed(7)
    return [ClientModel(f"h{i}", {"w": torch.randn(4, 3, generator=generator), "b": torch.randn(3, generator=generator)},
                        data_samples=samples) for i, samples in enumerate((10, 25, 7))]


def weighted_mean(models):
    total = sum(model.data_samples for model in models)
    return {name: sum(model.parameters[name].double() * model.data_samples for model in models) / total
            for name in models[0].parameters}, total


def test_sum_based_aggregators_are_the_weighted_mean_rules():
    assert sum_based_aggregators() == ["fedadam", "fedavg", "fedprox"]
    for name in ("median", "krum", "trimmed_mean", "weighted"):
        assert not create_aggregator(name).sum_based


@pytest.mark.parametrize("name, config", [("fedavg", {}), ("fedprox", {}), ("fedadam", {"learning_rate": 0.05})])
def test_the_weighted_mean_gives_what_the_clients_give(name, config):
    models = clients()
    base = {"w": torch.zeros(4, 3), "b": torch.ones(3)}
    mean, total = weighted_mean(models)
    from_clients = create_aggregator(name, config).aggregate(models, global_model=base).parameters
    from_mean = create_aggregator(name, config).aggregate_mean(
        {key: value.float() for key, value in mean.items()}, total, global_model=base).parameters
    for key in base:
        torch.testing.assert_close(from_mean[key], from_clients[key], rtol=0, atol=1e-6)


def test_a_rule_that_needs_each_client_refuses_the_mean():
    mean, total = weighted_mean(clients())
    with pytest.raises(AggregationError, match="median needs each client's model"):
        create_aggregator("median").aggregate_mean({k: v.float() for k, v in mean.items()}, total)
