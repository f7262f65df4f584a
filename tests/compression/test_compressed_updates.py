"""Compressed updates as stored (safetensors, never pickle), the node's error-feedback residual, and the
study config's compression and aggregator rules, without a chain."""

import io
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fl.aggregation import ClientModel
from fl.artifacts import ArtifactError, decode_artifact, encode_artifact
from fl.compression import (
    CompressionConfig,
    ErrorFeedbackCompressor,
    compress_tensor,
    decode_compressed_update,
    encode_compressed_update,
    kept_count,
)
from fl.models import ModelSpec
from offchain.rounds.compression import UpdateCompressor, decode_update
from offchain.rounds.config import SecureAggregationSettings, StudyConfig
from offchain.rounds.errors import RoundsError, StudyConfigError

TOPK = CompressionConfig(top_k_ratio=0.1)
INT8 = CompressionConfig(quantize_8bit=True)
BOTH = CompressionConfig(top_k_ratio=0.1, quantize_8bit=True)
PARTICIPANTS = tuple("0x" + f"{i + 1:040x}" for i in range(5))


def model(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {"0.weight": torch.randn(16, 30, generator=generator), "0.bias": torch.randn(16, generator=generator),
            "2.weight": torch.randn(1, 16, generator=generator), "2.bias": torch.randn(1, generator=generator)}


def shapes(state) -> dict[str, tuple[int, ...]]:
    return {name: tuple(tensor.shape) for name, tensor in state.items()}


@pytest.mark.parametrize("config", [TOPK, INT8, BOTH], ids=["topk", "int8", "both"])
def test_stored_update_decodes_to_what_was_compressed(config):
    update = model(1)
    compressed = ErrorFeedbackCompressor(config).compress(update)
    data = encode_compressed_update(compressed, 4)
    decoded, round_number = decode_compressed_update(data, shapes(update), config)
    assert round_number == 4
    for name in update:
        assert torch.equal(decoded[name].decode(), compressed[name].decode())
    tensors = decode_artifact(data).tensors
    assert set(tensors) == {"values"} | ({"positions"} if config.sparse else set()) | (
        {"scales"} if config.quantize_8bit else set())


def test_top_k_with_int8_stores_about_a_sixteenth_of_the_floats():
    update = model(2)
    floats = sum(t.numel() for t in update.values()) * 4
    data = encode_compressed_update(ErrorFeedbackCompressor(BOTH).compress(update), 1)
    payload = len(data) - 8 - int.from_bytes(data[:8], "little")
    # 48 + 2 + 2 + 1 int8 codes, a 65-byte bitmap of 513 positions, 4 float32 scales.
    assert payload == 53 + 65 + 16
    assert payload < floats / 15


def test_kept_count_is_the_ratio_of_entries_rounded_up_at_least_one():
    assert kept_count(30, TOPK) == 3  # 0.1 * 30 is 3.0000000000000004 in floating point
    assert kept_count(1, TOPK) == 1 and kept_count(31, TOPK) == 4 and kept_count(30, INT8) == 30


def as_trained(parameters):
    """A node's trained model, as its update encoder takes it."""
    return ClientModel(client_id="0xhospital", parameters=parameters, data_samples=1)


def test_decode_update_is_base_plus_the_update():
    base, trained = model(3), model(4)
    node = UpdateCompressor(INT8)
    data = node.encode(2, base, as_trained(trained))
    parameters, round_number = decode_update(data, base, INT8)
    assert round_number == 2 and parameters.keys() == base.keys()
    for name in base:
        step = float((trained[name] - base[name]).abs().max()) / 127
        assert (parameters[name] - trained[name]).abs().max() <= step / 2 + 1e-5


def _tampered(data: bytes, change) -> bytes:
    artifact = decode_artifact(data)
    tensors, metadata = dict(artifact.tensors), dict(artifact.metadata)
    change(tensors, metadata)
    return encode_artifact(tensors, metadata)


def _set(key, value):
    return lambda tensors, metadata: tensors.__setitem__(key, value)


MALFORMED = {
    "an extra tensor": _set("extra", torch.zeros(1)),
    "values as float32": lambda t, m: t.__setitem__("values", t["values"].float()),
    "one value too many": lambda t, m: t.__setitem__("values", torch.cat([t["values"], t["values"][:1]])),
    "a position too many": lambda t, m: t.__setitem__("positions", t["positions"] | 0xFF),
    "a bit past the model": lambda t, m: t["positions"].__setitem__(-1, t["positions"][-1] | 0x80),
    "a zero scale": lambda t, m: t["scales"].__setitem__(0, 0.0),
    "a NaN scale": lambda t, m: t["scales"].__setitem__(1, float("nan")),
    "the code -128": lambda t, m: t["values"].__setitem__(0, -128),
    "no positions": lambda t, m: t.pop("positions"),
    "another kind": lambda t, m: m.__setitem__("kind", "client_update"),
    "a negative round": lambda t, m: m.__setitem__("round", "-1"),
    "more metadata": lambda t, m: m.__setitem__("client_id", "me"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_compressed_update_is_refused(name):
    update = model(5)
    data = encode_compressed_update(ErrorFeedbackCompressor(BOTH).compress(update), 1)
    with pytest.raises(ArtifactError):
        decode_compressed_update(_tampered(data, MALFORMED[name]), shapes(update), BOTH)


def test_pickle_or_garbage_is_refused_not_unpickled():
    buffer = io.BytesIO()
    torch.save(model(6), buffer)
    for data in (buffer.getvalue(), b"", b"\x00" * 7, b"not safetensors at all"):
        with pytest.raises(ArtifactError):
            decode_compressed_update(data, shapes(model(6)), BOTH)


def test_an_update_for_another_model_is_refused():
    data = encode_compressed_update(ErrorFeedbackCompressor(BOTH).compress(model(7)), 1)
    other = {**shapes(model(7)), "0.weight": (16, 29)}
    with pytest.raises(ArtifactError):
        decode_compressed_update(data, other, BOTH)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=4), st.sampled_from([0.01, 0.1, 0.33, 0.5, 1.0]),
       st.booleans(), st.integers(0, 2**32 - 1))
def test_any_update_round_trips_through_its_stored_form(sizes, ratio, quantize, seed):
    config = CompressionConfig(top_k_ratio=ratio, quantize_8bit=quantize)
    generator = torch.Generator().manual_seed(seed)
    update = {f"t{i}.weight": torch.randn(size, generator=generator) for i, size in enumerate(sizes)}
    compressed = ErrorFeedbackCompressor(config).compress(update)
    decoded, _ = decode_compressed_update(encode_compressed_update(compressed, 0), shapes(update), config)
    for name in update:
        assert torch.equal(decoded[name].decode(), compressed[name].decode())
        assert decoded[name].values.numel() == kept_count(update[name].numel(), config)


def test_the_residual_persists_only_once_the_update_is_sent(tmp_path):
    path = tmp_path / "residual.safetensors"
    base = model(8)
    node = UpdateCompressor(BOTH, path)
    node.encode(1, base, as_trained(model(9)))
    assert not path.exists()  # not on chain yet: nothing carried on
    node.keep()
    saved = UpdateCompressor(BOTH, path).compressor.residual
    assert saved.keys() == base.keys() and all(torch.equal(saved[n], node.compressor.residual[n]) for n in base)
    # A second update never sent leaves the first one's residual in place.
    node.encode(2, base, as_trained(model(10)))
    assert all(torch.equal(UpdateCompressor(BOTH, path).compressor.residual[n], saved[n]) for n in base)


def test_error_feedback_sends_over_rounds_all_but_the_last_residual(tmp_path):
    base = model(11)
    path = tmp_path / "residual.safetensors"
    sent = {name: torch.zeros_like(tensor) for name, tensor in base.items()}
    truth = {name: torch.zeros_like(tensor) for name, tensor in base.items()}
    for number in range(1, 6):
        trained = model(20 + number)
        node = UpdateCompressor(BOTH, path)  # a node restarted every round
        received, _ = decode_update(node.encode(number, base, as_trained(trained)), base, BOTH)
        node.keep()
        for name in base:
            sent[name] += received[name] - base[name]
            truth[name] += trained[name] - base[name]
    residual = UpdateCompressor(BOTH, path).compressor.residual
    for name in base:
        assert torch.allclose(sent[name] + residual[name], truth[name], atol=1e-4)


def test_a_damaged_residual_file_is_refused_with_one_clear_line(tmp_path):
    path = tmp_path / "residual.safetensors"
    path.write_bytes(b"damaged")
    with pytest.raises(RoundsError, match="residual .* is damaged .*delete it") as refused:
        UpdateCompressor(BOTH, path)
    assert "\n" not in str(refused.value)


def test_a_residual_of_another_model_is_refused(tmp_path):
    path = tmp_path / "residual.safetensors"
    node = UpdateCompressor(BOTH, path)
    node.encode(1, model(12), as_trained(model(13)))
    node.keep()
    other = {"0.weight": torch.zeros(1, 30), "0.bias": torch.zeros(1)}
    with pytest.raises(RoundsError, match="cannot compress"):
        UpdateCompressor(BOTH, path).encode(2, other, as_trained(other))


def test_study_config_carries_compression_canonically():
    config = StudyConfig(ModelSpec("mlp", 30), PARTICIPANTS, compression=BOTH)
    data = config.canonical_bytes()
    assert json.loads(data)["compression"] == {"quantize_8bit": True, "top_k_ratio": 0.1}
    assert StudyConfig.from_bytes(data, config.digest()).compression == BOTH
    plain = StudyConfig(ModelSpec("mlp", 30), PARTICIPANTS)
    assert b"compression" not in plain.canonical_bytes()  # configs without it keep their bytes and digests


@pytest.mark.parametrize("document", [{"top_k_ratio": 0.1}, {"top_k_ratio": 2.0, "quantize_8bit": False},
                                      {"top_k_ratio": None, "quantize_8bit": False},
                                      {"top_k_ratio": "0.1", "quantize_8bit": True},
                                      {"top_k_ratio": 0.1, "quantize_8bit": 1}, [0.1, True]])
def test_a_config_with_malformed_compression_is_refused(document):
    good = json.loads(StudyConfig(ModelSpec("mlp", 30), PARTICIPANTS, compression=BOTH).canonical_bytes())
    good["compression"] = document
    data = json.dumps(good, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(StudyConfigError):
        StudyConfig.from_bytes(data)


def test_compression_and_secure_aggregation_are_refused_together():
    with pytest.raises(StudyConfigError, match="compression .* secure aggregation"):
        StudyConfig(ModelSpec("mlp", 30), PARTICIPANTS, compression=BOTH,
                    secure_aggregation=SecureAggregationSettings(3))


@pytest.mark.parametrize("rule", ["median", "trimmed_mean", "krum"])
def test_robust_rules_are_accepted_in_plain_studies_and_refused_in_secure_ones(rule):
    params = {"trim_ratio": 0.2} if rule == "trimmed_mean" else {}
    config = StudyConfig(ModelSpec("logistic", 30), PARTICIPANTS, (), rule, params)
    assert StudyConfig.from_bytes(config.canonical_bytes(), config.digest()).aggregator == rule
    with pytest.raises(StudyConfigError) as refused:
        StudyConfig(ModelSpec("logistic", 30), PARTICIPANTS, (), rule, params,
                    secure_aggregation=SecureAggregationSettings(3))
    message = str(refused.value)
    assert "\n" not in message and rule in message and "fedavg" in message


def test_top_k_int8_on_a_dense_tensor_needs_no_positions():
    compressed = {"w": compress_tensor(torch.arange(8.0), INT8)}
    data = encode_compressed_update(compressed, 0)
    assert set(decode_artifact(data).tensors) == {"values", "scales"}
    assert np.array_equal(decode_compressed_update(data, {"w": (8,)}, INT8)[0]["w"].decode().numpy(),
                          compressed["w"].decode().numpy())
    assert math.isclose(compressed["w"].scale, 7 / 127, rel_tol=1e-6)
