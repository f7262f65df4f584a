"""One round loop: the simulation's hospital and coordinator steps (:mod:`fl.round` over an in-memory
board and store) and the chain path's nodes (hospital nodes and coordinator on anvil and the real
store) make the same update bytes and commit the same aggregate, bit for bit, over two rounds of
top-k/int8 updates with error feedback, a robust rule and a sign-flipping hospital. The chain's
coordinator screens with that very step, each update once across its polls."""

import hashlib

import torch

from fl.aggregation import ClientModel, create_aggregator
from fl.artifacts import encode_client_model
from fl.client import HospitalClient
from fl.data import federated_breast_cancer
from fl.models import ModelSpec
from fl.round import (
    CoordinatorStep,
    HospitalStep,
    InMemoryBoard,
    InMemoryStore,
    PostedUpdate,
    ScreeningMemo,
    combine,
    poison,
)
from offchain.rounds.board import ChainRound
from offchain.rounds.client import ArtifactRef
from offchain.rounds.coordinator import Coordinator
from offchain.rounds.sealed import UPDATE, seal
from offchain.rounds.verifier import verify_study
from .test_compression_chain import BOTH, stored_update

RULE, PARAMS, SCALE = "trimmed_mean", {"trim_ratio": 0.2}, 10.0


def test_simulation_steps_and_chain_nodes_make_the_same_updates_and_aggregate(five_hospitals):
    consortium = five_hospitals
    study = consortium.study(aggregator=RULE, params=PARAMS, compression=BOTH)
    nodes = consortium.nodes(study)
    shares = federated_breast_cancer(len(nodes)).hospitals
    # Seeded training, the same function on both paths, so that the updates can be compared.
    trainers = [HospitalClient(share, ModelSpec("logistic", 30), nodes[0].study.config.training, seed=7).train
                for share in shares]
    attacker = 0
    for index, (node, train) in enumerate(zip(nodes, trainers)):
        scale = SCALE if index == attacker else None
        node._train = (lambda number, base, train=train, scale=scale:
                       train(base, number) if scale is None else poison(base, train(base, number), scale))
    simulated = [HospitalStep(node.member.address, train, BOTH, SCALE if index == attacker else None)
                 for index, (node, train) in enumerate(zip(nodes, trainers))]
    coordinator = Coordinator(consortium.coordinator, study, target_rounds=2)
    simulated_coordinator = CoordinatorStep(create_aggregator(RULE, PARAMS), BOTH)
    board, store = InMemoryBoard(), InMemoryStore()
    view = consortium.auditor.study(study)
    # The coordinator's screening is the step's: every update it checks goes through CoordinatorStep.check.
    checked = []
    step = coordinator.aggregation.step
    step.check = lambda *args, check=step.check: (checked.append(args[2].participant), check(*args))[1]
    assert coordinator.step().action == "opened"
    for number in (1, 2):  # round 1's commit opens round 2
        for node in nodes[:-1]:
            assert node.step().action == "submitted"
        assert coordinator.step().action == "waiting"  # one update missing, the deadline far
        assert sorted(checked) == sorted(node.member.address for node in nodes[:-1]), f"round {number}"
        assert nodes[-1].step().action == "submitted"
        assert coordinator.step().action == "committed"
        # The second poll checked only the update that arrived since the first.
        assert checked[len(nodes) - 1:] == [nodes[-1].member.address], f"round {number}"
        checked.clear()
        base = view.model(number - 1)
        on_chain = {update.participant: stored_update(consortium, study, number, update)
                    for update in consortium.auditor.rounds.updates(study, number)}
        for hospital in simulated:
            posted = hospital.step(number, base, board, store)
            assert store.get(posted.ref) == on_chain[hospital.client_id], f"round {number}: {hospital.client_id}"
        committed = view.model(number)
        aggregate = simulated_coordinator.step(number, base, board, store).parameters
        assert aggregate.keys() == committed.keys()
        assert all(torch.equal(aggregate[name], committed[name]) for name in committed), f"round {number}"
        # The comparison can tell aggregates apart: FedAvg of the same updates is another model.
        fedavg = combine(create_aggregator("fedavg", {}),
                         simulated_coordinator.screen(number, base, board, store).accepted, base).parameters
        assert not all(torch.equal(fedavg[name], committed[name]) for name in committed)
    # The chain's round is a board and store too: the coordinator's step reads the same updates from it.
    chain = ChainRound(view, 2)
    from_chain = simulated_coordinator.screen(2, view.model(1), chain, chain)
    in_memory = simulated_coordinator.screen(2, view.model(1), board, store)
    assert from_chain.rejected == [] and len(from_chain.accepted) == len(nodes)
    assert [(c.client_id.lower(), c.data_samples) for c in from_chain.accepted] == \
        [(c.client_id.lower(), c.data_samples) for c in in_memory.accepted]
    assert all(torch.equal(a.parameters[n], b.parameters[n])
               for a, b in zip(from_chain.accepted, in_memory.accepted) for n in a.parameters)
    # A round that no longer takes an update: the node reports the refusal, and its error feedback
    # stays where the last update the chain took left it.
    node = nodes[1]
    residual = {name: tensor.clone() for name, tensor in node.compressor.compressor.residual.items()}
    refused = node._train_and_submit(2, node.member.rounds.round_for(study, 2, node.member.address))
    assert refused.action == "waiting" and refused.detail in ("AlreadySubmitted", "RoundNotOpen")
    assert residual and all(torch.equal(node.compressor.compressor.residual[n], residual[n]) for n in residual)


