"""The same updates give a bit-identical aggregate in any arrival order and any thread count."""

import json
import subprocess
import sys
import textwrap

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fl.aggregation import ClientModel, create_aggregator
from fl.aggregation.kernels import CHUNK
from fl.artifacts import artifact_digest, decode_client_model, encode_artifact, encode_client_model

RULES = [
    ("fedavg", None),
    ("fedprox", None),
    ("weighted", {"weight_strategy": "loss"}),
    ("trimmed_mean", {"trim_ratio": 0.25}),
    ("median", None),
    ("krum", {"f": 1, "m": 3}),
    ("fedadam", {"learning_rate": 0.01}),
]


def make_clients(seed: int, count: int, size: int) -> list[ClientModel]:
    """Values of very different magnitudes, so summation order shows in the low bits."""
    generator = torch.Generator().manual_seed(seed)
    models = []
    for index in range(count):
        scale = 10.0 ** torch.randint(-6, 7, (size,), generator=generator)
        parameters = {
            "w": torch.randn(size, generator=generator) * scale,
            "h": torch.randn(3, 5, generator=generator).to(torch.bfloat16),
            "n": torch.randint(0, 100, (), generator=generator),
        }
        loss = float(torch.rand((), generator=generator)) + 0.1
        models.append(ClientModel(f"hospital_{index}", parameters, 1 + 13 * index, training_loss=loss))
    return models


def global_of(models: list[ClientModel]) -> dict[str, torch.Tensor]:
    return {name: torch.zeros_like(tensor) for name, tensor in models[0].parameters.items()}


def aggregate(rule, config, models):
    return create_aggregator(rule, config).aggregate(models, global_model=global_of(models)).parameters


def digest(parameters) -> str:
    return artifact_digest(encode_artifact(parameters))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), count=st.integers(5, 9), size=st.integers(1, 300), data=st.data())
def test_any_arrival_order_gives_identical_bits(seed, count, size, data):
    models = make_clients(seed, count, size)
    shuffled = data.draw(st.permutations(models))
    for rule, config in RULES:
        first, second = aggregate(rule, config, models), aggregate(rule, config, shuffled)
        assert digest(first) == digest(second), rule


def test_order_invariance_across_chunk_boundaries():
    models = make_clients(11, 6, 2 * CHUNK + 77)
    reversed_models = models[::-1]
    for rule, config in RULES:
        assert digest(aggregate(rule, config, models)) == digest(aggregate(rule, config, reversed_models)), rule


def test_thread_count_does_not_change_the_bits(tmp_path):
    """A subprocess with one intra-op thread and no worker threads reproduces this process's digests."""
    models = make_clients(5, 6, 3 * CHUNK + 5)
    paths = []
    for model in models:
        path = tmp_path / f"{model.client_id}.safetensors"
        path.write_bytes(encode_client_model(model, round_number=1))
        paths.append(str(path))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # here: two intra-op threads and two chunk workers
    try:
        here = {rule: digest(aggregate(rule, config, models)) for rule, config in RULES}
    finally:
        torch.set_num_threads(threads)
    script = textwrap.dedent(
        f"""
        import json, sys, torch
        torch.set_num_threads(1)
        from pathlib import Path
        from fl.artifacts import decode_client_model
        sys.path.insert(0, {str(__file__.rsplit('/', 1)[0])!r})
        from test_fl_aggregation_determinism import RULES, aggregate, digest
        models = [decode_client_model(Path(p).read_bytes())[0] for p in {paths!r}]
        print(json.dumps({{rule: digest(aggregate(rule, config, models)) for rule, config in RULES}}))
        """
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == here


def test_artifact_round_trip_keeps_the_aggregate():
    models = make_clients(3, 5, 100)
    decoded = [decode_client_model(encode_client_model(model, 2))[0] for model in models]
    for rule, config in RULES:
        assert digest(aggregate(rule, config, models)) == digest(aggregate(rule, config, decoded)), rule
