"""RoundRegistry privacy budgets: given at the study's creation, spent by declared updates, refused
past the budget or backwards; every refusal by its custom error."""

import ape
import pytest
from eth_abi import encode as abi_encode
from eth_utils import keccak

from conftest import ONE_DAY, make_artifact, make_cid
from offchain.rounds import StudyTerms
from offchain.rounds.privacy import Declaration

CONFIG_DIGEST = b"\x0c" * 32
GENESIS = make_artifact(2000)
EPSILON = 4_000_000  # 4.0 in millionths
DELTA = 10**13  # 1e-5 in 1e-18


def create(rounds, coordinator, hospitals=(), epsilon=EPSILON, delta=DELTA, n=999):
    """A study with a quorum of 1 giving ``hospitals`` a budget (none: no budgets); returns its creation."""
    budget = dict(budget_hospitals=tuple(h.address for h in hospitals), epsilon_units=epsilon, delta_units=delta) \
        if hospitals else {}
    return rounds.createStudy(*GENESIS, CONFIG_DIGEST, make_cid(n), StudyTerms(1, 1_000, **budget).encoded(),
                              sender=coordinator)


def commitment(artifact):
    return keccak(abi_encode(["bytes", "bytes32"], list(artifact)))


def declaration(epsilon_spent, noise=1_100_000_000, rate=250_000_000, clip=1_000_000_000, steps=4):
    return Declaration(noise, rate, clip, steps, epsilon_spent).packed()


@pytest.fixture
def budgeted(rounds, coordinator, hospitals, chain):
    """A study whose first two hospitals have a budget, with round 1 open; returns the study."""
    tx = create(rounds, coordinator, hospitals[:2])
    study = tx.return_value
    budgets = [log for log in tx.events if log.event_name == "PrivacyBudgetSet"]
    assert [log.hospital for log in budgets] == [h.address for h in hospitals[:2]]
    assert all(log.study == study and log.epsilonBudget == EPSILON and log.delta == DELTA for log in budgets)
    rounds.openRound(study, commitment(GENESIS), chain.pending_timestamp + ONE_DAY, [], sender=coordinator)
    return study


def private_submit(rounds, study, round_, member, n, spend, samples=0):
    """A private update publishes no record count: its sample count is 0."""
    return rounds.submitPrivateUpdate(study, round_, *make_artifact(n), samples, spend, sender=member)


def test_a_private_update_publishing_a_record_count_is_refused(rounds, budgeted, hospitals):
    with ape.reverts(rounds.SampleCountInPrivateUpdate):
        private_submit(rounds, budgeted, 1, hospitals[0], 1, declaration(1_500_000), samples=100)
    assert rounds.privacyOf(budgeted, hospitals[0]) == (EPSILON, DELTA, 0)


def test_spend_is_recorded_and_logged(rounds, budgeted, hospitals):
    tx = private_submit(rounds, budgeted, 1, hospitals[0], 1, declaration(1_500_000))
    update, event = tx.events  # the declaration follows the update it declares for
    assert (update.event_name, event.event_name) == ("UpdateSubmitted", "PrivacySpent")
    assert (update.study, update.round, update.participant) == (budgeted, 1, hospitals[0].address)
    assert Declaration.unpack(event.declaration) == Declaration(1_100_000_000, 250_000_000, 1_000_000_000, 4, 1_500_000)
    assert rounds.privacyOf(budgeted, hospitals[0]) == (EPSILON, DELTA, 1_500_000)
    assert rounds.privacyOf(budgeted, hospitals[1]) == (EPSILON, DELTA, 0)
    assert rounds.privacyOf(budgeted, hospitals[2]) == (0, 0, 0)


def test_spend_over_budget_or_backwards_is_refused(rounds, budgeted, hospitals, coordinator, chain):
    with ape.reverts(rounds.PrivacyBudgetExceeded, study=budgeted, participant=hospitals[0].address, declared=EPSILON + 1, budget=EPSILON):
        private_submit(rounds, budgeted, 1, hospitals[0], 1, declaration(EPSILON + 1))
    private_submit(rounds, budgeted, 1, hospitals[0], 1, declaration(EPSILON))  # the whole budget is allowed
    rounds.commitAggregate(budgeted, 1, [hospitals[0].address], 0, *make_artifact(50), sender=coordinator)
    rounds.openRound(budgeted, commitment(make_artifact(50)), chain.pending_timestamp + ONE_DAY, [], sender=coordinator)
    with ape.reverts(rounds.PrivacySpendDecreased, study=budgeted, participant=hospitals[0].address, declared=EPSILON - 1, spent=EPSILON):
        private_submit(rounds, budgeted, 2, hospitals[0], 2, declaration(EPSILON - 1))
    with ape.reverts(rounds.PrivacyBudgetExceeded, study=budgeted, participant=hospitals[0].address, declared=EPSILON + 1, budget=EPSILON):
        private_submit(rounds, budgeted, 2, hospitals[0], 2, declaration(EPSILON + 1))


def test_budgeted_study_takes_declared_updates_only(rounds, budgeted, hospitals):
    with ape.reverts(rounds.PrivacyDeclarationRequired, study=budgeted, round=1):
        rounds.submitUpdate(budgeted, 1, *make_artifact(1), 100, sender=hospitals[0])
    with ape.reverts(rounds.NoPrivacyBudget, study=budgeted, account=hospitals[2].address):
        private_submit(rounds, budgeted, 1, hospitals[2], 1, declaration(1))


@pytest.mark.parametrize("bad", [
    declaration(1, noise=0), declaration(1, rate=0), declaration(1, rate=10**9 + 1), declaration(1, clip=0),
    declaration(1, steps=0),
])
def test_malformed_declaration_is_refused(rounds, budgeted, hospitals, bad):
    with ape.reverts(rounds.BadDPDeclaration):
        private_submit(rounds, budgeted, 1, hospitals[0], 1, bad)


def test_plain_study_refuses_declared_updates(rounds, coordinator, hospitals, chain):
    study = create(rounds, coordinator).return_value
    rounds.openRound(study, commitment(GENESIS), chain.pending_timestamp + ONE_DAY, [], sender=coordinator)
    with ape.reverts(rounds.RoundNotPrivate, study=study, round=1):
        private_submit(rounds, study, 1, hospitals[0], 1, declaration(1))


def test_budgets_are_given_at_creation_only(rounds, coordinator, hospitals):
    """No call sets a budget later: a declaration cannot land on another study (two creations from one
    read of the study count used to put study 2's declaration on study 1)."""
    assert not hasattr(rounds, "setPrivacyBudgets") and not hasattr(rounds, "setSecureAggregation")
    first = create(rounds, coordinator, hospitals[:1], n=1).return_value
    second = create(rounds, coordinator, hospitals[1:2], n=2).return_value
    assert rounds.privacyOf(first, hospitals[0])[0] == EPSILON and rounds.privacyOf(first, hospitals[1])[0] == 0
    assert rounds.privacyOf(second, hospitals[1])[0] == EPSILON and rounds.privacyOf(second, hospitals[0])[0] == 0
    with ape.reverts(rounds.NotCoordinator, account=hospitals[0].address):
        create(rounds, hospitals[0], hospitals[:1])