def test_the_simulated_coordinator_rejects_a_malformed_update_as_the_chain_does():
    board, store = InMemoryBoard(), InMemoryStore()
    base = {"w": torch.zeros(3)}
    board.post(1, PostedUpdate("a", store.put(b"not safetensors"), 5))
    screening = CoordinatorStep(create_aggregator("fedavg", {}), BOTH).screen(1, base, board, store)
    assert screening.accepted == [] and [who for who, _ in screening.rejected] == ["a"]


def test_the_coordinator_rejects_an_update_sealed_without_an_auditors_key(five_hospitals):
    """Well formed, but an auditor could not open it: the chain's store makes it malformed for the
    step's screening, the commit records the rejection, and the verifier agrees."""
    consortium = five_hospitals
    study = consortium.study(hospitals=3, min_updates=2)
    logged = []
    coordinator = Coordinator(consortium.coordinator, study, target_rounds=1, log=logged.append)
    assert coordinator.step().action == "opened"
    bad = consortium.hospitals[0]
    view = bad.study(study)
    plaintext = encode_client_model(ClientModel(bad.address, view.model(0), 10), 1)
    readers = bad.public_keys([view.coordinator])  # not the auditor's
    cid = seal(bad.store, plaintext, readers, view.place(1, UPDATE, bad.address))
    bad.rounds.submit_update(study, 1, ArtifactRef(cid, hashlib.sha256(plaintext).digest()), 10)
    for node in consortium.nodes(study, 3)[1:]:
        assert node.step().action == "submitted"
    assert coordinator.step().action == "committed"
    assert consortium.auditor.rounds.round(study, 1).rejected_submitters == (bad.address,)
    assert any(bad.address in line and f"carries no key for {consortium.auditor.address}" in line
               for line in logged), logged
    assert [verdict.verified for verdict in verify_study(consortium.auditor, study)] == [True]


def test_the_coordinator_step_screens_incrementally_in_parallel_refuses_and_replays():
    """The hooks the chain's coordinator uses, on the in-memory board: a memo (each update checked
    once across polls, again if its bytes change), two fetch threads, updates the round refuses
    unread, and a stateful aggregator's missed rounds replayed in order."""
    base = {"w": torch.zeros(3)}
    board, store = InMemoryBoard(), InMemoryStore()
    for who, value in (("a", 1.0), ("b", 2.0)):
        model = ClientModel(who, {"w": torch.full((3,), value)}, 4)
        board.post(1, PostedUpdate(who, store.put(encode_client_model(model, 1)), 4))
    coordinator = CoordinatorStep(create_aggregator("fedavg", {}), threads=2)
    memo = ScreeningMemo()
    first = coordinator.screen(1, base, board, store, memo)
    assert [c.client_id for c in first.accepted] == ["a", "b"] and sorted(first.checked) == ["a", "b"]
    board.post(1, PostedUpdate("c", store.put(b"not safetensors"), 4))
    board.post(1, PostedUpdate("d", store.put(encode_client_model(ClientModel("d", base, 4), 1)), 4))
    second = coordinator.screen(1, base, board, store, memo, refuse=lambda posted: {"d": "its DP declaration"})
    assert second.checked == ("c", "d")  # a and b come from the memo
    assert [c.client_id for c in second.accepted] == ["a", "b"]
    assert [who for who, _ in second.rejected] == ["c", "d"] and second.rejected[1][1] == "its DP declaration"
    assert [u.participant for u in second.posted] == ["a", "b", "c", "d"]
    assert torch.equal(second.accepted[1].parameters["w"], torch.full((3,), 2.0))
    memo.forget_through(1)
    assert len(coordinator.screen(1, base, board, store, memo).checked) == 4
    # FedAdam's moments: a step started at round 3 replays rounds 1 and 2 first, and not again.
    adam = CoordinatorStep(create_aggregator("fedadam", {}))
    replayed = []
    adam.catch_up(3, replayed.append)
    adam.catch_up(3, replayed.append)
    assert replayed == [1, 2] and adam.applied_through == 2
    adam.aggregate(3, first.accepted, base)
    adam.catch_up(5, replayed.append)
    assert replayed == [1, 2, 4]
    fedavg = CoordinatorStep(create_aggregator("fedavg", {}))
    fedavg.catch_up(3, replayed.append)  # stateless: nothing to replay
    assert replayed == [1, 2, 4] and fedavg.applied_through == 2
