"""Secure rounds attacked (issue 18, protocol side): by a stranger, by a hospital's failing store, by a
hospital that lies in its shares, and by stalls that would burn privacy budget.

Real anvil, the real embedded store, the library's nodes and coordinator in one process (as in
``test_rounds_secure``). Each test failed on the code before issue 18's protocol changes.
"""

import hashlib

import pytest

from fl.client import LocalTrainingConfig
from fl.secure_aggregation import GROUP_ORDER
from offchain.chain.contract import ChainRefusal
from offchain.ipfs import StoreError
from offchain.rounds.client import SecurePhase
from offchain.rounds.ledger import DatasetLedger
from offchain.rounds.participant import HospitalNode
from offchain.rounds.privacy import DP_LEARNING_RATE, budgeted_dp
from offchain.rounds.study import Member
from offchain.rounds.verifier import verify_study
from .test_rounds_secure import Run, check_committed, five, keyless, secure_study, until_phase  # noqa: F401


class FlakyStore:
    """A hospital's store whose reads of the CIDs in ``broken`` fail (its IPFS node cannot find them yet)."""

    def __init__(self, store) -> None:
        self._store = store
        self.broken: set = set()
        self.failed = 0

    def __getattr__(self, name):
        return getattr(self._store, name)

    def iter_cat(self, cid):
        if cid in self.broken:
            self.failed += 1
            raise StoreError(f"{cid} not found (test: this site's store is behind)")
        return self._store.iter_cat(cid)


def flaky(member: Member) -> tuple[Member, FlakyStore]:
    store = FlakyStore(member.store)
    return Member(member.rounds, member.access, store, member.keystore), store


def stranger_posts(consortium, study: int, cid: bytes) -> bool:
    """A stranger (no role) posts raw CID bytes in the round's current phase; False if the chain refuses."""
    rounds = consortium.stranger.rounds
    try:
        post_raw(rounds, study, rounds.round(study, 1).secure_phase, cid)
    except ChainRefusal:
        return False  # the registry's roster check (issue 18, contract side) refuses it before any reader
    return True


def post_raw(rounds, study: int, phase: SecurePhase, cid: bytes) -> None:
    """Raw CID bytes posted as a secure message of round 1's ``phase``, with their sha256, unchecked."""
    rounds._send(rounds.contract.postSecureMessage, study, 1, int(phase), cid, hashlib.sha256(cid).digest())


@pytest.fixture
def flaky_at_unmasking(consortium):
    """A secure round (t = 2) in its unmasking phase whose first hospital's store can be made to fail:
    (the run, that hospital, its store)."""
    study = secure_study(consortium, consortium.hospitals, threshold=2)
    run = Run(consortium, consortium.hospitals, study)
    member, store = flaky(consortium.hospitals[0])
    run.nodes[0] = run._capture(HospitalNode(member, study, run.shares[0], log=run.logs.append))
    until_phase(run, consortium, SecurePhase.UNMASKING)
    return run, member, store


@pytest.mark.parametrize("cid", [b"\x00", bytes(range(256)) * 96], ids=["zero-byte", "24KiB"])
def test_a_strangers_malformed_cid_is_silence_and_the_round_commits(consortium, cid):
    study = secure_study(consortium, consortium.hospitals, threshold=2)
    run = Run(consortium, consortium.hospitals, study)
    until_phase(run, consortium, SecurePhase.SHARES)
    stranger_posts(consortium, study, cid)
    for node in run.nodes:
        assert node.step().action == "shared"
    hospital = consortium.hospitals[0].rounds
    # A roster member's second posting, malformed, changes nothing (the registry may refuse it first).
    try:
        post_raw(hospital, study, SecurePhase.SHARES, cid)
    except ChainRefusal:
        pass
    assert run.coordinator.step().action in ("waiting", "closed")  # reads the postings, does not raise
    assert run.drive().action == "committed"
    check_committed(run, 1, [m.address for m in consortium.hospitals])
    assert [v.verified for v in verify_study(keyless(consortium.stranger), study)] == [True]


