"""Content-addressed safetensors artifacts: canonical bytes, digest checks, no unpickling."""

import hashlib
import io
import subprocess
import sys
import textwrap

import pytest
import safetensors
import safetensors.torch
import torch

from fl.aggregation import ClientModel, create_aggregator
from fl.artifacts import (
    ArtifactError,
    artifact_digest,
    decode_artifact,
    decode_client_model,
    encode_artifact,
    encode_client_model,
    load_artifact,
    save_artifact,
)

TENSORS_CODE = """
import torch
TENSORS = {
    "layer.weight": torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7,
    "layer.bias": torch.tensor([1.5, -2.25], dtype=torch.float64),
    "bn.num_batches_tracked": torch.tensor(42),
    "half": torch.tensor([0.5, 1.0], dtype=torch.bfloat16),
    "empty": torch.zeros(0, 3),
    "mask": torch.tensor([True, False]),
    "int8": torch.tensor([-1, 2], dtype=torch.int8),
}
METADATA = {f"key{i}": str(i * i) for i in range(30)}
"""
namespace: dict = {}
exec(TENSORS_CODE, namespace)
TENSORS, METADATA = namespace["TENSORS"], namespace["METADATA"]


def test_round_trip_keeps_tensors_and_metadata():
    data = encode_artifact(TENSORS, METADATA)
    artifact = decode_artifact(data, artifact_digest(data))
    assert artifact.metadata == METADATA
    assert artifact.digest == hashlib.sha256(data).hexdigest()
    assert set(artifact.tensors) == set(TENSORS)
    for name, tensor in TENSORS.items():
        assert artifact.tensors[name].dtype == tensor.dtype and torch.equal(artifact.tensors[name], tensor)


def test_bytes_are_standard_safetensors():
    data = encode_artifact(TENSORS, METADATA)
    loaded = safetensors.torch.load(data)
    assert all(torch.equal(loaded[name], tensor) for name, tensor in TENSORS.items())


def test_encoding_ignores_insertion_order():
    reordered_tensors = dict(reversed(list(TENSORS.items())))
    reordered_metadata = dict(reversed(list(METADATA.items())))
    assert encode_artifact(TENSORS, METADATA) == encode_artifact(reordered_tensors, reordered_metadata)


def test_encoding_is_byte_identical_across_processes():
    """safetensors.torch.save orders metadata by a per-process hash seed; the canonical encoder does not."""
    script = TENSORS_CODE + textwrap.dedent(
        """
        from fl.artifacts import artifact_digest, encode_artifact
        from safetensors.torch import save
        import hashlib
        print(artifact_digest(encode_artifact(TENSORS, METADATA)), hashlib.sha256(save(TENSORS, METADATA)).hexdigest())
        """
    )
    runs = [
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
        for _ in range(3)
    ]
    ours = {run[0] for run in runs}
    assert ours == {artifact_digest(encode_artifact(TENSORS, METADATA))}
    # The library's own writer is not stable across processes: the reason the encoder exists.
    assert len({run[1] for run in runs}) > 1


def test_non_contiguous_tensors_are_stored_by_value():
    base = torch.arange(12.0).reshape(3, 4)
    artifact = decode_artifact(encode_artifact({"t": base.t(), "s": base[:, 1]}))
    assert torch.equal(artifact.tensors["t"], base.t()) and torch.equal(artifact.tensors["s"], base[:, 1])


def test_digest_mismatch_is_refused():
    data = encode_artifact(TENSORS, METADATA)
    tampered = bytearray(data)
    tampered[-1] ^= 1
    with pytest.raises(ArtifactError, match=f"digest mismatch: expected {artifact_digest(data)}"):
        decode_artifact(bytes(tampered), expected_digest=artifact_digest(data))


@pytest.mark.parametrize("digest", ["abc", "A" * 64, "g" * 64, 123])
def test_malformed_digest_is_refused(digest):
    with pytest.raises(ArtifactError, match="a digest is 64 lowercase hex characters"):
        decode_artifact(encode_artifact(TENSORS), expected_digest=digest)


@pytest.mark.parametrize(
    "data,message",
    [
        (b"\x01\x02", "shorter than its header length field"),
        ((10**9).to_bytes(8, "little") + b"{}", "header length exceeds the data"),
        ((8).to_bytes(8, "little") + b"not json", "not a safetensors artifact"),
        ((8).to_bytes(8, "little") + b"[1,2,3] ", "not a safetensors artifact"),
        # A hostile update nested past any stack: refused, never a crash of the reader.
        ((400_002).to_bytes(8, "little") + b"{" + b"[" * 200_000 + b"]" * 200_000 + b"}", "not a safetensors artifact"),
        ((400_024).to_bytes(8, "little") + b'{"__metadata__":{"a":' + b"[" * 200_000 + b"]" * 200_000 + b"}} ",
         "not a safetensors artifact"),
    ],
)
def test_malformed_bytes_are_refused(data, message):
    with pytest.raises(ArtifactError, match=message):
        decode_artifact(data)


def test_offsets_outside_the_data_are_refused():
    header = b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}'
    data = len(header).to_bytes(8, "little") + header + b"\0" * 8
    with pytest.raises(ArtifactError, match="not a safetensors artifact"):
        decode_artifact(data)


@pytest.mark.parametrize(
    "tensors,metadata,message",
    [
        ({"w": [1.0]}, None, "'w' is a list, expected a torch.Tensor"),
        ({"w": torch.ones(2, dtype=torch.complex64)}, None, "has dtype torch.complex64, which artifacts cannot store"),
        ({"__metadata__": torch.ones(1)}, None, "'__metadata__' is reserved"),
        ({"w": torch.ones(1)}, {"round": 3}, "metadata must map strings to strings"),
    ],
)
def test_bad_encode_input_is_refused(tensors, metadata, message):
    with pytest.raises(ArtifactError, match=message):
        encode_artifact(tensors, metadata)


