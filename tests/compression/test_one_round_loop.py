"""One round loop: the simulation's hospital and coordinator steps (:mod:`fl.round` over an in-memory
board and store) and the chain path's nodes (hospital nodes and coordinator on anvil and the real
store) make the same update bytes and commit the same aggregate, bit for bit, over two rounds of
top-k/int8 updates with error feedback, a robust rule and a sign-flipping hospital."""

import torch

from fl.aggregation import create_aggregator
from fl.client import HospitalClient
from fl.data import federated_breast_cancer
from fl.models import ModelSpec
from fl.round import CoordinatorStep, HospitalStep, InMemoryBoard, InMemoryStore, PostedUpdate, combine, poison
from offchain.rounds.board import ChainRound
from offchain.rounds.coordinator import Coordinator
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
    assert coordinator.step().action == "opened"
    for number in (1, 2):  # round 1's commit opens round 2
        for node in nodes:
            assert node.step().action == "submitted"
        assert coordinator.step().action == "committed"
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