def test_a_hospital_missing_a_masked_inputs_bytes_reveals_nothing_retries_then_unmasks(consortium, flaky_at_unmasking):
    run, member, store = flaky_at_unmasking
    study, rounds = run.study, consortium.coordinator.rounds
    third = rounds.updates(study, 1)[2].artifact.cid
    store.broken.add(third)
    for _ in range(3):
        step = run.nodes[0].step()
        assert step.action == "waiting" and step.detail.startswith("retrying:"), step
    assert store.failed == 3
    assert all(m.sender != member.address for m in rounds.secure_messages(study, 1, SecurePhase.UNMASKING))
    store.broken.clear()  # the store catches up
    assert run.nodes[0].step().action == "unmasked"
    assert run.drive().action == "committed"
    check_committed(run, 1, [m.address for m in consortium.hospitals])


def test_a_hospital_whose_bytes_stay_missing_refuses_at_the_deadline_and_reveals_nothing(consortium, chain,
                                                                                       flaky_at_unmasking):
    run, member, store = flaky_at_unmasking
    study, rounds = run.study, consortium.coordinator.rounds
    store.broken.add(rounds.updates(study, 1)[1].artifact.cid)
    assert run.nodes[0].step().action == "waiting"
    chain.mine(timestamp=chain.pending_timestamp + 700)
    step = run.nodes[0].step()
    assert step.action == "refused" and "stayed unavailable until the deadline" in step.detail, step
    assert all(m.sender != member.address for m in rounds.secure_messages(study, 1, SecurePhase.UNMASKING))
    # The two others answer (t = 2): the round commits without the refusing hospital's answer.
    for node in run.nodes[1:]:
        assert node.step().action == "unmasked"
    assert run.drive().action == "committed"


def test_a_hospital_sending_a_bad_share_is_proven_excluded_and_the_round_commits(consortium, five):  # noqa: F811
    study = secure_study(consortium, five, threshold=3)
    run = Run(consortium, five, study)
    assert run.coordinator.step().action == "opened"
    for node in run.nodes:
        assert node.step().action == "advertised"
    liar = run.nodes[4].secure_session(1)
    victim = five[1].address
    honest = liar.share_plaintext

    def bad_share(recipient, x):  # a share off its committed polynomial, well encrypted
        plaintext = honest(recipient, x)
        if recipient != victim:
            return plaintext
        value = (int.from_bytes(plaintext[32:], "big") + 1) % GROUP_ORDER
        return plaintext[:32] + value.to_bytes(32, "big")

    liar.share_plaintext = bad_share
    assert run.drive().action == "committed"
    addresses = [m.address for m in five]
    info = consortium.coordinator.rounds.round(study, 1)
    assert sorted(info.counted_submitters) == sorted(addresses[:4])
    assert info.rejected_submitters == (addresses[4],)
    check_committed(run, 1, addresses[:4])
    assert any(f"excluded for a bad share, proven by a complaint: {addresses[4]}" in line for line in run.logs)
    assert [v.verified for v in verify_study(keyless(consortium.stranger), study)] == [True]


def test_a_round_stalled_before_its_masked_input_charges_no_privacy(consortium, chain, tmp_path):
    """Issue 18 item 5: the release is charged once published on chain, not when keys are advertised."""
    training = LocalTrainingConfig(learning_rate=DP_LEARNING_RATE)
    study = secure_study(consortium, consortium.hospitals, threshold=2, training=training,
                         dp=budgeted_dp(4.0, 1e-5, 2, training))
    run = Run(consortium, consortium.hospitals, study, target_rounds=2)
    node = HospitalNode(consortium.hospitals[0], study, run.shares[0], home=tmp_path)
    assert run.coordinator.step().action == "opened"
    assert node.step().action == "advertised"  # trained, nothing published
    chain.mine(timestamp=chain.pending_timestamp + 700)
    step = run.coordinator.step()
    assert step.action == "cancelled" and "before any masked input" in step.detail, step
    assert node.ledger.releases == [] and DatasetLedger.open(tmp_path, run.shares[0]).releases == []
    # Round 2: the unpublished training of round 1 is not in the ledger it trains against.
    assert run.coordinator.step().action == "opened"
    assert node.step().action == "advertised"
    assert len(node.client.ledger.history) == 1
