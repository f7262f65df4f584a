"""Secure aggregation over the chain: hospitals mask their updates, the coordinator learns only the sum.

Real anvil, real store, the nodes and coordinator of the library in one process. A dropout is a node
that stops stepping; the coordinator's phase timer runs on a clock the test advances. Each committed
aggregate is compared with the FedAvg the test computes from the nodes' own trained models: exactly
(the same fixed-point rounding the codec applies) and to 1e-6 against plain float FedAvg. A verifier
holding no key re-derives every round; tampering shows as the check that catches it.
"""

import pytest
import torch

from fl.client import LocalTrainingConfig
from fl.data import federated_breast_cancer
from fl.models import ModelSpec, ParameterLayout
from fl.secure_aggregation import SecureAggregationError, ShareKeysMessage, SurvivorSetMismatch
from offchain.chain.contract import ChainRefusal
from offchain.rounds.client import SecurePhase
from offchain.rounds.config import SecureAggregationSettings, StudyConfig
from offchain.rounds.coordinator import Coordinator
from offchain.rounds.participant import HospitalNode, Step
from offchain.rounds.privacy import DP_LEARNING_RATE, budgeted_dp, declarations
from offchain.consortium import enrol
from offchain.rounds.secure_board import survivors_and_dropped
from offchain.rounds.study import Member, aggregate_bytes, store_public
from offchain.rounds.verifier import verify_study
from offchain.settings import Settings
from .conftest import PASSPHRASE
from .tamper import flip_stored_byte

PHASE_SECONDS = 30


class Clock:
    """The coordinator's clock: moves only when the test says."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def five(consortium, accounts):
    """The consortium's three hospitals and two more (test accounts 6 and 7)."""
    coordinator = next(a for a in accounts if a.address == consortium.coordinator.address)
    members = enrol(consortium.access, consortium.registry, consortium.admin, coordinator, accounts[6:8], [],
                    Settings(home=consortium.home), PASSPHRASE)
    return [*consortium.hospitals, *(members[a.address] for a in accounts[6:8])]


def secure_study(consortium, hospitals, threshold, *, aggregator="fedavg", params=None, min_updates=2,
                 **changes) -> int:
    config = StudyConfig(ModelSpec("logistic", 30), tuple(m.address for m in hospitals), (consortium.auditor.address,),
                         aggregator, params or {}, round_seconds=600,
                         secure_aggregation=SecureAggregationSettings(threshold, phase_seconds=PHASE_SECONDS),
                         **changes)
    return consortium.coordinator.create_study(config, min_updates).number


class Run:
    """A secure study driven step by step: its coordinator (on a test clock) and hospital nodes, each
    node's trained model captured as it trains."""

    def __init__(self, consortium, hospitals, study, target_rounds=1) -> None:
        self.study = study
        self.clock = Clock()
        self.logs: list[str] = []
        self.coordinator = Coordinator(consortium.coordinator, study, target_rounds=target_rounds,
                                       clock=self.clock, log=self.logs.append)
        self.shares = federated_breast_cancer(len(hospitals)).hospitals
        self.nodes = [HospitalNode(member, study, share, log=self.logs.append)
                      for member, share in zip(hospitals, self.shares)]
        self.trained: dict[tuple[int, str], object] = {}
        self.steps: list[tuple[int, object]] = []  # (node index, its step)
        for node in self.nodes:
            self._capture(node)

    def _capture(self, node: HospitalNode) -> HospitalNode:
        """Keep each model ``node`` trains, by (round, account)."""
        train = node.client.train

        def capture(parameters, round_number):
            model = train(parameters, round_number)
            self.trained[round_number, node.member.address] = model
            return model

        node.client.train = capture
        return node

    def drive(self, *, silent_after: dict[int, str] | None = None, restart_after: dict[int, str] | None = None,
              limit: int = 40):
        """Step everyone until the coordinator commits or cancels. ``silent_after``: node index -> the
        action after which that node never steps again (a dropout); ``restart_after``: the action
        after which it restarts (a new node, which keeps stepping). When every live party waits, the
        clock moves past a phase's wait."""
        silent_after, restart_after = silent_after or {}, restart_after or {}
        silent: set[int] = set()
        for _ in range(limit):
            acted = False
            for i, node in enumerate(self.nodes):
                if i in silent:
                    continue
                step = node.step()
                self.steps.append((i, step))
                acted |= step.action not in ("waiting", "done")
                if silent_after.get(i) == step.action:
                    silent.add(i)
                if restart_after.get(i) == step.action:
                    self.nodes[i] = self._capture(
                        HospitalNode(node.member, self.study, self.shares[i], log=self.logs.append))
            step = self.coordinator.step()
            if step.action in ("committed", "cancelled"):
                return step
            if not acted and step.action == "waiting":
                self.clock.now += PHASE_SECONDS + 1
        raise AssertionError(f"no commit after {limit} steps: {self.logs}")

    def expected(self, round_number: int, survivors: list[str]):
        """FedAvg of the survivors' trained models from the round's base: exactly as the codec rounds
        (fixed point, 2^-24), and in plain floating point."""
        base = self.coordinator.study.model(round_number - 1)
        layout = ParameterLayout.of(base)
        flat = layout.flatten(base)
        scale = 2.0 ** 24
        integer = torch.zeros(layout.size, dtype=torch.int64)
        plain = torch.zeros(layout.size, dtype=torch.float64)
        total = 0
        private = self.coordinator.study.config.private  # a DP study averages unweighted (issue 19)
        for account in survivors:
            model = self.trained[round_number, account]
            weight = 1 if private else model.data_samples
            delta = layout.flatten(model.parameters) - flat
            integer += torch.round(delta * scale).to(torch.int64) * weight
            plain += delta * weight
            total += weight
        exact = layout.unflatten(flat + (integer.double() / scale) / total)
        return exact, layout.unflatten(flat + plain / total)