def test_save_and_load_by_digest(tmp_path):
    digest = save_artifact(tmp_path / "store", TENSORS, METADATA)
    path = tmp_path / "store" / f"{digest}.safetensors"
    assert artifact_digest(path.read_bytes()) == digest
    assert save_artifact(tmp_path / "store", TENSORS, METADATA) == digest
    assert [p.name for p in (tmp_path / "store").iterdir()] == [path.name]  # no partial files left
    artifact = load_artifact(tmp_path / "store", digest)
    assert artifact.metadata == METADATA and torch.equal(artifact.tensors["layer.weight"], TENSORS["layer.weight"])


def test_load_refuses_a_tampered_or_missing_file(tmp_path):
    digest = save_artifact(tmp_path, {"w": torch.ones(4)})
    path = tmp_path / f"{digest}.safetensors"
    path.write_bytes(path.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ArtifactError, match="digest mismatch"):
        load_artifact(tmp_path, digest)
    with pytest.raises(ArtifactError, match=f"no artifact {'0' * 64}"):
        load_artifact(tmp_path, "0" * 64)


def test_a_pickle_is_never_unpickled(tmp_path):
    """A torch.save file stored under its own digest is refused as not safetensors, not loaded."""

    class Trap:
        def __reduce__(self):
            return (pytest.fail, ("unpickled!",))

    buffer = io.BytesIO()
    torch.save({"w": torch.ones(2), "trap": Trap()}, buffer)
    data = buffer.getvalue()
    digest = artifact_digest(data)
    (tmp_path / f"{digest}.safetensors").write_bytes(data)
    with pytest.raises(ArtifactError, match="not a safetensors artifact"):
        load_artifact(tmp_path, digest)


def test_client_update_round_trip():
    model = ClientModel("hospital_1", {"w": torch.randn(3, 2)}, 120, training_loss=0.1 + 0.2, training_accuracy=0.93)
    data = encode_client_model(model, round_number=7)
    artifact = decode_artifact(data)
    assert artifact.metadata == {
        "kind": "client_update",
        "round": "7",
        "client_id": "hospital_1",
        "data_samples": "120",
        "training_loss": repr(0.1 + 0.2),
        "training_accuracy": "0.93",
    }
    decoded, round_number = decode_client_model(data, artifact_digest(data))
    assert round_number == 7
    assert decoded.client_id == "hospital_1" and decoded.data_samples == 120
    assert decoded.training_loss == 0.1 + 0.2 and decoded.training_accuracy == 0.93
    assert torch.equal(decoded.parameters["w"], model.parameters["w"])
    bare = decode_client_model(encode_client_model(ClientModel("h", {"w": torch.ones(1)}, 1), 0))[0]
    assert bare.training_loss is None and bare.training_accuracy is None


@pytest.mark.parametrize(
    "metadata,message",
    [
        ({"kind": "global_model"}, "artifact kind is 'global_model', expected 'client_update'"),
        ({"kind": "client_update", "round": "1", "client_id": "h"}, "client update metadata lacks 'data_samples'"),
        ({"kind": "client_update", "round": "x", "client_id": "h", "data_samples": "1"}, "metadata is malformed"),
        ({"kind": "client_update", "round": "1", "client_id": "h", "data_samples": "0"}, "data_samples must be positive"),
        ({"kind": "client_update", "round": "-1", "client_id": "h", "data_samples": "1"}, "round -1 is negative"),
    ],
)
def test_malformed_client_update_is_refused(metadata, message):
    with pytest.raises(ArtifactError, match=message):
        decode_client_model(encode_artifact({"w": torch.ones(1)}, metadata))


@pytest.mark.parametrize("round_number", [-1, True, "3"])
def test_client_update_round_must_be_a_non_negative_int(round_number):
    with pytest.raises(ArtifactError, match="round must be a non-negative int"):
        encode_client_model(ClientModel("h", {"w": torch.ones(1)}, 1), round_number)


def test_fedadam_state_survives_a_restart_through_an_artifact(tmp_path):
    generator = torch.Generator().manual_seed(9)
    rounds = [[ClientModel(f"c{i}", {"w": torch.randn(16, generator=generator)}, 1 + i) for i in range(3)] for _ in range(3)]
    config = {"learning_rate": 0.05}

    uninterrupted = create_aggregator("fedadam", config)
    model = {"w": torch.zeros(16)}
    for clients in rounds:
        model = uninterrupted.aggregate(clients, global_model=model).parameters

    before = create_aggregator("fedadam", config)
    restarted_model = {"w": torch.zeros(16)}
    for clients in rounds[:2]:
        restarted_model = before.aggregate(clients, global_model=restarted_model).parameters
    state_digest = save_artifact(tmp_path, before.state_dict(), {"kind": "fedadam_state", "round": "2"})
    model_digest = save_artifact(tmp_path, restarted_model, {"kind": "global_model", "round": "2"})
    assert save_artifact(tmp_path, before.state_dict(), {"kind": "fedadam_state", "round": "2"}) == state_digest

    after = create_aggregator("fedadam", config)
    after.load_state_dict(load_artifact(tmp_path, state_digest).tensors)
    resumed = after.aggregate(rounds[2], global_model=load_artifact(tmp_path, model_digest).tensors)
    assert resumed.metadata["step"] == 3
    assert torch.equal(resumed.parameters["w"], model["w"])
