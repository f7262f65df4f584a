"""RoundRegistry privacy budgets: set before round 1 by the study's coordinator, spent by declared
updates, refused past the budget or backwards; every refusal by its custom error."""

import ape
import pytest
from eth_abi import encode as abi_encode
from eth_utils import keccak

from conftest import ONE_DAY, make_artifact, make_cid
from offchain.rounds.privacy import Declaration

CONFIG_DIGEST = b"\x0c" * 32
GENESIS = make_artifact(2000)
EPSILON = 4_000_000  # 4.0 in millionths
DELTA = 10**13  # 1e-5 in 1e-18


def commitment(artifact):
    return keccak(abi_encode(["bytes", "bytes32"], list(artifact)))


def declaration(epsilon_spent, noise=1_100_000_000, rate=250_000_000, clip=1_000_000_000, steps=4):
    return Declaration(noise, rate, clip, steps, epsilon_spent).packed()


@pytest.fixture
def budgeted(rounds, coordinator, hospitals, chain):
    """A study whose first two hospitals have a budget, with round 1 open; returns the study."""
    study = rounds.createStudy(*GENESIS, CONFIG_DIGEST, make_cid(999), 1, sender=coordinator).return_value
    tx = rounds.setPrivacyBudgets(study, [h.address for h in hospitals[:2]], EPSILON, DELTA, sender=coordinator)
    assert [log.hospital for log in tx.events] == [h.address for h in hospitals[:2]]
    assert all(log.epsilonBudget == EPSILON and log.delta == DELTA for log in tx.events)
    rounds.openRound(study, commitment(GENESIS), chain.pending_timestamp + ONE_DAY, [], sender=coordinator)
    return study


def private_submit(rounds, study, round_, member, n, spend):
    return rounds.submitPrivateUpdate(study, round_, *make_artifact(n), 100, spend, sender=member)


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
    study = rounds.createStudy(*GENESIS, CONFIG_DIGEST, make_cid(999), 1, sender=coordinator).return_value
    rounds.openRound(study, commitment(GENESIS), chain.pending_timestamp + ONE_DAY, [], sender=coordinator)
    with ape.reverts(rounds.RoundNotPrivate, study=study, round=1):
        private_submit(rounds, study, 1, hospitals[0], 1, declaration(1))


def test_budgets_are_set_once_before_round_one_by_the_coordinator(rounds, coordinator, hospitals, chain):
    study = rounds.createStudy(*GENESIS, CONFIG_DIGEST, make_cid(999), 1, sender=coordinator).return_value
    with ape.reverts(rounds.NotStudyCoordinator, study=study, account=hospitals[0].address):
        rounds.setPrivacyBudgets(study, [hospitals[0].address], EPSILON, DELTA, sender=hospitals[0])
    with ape.reverts(rounds.UnknownStudy, study=study + 1):
        rounds.setPrivacyBudgets(study + 1, [hospitals[0].address], EPSILON, DELTA, sender=coordinator)
    for epsilon, delta, accounts in [(0, DELTA, [hospitals[0].address]), (EPSILON, 0, [hospitals[0].address]),
                                     (EPSILON, 10**18, [hospitals[0].address]), (EPSILON, DELTA, [])]:
        with ape.reverts(rounds.BadPrivacyBudget, epsilonBudget=epsilon, delta=delta):
            rounds.setPrivacyBudgets(study, accounts, epsilon, delta, sender=coordinator)
    rounds.setPrivacyBudgets(study, [hospitals[0].address], EPSILON, DELTA, sender=coordinator)
    with ape.reverts(rounds.PrivacyBudgetAlreadySet, study=study, hospital=hospitals[0].address):
        rounds.setPrivacyBudgets(study, [hospitals[0].address], EPSILON, DELTA, sender=coordinator)
    rounds.openRound(study, commitment(GENESIS), chain.pending_timestamp + ONE_DAY, [], sender=coordinator)
    with ape.reverts(rounds.PrivacyBudgetsFrozen, study=study):
        rounds.setPrivacyBudgets(study, [hospitals[1].address], EPSILON, DELTA, sender=coordinator)


def test_create_and_budget_in_one_multicall(rounds, coordinator, hospitals):
    study = rounds.studyCount() + 1
    rounds.multicall([
        rounds.createStudy.encode_input(*GENESIS, CONFIG_DIGEST, make_cid(999), 1),
        rounds.setPrivacyBudgets.encode_input(study, [hospitals[0].address], EPSILON, DELTA),
    ], sender=coordinator)
    assert rounds.privacyOf(study, hospitals[0]) == (EPSILON, DELTA, 0)