def keyless(member: Member) -> Member:
    """``member`` with no keystore: what anyone can verify with."""
    return Member(member.rounds, member.access, member.store, None)


def check_committed(run: Run, round_number: int, survivors: list[str]) -> None:
    committed = run.coordinator.study.model(round_number)
    exact, plain = run.expected(round_number, survivors)
    assert aggregate_bytes(run.study, round_number, committed) == aggregate_bytes(run.study, round_number, exact)
    for name in plain:
        torch.testing.assert_close(committed[name], plain[name], rtol=0, atol=1e-6)


def test_three_hospitals_commit_the_exact_fedavg_and_anyone_verifies_it_with_no_key(consortium):
    study = secure_study(consortium, consortium.hospitals, threshold=2)
    run = Run(consortium, consortium.hospitals, study)
    assert run.drive().action == "committed"
    rounds = consortium.coordinator.rounds
    info = rounds.round(study, 1)
    hospitals = [m.address for m in consortium.hospitals]
    assert info.secure_phase is SecurePhase.FINISHED
    assert sorted(info.counted_submitters) == sorted(hospitals) and info.rejected_submitters == ()
    check_committed(run, 1, hospitals)
    # The aggregate is public (the sum is, by design): a stranger with no key reads it and verifies the round.
    stranger = keyless(consortium.stranger)
    assert stranger.study(study).model(1).keys() == {"0.weight", "0.bias"}
    assert [(v.round, v.verified, v.updates) for v in verify_study(stranger, study)] == [(1, True, 3)]
    # What went on chain is public and masked: no masked input is its hospital's update in the clear.
    update = rounds.updates(study, 1)[0]
    assert update.samples == run.trained[1, update.participant].data_samples


def test_fedadam_runs_on_the_secure_sum_and_its_state_replays_from_the_chain(consortium):
    study = secure_study(consortium, consortium.hospitals, threshold=2, aggregator="fedadam",
                         params={"learning_rate": 0.05})
    run = Run(consortium, consortium.hospitals, study, target_rounds=2)
    assert run.drive().action == "committed"
    assert run.drive().action == "committed"
    # A fresh keyless verifier re-derives round 2 alone: it replays round 1's secure sum into FedAdam's moments.
    assert [v.verified for v in verify_study(keyless(consortium.stranger), study, [2])] == [True]


def test_five_hospitals_survive_a_dropout_after_keys_and_one_after_the_masked_input(consortium, five):
    study = secure_study(consortium, five, threshold=3)
    run = Run(consortium, five, study, target_rounds=2)
    addresses = [m.address for m in five]
    # Round 1: hospital 2 advertises its keys (and trains), then restarts: its session was in memory, so
    # the new node sits the round out.
    assert run.drive(restart_after={1: "advertised"}).action == "committed"
    assert (1, Step("waiting", 1, "not in round 1's session (it is in phase shares)")) in run.steps
    info = consortium.coordinator.rounds.round(study, 1)
    survivors = [a for a in addresses if a != addresses[1]]
    assert sorted(info.counted_submitters) == sorted(survivors)
    check_committed(run, 1, survivors)
    assert any("closed phase shares, 4 of 5 posted" in line for line in run.logs), run.logs
    assert survivors_and_dropped(run.coordinator.study, 1) == (survivors, [addresses[1]])
    # Round 2: hospital 4 sends its masked input, then never answers the unmasking request: its input
    # counts, its self mask rebuilt from the others' shares.
    assert run.drive(silent_after={3: "submitted"}).action == "committed"
    info = consortium.coordinator.rounds.round(study, 2)
    assert sorted(info.counted_submitters) == sorted(addresses)
    check_committed(run, 2, addresses)
    assert survivors_and_dropped(run.coordinator.study, 2) == (addresses, [])
    assert [v.verified for v in verify_study(keyless(consortium.stranger), study)] == [True, True]


