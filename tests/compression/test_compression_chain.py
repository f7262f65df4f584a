"""Compression and robust aggregation through the chain path: the coordinator and hospital nodes of
:mod:`offchain.rounds` stepping in this process on the session's anvil and a real embedded store,
every update sealed and stored, every round re-derived by the auditor."""

import io
import math

import pytest
import torch

from fl.aggregation import ClientModel
from fl.artifacts import decode_artifact, encode_client_model
from fl.compression import COMPRESSED_UPDATE, CompressionConfig, encode_compressed_update, load_residual
from fl.round import poison
from offchain.rounds.compression import residual_path
from offchain.rounds.coordinator import Coordinator
from offchain.rounds.sealed import UPDATE
from offchain.rounds.verifier import verify_study

BOTH = CompressionConfig(top_k_ratio=0.1, quantize_8bit=True)


def verdicts(consortium, study):
    return [(v.round, v.verified, v.failed_check, v.updates) for v in verify_study(consortium.auditor, study)]


def stored_update(consortium, study, round_number, update):
    view = consortium.auditor.study(study)
    return view.open(update.artifact, view.place(round_number, UPDATE, update.participant))


def stored_size(store, cid) -> int:
    return store.cat(cid, io.BytesIO())


def test_compressed_rounds_commit_verify_and_keep_the_residual_across_restarts(five_hospitals, tmp_path):
    consortium = five_hospitals
    study = consortium.study(compression=BOTH, hospitals=3)
    homes = [tmp_path / f"hospital-{i}" for i in range(3)]
    nodes = consortium.nodes(study, 3, homes)
    assert consortium.run_round(study, nodes, 1) == "committed"
    rounds = consortium.auditor.rounds
    key = nodes[0].study_key
    saved = load_residual(residual_path(homes[0], key, consortium.hospitals[0].address))
    assert saved and any(bool(tensor.abs().sum() > 0) for tensor in saved.values())
    # A restarted node carries on from the residual in its home.
    nodes = consortium.nodes(study, 3, homes)
    assert all(torch.equal(nodes[0].compressor.compressor.residual[n], saved[n]) for n in saved)
    assert consortium.run_round(study, nodes, 2) == "committed"
    assert not all(torch.equal(load_residual(residual_path(homes[0], key, consortium.hospitals[0].address))[n],
                               saved[n]) for n in saved)
    assert verdicts(consortium, study) == [(1, True, None, 3), (2, True, None, 3)]
    for update in rounds.updates(study, 2):
        artifact = decode_artifact(stored_update(consortium, study, 2, update))
        assert artifact.metadata == {"kind": COMPRESSED_UPDATE, "round": "2"}
        assert artifact.tensors["values"].dtype == torch.int8
        assert artifact.tensors["values"].numel() == math.ceil(0.1 * 30) + 1  # 3 of 30 weights, the bias


def test_compressed_updates_are_stored_in_fewer_bytes(five_hospitals):
    consortium = five_hospitals
    sizes = {}
    for name, compression in (("plain", None), ("compressed", BOTH)):
        study = consortium.study(compression=compression, hospitals=3, model="mlp")
        assert consortium.run_round(study, consortium.nodes(study, 3), 1) == "committed"
        updates = consortium.auditor.rounds.updates(study, 1)
        sizes[name] = [stored_size(consortium.auditor.store, u.artifact.cid) for u in updates]
        sizes[name + " plaintext"] = [len(stored_update(consortium, study, 1, u)) for u in updates]
    # 513 float32 parameters against 53 int8 codes, a 65-byte bitmap and 4 scales; the seal's keys are the same.
    assert max(sizes["compressed plaintext"]) * 4 < min(sizes["plain plaintext"]), sizes
    assert max(sizes["compressed"]) * 2 < min(sizes["plain"]), sizes


@pytest.mark.parametrize("malformed", ["plain update", "too many kept", "pickle", "other round"])
def test_a_malformed_compressed_update_is_rejected_alike_by_coordinator_and_verifier(five_hospitals, malformed):
    consortium = five_hospitals
    study = consortium.study(compression=BOTH, hospitals=3, min_updates=2)
    coordinator = Coordinator(consortium.coordinator, study, target_rounds=1)
    assert coordinator.step().action == "opened"
    bad = consortium.hospitals[0]
    view = bad.study(study)
    base = view.model(0)
    if malformed == "plain update":
        plaintext = encode_client_model(ClientModel(bad.address, base, 10), 1)
    elif malformed == "too many kept":  # dense values under a top-k study: more bytes than the study allows
        dense = CompressionConfig(quantize_8bit=True)
        from fl.compression import compress_tensor

        plaintext = encode_compressed_update({n: compress_tensor(t, dense) for n, t in base.items()}, 1)
    elif malformed == "pickle":
        buffer = io.BytesIO()
        torch.save(base, buffer)
        plaintext = buffer.getvalue()
    else:
        from fl.compression import ErrorFeedbackCompressor

        plaintext = encode_compressed_update(ErrorFeedbackCompressor(BOTH).compress(base), 7)
    bad.rounds.submit_update(study, 1, view.seal_update(1, plaintext), 10)
    for node in consortium.nodes(study, 3)[1:]:
        assert node.step().action == "submitted"
    assert coordinator.step().action == "committed"
    info = consortium.auditor.rounds.round(study, 1)
    assert info.rejected_submitters == (bad.address,)
    assert verdicts(consortium, study) == [(1, True, None, 2)]


@pytest.mark.parametrize("rule, params", [("median", {}), ("trimmed_mean", {"trim_ratio": 0.2}),
                                          ("krum", {"f": 1, "m": 3})])
def test_robust_rules_on_chain_withstand_a_sign_flipping_hospital_and_verify(five_hospitals, rule, params):
    consortium = five_hospitals
    study = consortium.study(aggregator=rule, params=params)
    coordinator = Coordinator(consortium.coordinator, study, target_rounds=1)
    assert coordinator.step().action == "opened"
    nodes = consortium.nodes(study)
    attacker = nodes[0]
    honest_train = attacker._train
    attacker._train = lambda number, base: poison(base, honest_train(number, base), 10.0)
    for node in nodes:
        assert node.step().action == "submitted"
    assert coordinator.step().action == "committed"
    assert verdicts(consortium, study) == [(1, True, None, 5)]
    aggregate = consortium.auditor.study(study).model(1)
    base = consortium.auditor.study(study).model(0)
    poisoned = poison(base, honest_train(1, base), 10.0).parameters
    # The aggregate stays far closer to the base than the attacker's model.
    distance = lambda a: math.sqrt(sum(float((a[n] - base[n]).pow(2).sum()) for n in base))  # noqa: E731
    assert distance(aggregate) * 3 < distance(poisoned)
