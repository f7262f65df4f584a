import pytest
import torch

from fl.compression import (
    CompressedTensor,
    CompressionConfig,
    ErrorFeedbackCompressor,
    compress_tensor,
    compressed_size,
    decompress,
)

TOPK = CompressionConfig(top_k_ratio=0.1)
INT8 = CompressionConfig(quantize_8bit=True)
BOTH = CompressionConfig(top_k_ratio=0.1, quantize_8bit=True)


def update(seed, shape=(20, 50)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_top_k_keeps_exactly_the_largest_entries():
    tensor = update(0)
    compressed = compress_tensor(tensor, TOPK)
    assert compressed.indices.numel() == 100 and compressed.values.dtype == torch.float32
    decoded = compressed.decode()
    kept = decoded != 0
    assert int(kept.sum()) == 100
    assert torch.equal(decoded[kept], tensor[kept])
    assert tensor[kept].abs().min() >= tensor[~kept].abs().max()
    assert compressed.num_bytes == 100 * 4 + 100 * 4


def test_top_k_ties_are_broken_by_position_deterministically():
    compressed = compress_tensor(torch.ones(10), CompressionConfig(top_k_ratio=0.3))
    assert compressed.indices.tolist() == [0, 1, 2]


def test_int8_round_trip_errs_by_at_most_half_a_step():
    tensor = update(1)
    compressed = compress_tensor(tensor, INT8)
    assert compressed.values.dtype == torch.int8 and compressed.indices is None
    step = float(tensor.abs().max()) / 127
    assert (compressed.decode() - tensor).abs().max() <= step / 2 + 1e-6
    assert compressed.num_bytes == tensor.numel() + 4
    zeros = compress_tensor(torch.zeros(5), INT8)
    assert torch.equal(zeros.decode(), torch.zeros(5))


def test_top_k_with_int8_shrinks_uploads_about_eight_fold():
    tensors = {"a": update(2), "b": update(3, (7,))}
    compressed = {name: compress_tensor(t, BOTH) for name, t in tensors.items()}
    raw = sum(t.numel() * 4 for t in tensors.values())
    assert compressed_size(compressed) < raw / 7
    decoded = decompress(compressed)
    assert {name: t.shape for name, t in decoded.items()} == {name: t.shape for name, t in tensors.items()}
    full = {name: compress_tensor(t, CompressionConfig(top_k_ratio=1.0)) for name, t in tensors.items()}
    assert all(torch.equal(decompress(full)[name], tensors[name]) for name in tensors)


@pytest.mark.parametrize("config", [TOPK, INT8, BOTH], ids=["topk", "int8", "topk+int8"])
def test_error_feedback_makes_the_sent_total_converge_to_the_true_total(config):
    rounds = 200
    compressor = ErrorFeedbackCompressor(config)
    without_feedback = torch.zeros(1000)
    true_total = torch.zeros(1000)
    sent_total = torch.zeros(1000)
    for r in range(rounds):
        # A persistent direction plus noise, like successive model updates.
        true = 0.01 * torch.linspace(-1, 1, 1000) + 0.01 * update(r, (1000,))
        true_total += true
        sent_total += decompress(compressor.compress({"w": true}))["w"]
        without_feedback += compress_tensor(true, config).decode()
    # With feedback the gap is exactly the last residual, which stays bounded...
    gap = (true_total - sent_total).norm()
    assert torch.allclose(true_total - sent_total, compressor.residual["w"], atol=1e-4)
    # ...so relative to the true total it shrinks, while without feedback it does not.
    assert gap / true_total.norm() < 0.2
    assert (true_total - without_feedback).norm() > 2 * gap


def test_error_feedback_rejects_changing_layouts_without_losing_its_residual():
    compressor = ErrorFeedbackCompressor(TOPK)
    compressor.compress({"w": update(0), "b": update(1, (3,))})
    residual = {name: t.clone() for name, t in compressor.residual.items()}
    with pytest.raises(ValueError, match="differ from earlier rounds"):
        compressor.compress({"w": update(2)})
    with pytest.raises(ValueError, match=r"'w' has shape \(5,\), earlier rounds had \(20, 50\)"):
        compressor.compress({"w": torch.zeros(5), "b": torch.zeros(3)})
    nan = torch.zeros(3)
    nan[1] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinity"):
        compressor.compress({"w": update(2), "b": nan})
    assert all(torch.equal(compressor.residual[name], residual[name]) for name in residual)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "choose top_k_ratio, quantize_8bit or both"),
        ({"top_k_ratio": 0.0}, r"top_k_ratio must be in \(0, 1\]"),
        ({"top_k_ratio": 1.5}, r"top_k_ratio must be in \(0, 1\]"),
    ],
)
def test_bad_compression_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CompressionConfig(**kwargs)


def test_bad_tensors_and_malformed_messages_are_refused():
    with pytest.raises(ValueError, match="only floating-point"):
        compress_tensor(torch.arange(4), INT8)
    with pytest.raises(ValueError, match="2 values for 3 positions"):
        CompressedTensor(shape=(10,), values=torch.zeros(2), indices=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="indices out of range"):
        CompressedTensor(shape=(10,), values=torch.zeros(1), indices=torch.tensor([10]))
    with pytest.raises(ValueError, match="indices must be strictly increasing"):
        CompressedTensor(shape=(10,), values=torch.tensor([1.0, 2.0]), indices=torch.tensor([3, 3]))
    with pytest.raises(ValueError, match="indices must be strictly increasing"):
        CompressedTensor(shape=(10,), values=torch.tensor([1.0, 2.0]), indices=torch.tensor([4, 3]))
    with pytest.raises(ValueError, match="int8 values need a scale"):
        CompressedTensor(shape=(2,), values=torch.zeros(2, dtype=torch.int8))
    with pytest.raises(ValueError, match="int8 values need a scale"):
        CompressedTensor(shape=(2,), values=torch.zeros(2), scale=0.5)