def test_a_budgeted_dp_study_declares_each_masked_inputs_spend(consortium):
    training = LocalTrainingConfig(learning_rate=DP_LEARNING_RATE)
    study = secure_study(consortium, consortium.hospitals, threshold=2, training=training,
                         dp=budgeted_dp(2.0, 1e-5, 1, training))
    run = Run(consortium, consortium.hospitals, study)
    assert run.drive().action == "committed"
    spent = declarations(consortium.auditor.rounds, study, round=1)
    assert sorted(entry.participant for entry in spent) == sorted(m.address for m in consortium.hospitals)
    check_committed(run, 1, [m.address for m in consortium.hospitals])
    # The keyless verifier recomputes every declared epsilon too.
    assert [v.verified for v in verify_study(keyless(consortium.stranger), study)] == [True]


def test_too_few_survivors_cancel_at_the_deadline_saying_why(consortium, chain):
    study = secure_study(consortium, consortium.hospitals, threshold=2)
    run = Run(consortium, consortium.hospitals, study)
    silent = False
    for _ in range(6):
        for node in run.nodes[:2]:
            node.step()
        if not silent:
            silent = run.nodes[2].step().action == "shared"  # hospital 3 shares keys, then goes silent
        run.coordinator.step()
        run.clock.now += PHASE_SECONDS + 1
    step = run.coordinator.step()
    assert step.action == "waiting" and "only 2 of 3 posted in phase masked-inputs" in step.detail, step
    chain.mine(timestamp=chain.pending_timestamp + 700)
    step = run.coordinator.step()
    assert step.action == "cancelled", step
    assert any("cancelled: only 2 of 3 posted" in line for line in run.logs), run.logs
    assert [(v.state, v.verified) for v in verify_study(keyless(consortium.stranger), study)] == [("cancelled", True)]


def until_phase(run, consortium, phase):
    """Step the coordinator and every node until round 1 reaches ``phase``."""
    rounds = consortium.coordinator.rounds
    assert run.coordinator.step().action == "opened"
    while rounds.round(run.study, 1).secure_phase is not phase:
        for node in run.nodes:
            node.step()
        run.coordinator.step()


def test_a_hospital_refuses_to_unmask_for_a_survivor_set_not_on_chain(consortium):
    study = secure_study(consortium, consortium.hospitals, threshold=2)
    run = Run(consortium, consortium.hospitals, study)
    until_phase(run, consortium, SecurePhase.UNMASKING)
    first = run.nodes[0]
    hospitals = [m.address for m in consortium.hospitals]
    with pytest.raises(SurvivorSetMismatch, match="the board's survivor set is"):
        first.secure_session(1).unmask(hospitals[:2])
    assert consortium.coordinator.rounds.secure_messages(study, 1, SecurePhase.UNMASKING) == []
    # For the set on chain it answers, once.
    assert first.step().action == "unmasked"
    assert first.step().action == "waiting"


def test_a_hospital_refuses_to_unmask_for_two_survivors(consortium):
    study = secure_study(consortium, consortium.hospitals, threshold=2)
    run = Run(consortium, consortium.hospitals, study)
    until_phase(run, consortium, SecurePhase.MASKED_INPUTS)
    first, second, third = run.nodes
    assert first.step().action == "submitted" and second.step().action == "submitted"
    rounds = consortium.coordinator.rounds
    rounds.close_secure_phase(study, 1, SecurePhase.MASKED_INPUTS)  # a coordinator that does not wait
    # Two survivors on chain: each would learn the other's update from the sum, so neither unmasks.
    step = first.step()
    assert step.action == "refused" and "at least 3 must survive" in step.detail, step
    with pytest.raises(SecureAggregationError, match="at least 3 must survive"):
        second.secure_session(1).unmask()
    assert first.step().action == "waiting"
    assert rounds.secure_messages(study, 1, SecurePhase.UNMASKING) == []
    assert third.step().action == "waiting"  # it never sent its masked input


