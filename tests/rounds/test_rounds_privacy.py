"""Privacy budgets through the library the nodes use: a study declares each hospital's budget at
creation, each node declares its DP spend with its update and stops at its budget, the verifier
recomputes every declared epsilon, and `fl status`' library reports spend against budget."""

import pytest

from fl.client import LocalTrainingConfig
from fl.models import ModelSpec
from fl.privacy import DPParameters
from offchain.chain.contract import ChainRefusal
from offchain.rounds.config import StudyConfig
from offchain.rounds.coordinator import Coordinator
from offchain.rounds.privacy import (
    DP_LEARNING_RATE,
    ChainBudget,
    Declaration,
    HospitalSpend,
    PrivacyCheckFailed,
    budgeted_dp,
    check_round,
    declarations,
    declare,
    epsilon_units,
    privacy_spend,
    submit_private_update,
)
from offchain.rounds.verifier import verify_study

EPSILON, DELTA = 2.0, 1e-5


def budgeted_study(consortium, rounds: int, min_updates: int = 3) -> int:
    training = LocalTrainingConfig(learning_rate=DP_LEARNING_RATE)
    config = StudyConfig(ModelSpec("logistic", 30), tuple(m.address for m in consortium.hospitals),
                         (consortium.auditor.address,), training=training,
                         dp=budgeted_dp(EPSILON, DELTA, rounds, training))
    return consortium.coordinator.create_study(config, min_updates).number


def test_spend_is_declared_recorded_verified_and_reported(consortium):
    study = budgeted_study(consortium, rounds=2)
    nodes = consortium.nodes(study)
    consortium.run_round(study, nodes)
    consortium.run_round(study, nodes)
    rounds = consortium.auditor.rounds
    spend = privacy_spend(consortium.auditor, study)
    assert set(spend) == {m.address for m in consortium.hospitals}
    for account, (spent, budget) in spend.items():
        assert budget == EPSILON
        history = [entry.declaration.parameters() for entry in declarations(rounds, study, participant=account)]
        assert len(history) == 2
        # What the chain recorded is the accountant's epsilon of what the node declared, within the budget.
        assert spent * 10**6 == epsilon_units(history, DELTA) and 0 < spent <= EPSILON
    # The whole budget was planned for these two rounds: the epsilons come close to it.
    assert all(spent > 0.9 * EPSILON for spent, _ in spend.values())
    assert [(v.round, v.verified) for v in verify_study(consortium.auditor, study)] == [(1, True), (2, True)]
    # A study without budgets reports none.
    assert privacy_spend(consortium.auditor, consortium.study()) == {}


def test_node_refuses_to_train_past_its_budget(consortium):
    study = budgeted_study(consortium, rounds=1)
    nodes = consortium.nodes(study)
    consortium.run_round(study, nodes)
    coordinator = Coordinator(consortium.coordinator, study)
    assert coordinator.step().action == "opened"
    refused = nodes[0].step()
    assert (refused.action, refused.detail) == ("done", "privacy budget spent")
    assert consortium.auditor.rounds.updates(study, 2) == []
    # The contract refuses it too, whatever a node would declare past the budget.
    spend = HospitalSpend(consortium.hospitals[0].rounds, study)
    last = declarations(consortium.auditor.rounds, study, participant=consortium.hospitals[0].address)[-1]
    over = Declaration(*last.declaration.as_tuple()[:4], spend.budget.epsilon_units + 1)
    update = consortium.auditor.rounds.updates(study, 1)[0].artifact
    with pytest.raises(ChainRefusal, match="PrivacyBudgetExceeded"):
        submit_private_update(consortium.hospitals[0].rounds, study, 2, update, over)


def test_a_declared_epsilon_other_than_the_accountants_is_rejected_as_the_verifier_judges_it(consortium):
    study = budgeted_study(consortium, rounds=2, min_updates=2)
    # The cheat trains as it should, but declares less epsilon than its parameters give (still
    # within its budget and not below its spend, so the registry, which cannot run the accountant, takes it).
    coordinator, cheat, update = consortium.cheat_in_round_one(study)
    true = cheat.spend.next(cheat.client.dp_round_parameters)
    understated = Declaration(*true.as_tuple()[:4], true.epsilon_units // 2)
    submit_private_update(cheat.member.rounds, study, 1, update, understated)
    # The verifier's privacy check refuses it; so the coordinator does not count it, and the verifier agrees.
    with pytest.raises(PrivacyCheckFailed, match=f"{cheat.member.address} declared epsilon"):
        check_round(consortium.auditor.rounds, study, 1, [cheat.member.address], cheat.study.config)
    assert coordinator.step().action == "committed"
    info = consortium.auditor.rounds.round(study, 1)
    assert list(info.rejected_submitters) == [cheat.member.address]
    (verdict,) = verify_study(consortium.auditor, study, [1])
    assert verdict.verified, verdict


def test_declared_parameters_are_never_more_private_than_what_ran():
    ran = DPParameters(noise_multiplier=1.23456789987, sample_rate=1 / 569, steps=3, clipping_norm=0.1234567891)
    declared = declare(ran)
    assert declared.noise_multiplier <= ran.noise_multiplier
    assert declared.sample_rate >= ran.sample_rate and declared.clipping_norm >= ran.clipping_norm
    exact = DPParameters(noise_multiplier=1.1, sample_rate=0.25, steps=4, clipping_norm=1.0)
    assert declare(exact) == exact  # what a study config sets (budgeted_dp) is declared as is
    assert epsilon_units([declared], DELTA) >= epsilon_units([ran], DELTA)


def test_chain_budget_never_allows_more_than_the_budget():
    from fl.privacy import PrivacyBudget

    budget = ChainBudget.of(PrivacyBudget(4.0, 1e-5))
    assert (budget.epsilon_units, budget.delta_units) == (4_000_000, 10**13)
    assert (budget.epsilon, budget.delta) == (4.0, 1e-5)
    assert ChainBudget.of(PrivacyBudget(0.3333333333, 1e-5)).epsilon_units == 333_333