def test_posts_out_of_phase_are_refused_by_the_registry(consortium):
    study = secure_study(consortium, consortium.hospitals, threshold=2)
    Coordinator(consortium.coordinator, study).step()
    hospital = consortium.hospitals[0]
    message = store_public(hospital.store, b"not a key advertisement")
    with pytest.raises(ChainRefusal) as refused:
        hospital.rounds.post_secure_message(study, 1, SecurePhase.SHARES, message)
    assert refused.value.error == "SecurePhaseMismatch"
    with pytest.raises(ChainRefusal) as refused:
        hospital.rounds.submit_update(study, 1, message, 10)
    assert refused.value.error == "SecurePhaseMismatch"


def test_a_garbage_key_advertisement_is_a_dropout_not_a_blocked_round(consortium, five):
    study = secure_study(consortium, five, threshold=3)
    run = Run(consortium, five, study)
    assert run.coordinator.step().action == "opened"
    # Hospital 5 posts bytes that are no key advertisement (its digest matches: the store has them).
    garbage = store_public(five[4].store, b'{"kind":"key-advertisement"}')
    five[4].rounds.post_secure_message(study, 1, SecurePhase.KEYS, garbage)
    run.nodes = run.nodes[:4]
    assert run.drive().action == "committed"
    check_committed(run, 1, [m.address for m in five[:4]])


def secure_round_ready_to_commit(consortium):
    """A secure study whose round 1 has every unmasking response posted, its last phase still open."""
    study = secure_study(consortium, consortium.hospitals, threshold=2)
    run = Run(consortium, consortium.hospitals, study)
    rounds = consortium.coordinator.rounds
    while len(rounds.secure_messages(study, 1, SecurePhase.UNMASKING)) < 3:
        run.coordinator.step()
        for node in run.nodes:
            node.step()
    return study, run


def test_a_committed_aggregate_other_than_the_sum_fails_verification(consortium):
    study, run = secure_round_ready_to_commit(consortium)
    rounds = consortium.coordinator.rounds
    rounds.close_secure_phase(study, 1, SecurePhase.UNMASKING)
    view = consortium.coordinator.study(study)
    forged = {name: tensor + 0.01 for name, tensor in view.model(0).items()}
    rounds.commit_aggregate(study, 1, rounds.submitters(study, 1), store_public(view.member.store,
                                                                                aggregate_bytes(study, 1, forged)))
    (verdict,) = verify_study(keyless(consortium.stranger), study)
    assert (verdict.verified, verdict.failed_check) == (False, "rederive"), verdict


def test_a_tampered_masked_input_or_aggregate_fails_verification(consortium):
    study, run = secure_round_ready_to_commit(consortium)
    assert run.coordinator.step().action == "committed"
    rounds = consortium.coordinator.rounds
    flip_stored_byte(consortium.coordinator.store, rounds.round(study, 1).aggregate.cid)
    (verdict,) = verify_study(keyless(consortium.stranger), study)
    assert (verdict.verified, verdict.failed_check) == (False, "aggregate"), verdict
    flip_stored_byte(consortium.coordinator.store, rounds.updates(study, 1)[0].artifact.cid)
    (verdict,) = verify_study(keyless(consortium.stranger), study)
    assert (verdict.verified, verdict.failed_check) == (False, "updates"), verdict


def test_a_secagg_plus_study_shares_with_graph_neighbours_drawn_from_the_opening_block(consortium, five):
    config = StudyConfig(ModelSpec("logistic", 30), tuple(m.address for m in five), (consortium.auditor.address,),
                         round_seconds=600, secure_aggregation=SecureAggregationSettings(
                             2, phase_seconds=PHASE_SECONDS, graph_degree=2))
    study = consortium.coordinator.create_study(config, 2).number
    run = Run(consortium, five, study)
    assert run.drive(silent_after={2: "submitted"}).action == "committed"
    addresses = [m.address for m in five]
    check_committed(run, 1, addresses)
    rounds = consortium.coordinator.rounds
    for posting in rounds.secure_messages(study, 1, SecurePhase.SHARES):
        payload = b"".join(consortium.coordinator.store.iter_cat(posting.artifact.cid))
        message = ShareKeysMessage.from_bytes(payload, run.nodes[0].secure_session(1).session.session_id,
                                              posting.sender)
        assert len(message.shares) == 3  # itself and its two neighbours, of five
    session = run.nodes[0].secure_session(1).session
    opened = rounds.round(study, 1).opened_block
    assert session.graph_degree == 2
    assert session.graph_seed == bytes(rounds.contract.provider.web3.eth.get_block(opened)["hash"])
    assert [v.verified for v in verify_study(keyless(consortium.stranger), study)] == [True]
