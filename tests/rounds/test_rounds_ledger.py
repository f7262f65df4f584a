"""A hospital node keeps its privacy ledger across restarts: the DP-SGD it spent is on its disk."""

import json

import pytest

from fl.client import HospitalClient, LocalTrainingConfig
from fl.data import federated_breast_cancer
from fl.models import ModelSpec
from fl.privacy import DPSGDConfig
from offchain.rounds.config import StudyConfig
from offchain.rounds.coordinator import Coordinator
from offchain.rounds.errors import RoundsError
from offchain.rounds.ledger import load_history
from offchain.rounds.participant import HospitalNode


def dp_study(consortium, budget_rounds: float) -> tuple[int, list]:
    """A DP-SGD study whose budget allows ``budget_rounds`` rounds' worth of epsilon at each hospital."""
    shares = federated_breast_cancer(len(consortium.hospitals)).hospitals
    spec = ModelSpec("logistic", 30)
    probe = HospitalClient(shares[0], spec, LocalTrainingConfig(), DPSGDConfig(noise_multiplier=1.0, max_grad_norm=1.0))
    one_round = probe.epsilon_after_next_round
    dp = DPSGDConfig(noise_multiplier=1.0, max_grad_norm=1.0, epsilon_budget=one_round * budget_rounds)
    config = StudyConfig(spec, tuple(m.address for m in consortium.hospitals), (consortium.auditor.address,), dp=dp)
    return consortium.coordinator.create_study(config, 2).number, shares


def test_restarted_node_keeps_its_spent_privacy(consortium, tmp_path):
    study, shares = dp_study(consortium, budget_rounds=1.05)
    home = tmp_path / "hospital-1"
    hospital, others = consortium.hospitals[0], consortium.hospitals[1:]
    coordinator = Coordinator(consortium.coordinator, study, target_rounds=2)
    assert coordinator.step().action == "opened"
    node = HospitalNode(hospital, study, shares[0], home=home)
    assert node.step().action == "submitted"
    for member, share in zip(others, shares[1:]):
        assert HospitalNode(member, study, share).step().action == "submitted"
    assert coordinator.step().action == "committed"  # and round 2 opened
    (ledger,) = (home / "fl" / "privacy").iterdir()
    assert [entry["round"] for entry in json.loads(ledger.read_text())["releases"]] == [1]
    assert len(load_history(ledger)) == 1

    # Restarted: the node reads what it spent; a node that forgot (no home) starts from nothing. The
    # study's budget is on chain too (the config declares one), so the round past it is refused there,
    # before any training.
    restarted = HospitalNode(hospital, study, shares[0], home=home)
    assert len(restarted.client.ledger.history) == 1
    assert HospitalNode(hospital, study, shares[0]).client.ledger.history == []
    refused = restarted.step()
    assert (refused.action, refused.detail) == ("done", "privacy budget spent")
    assert len(load_history(ledger)) == 1  # the refused round spent nothing


def test_damaged_ledger_is_refused(consortium, tmp_path):
    study, shares = dp_study(consortium, budget_rounds=10)
    node = HospitalNode(consortium.hospitals[0], study, shares[0], home=tmp_path)
    node_ledger = node.ledger.path
    node_ledger.parent.mkdir(parents=True)
    node_ledger.write_text("{not json")
    with pytest.raises(RoundsError, match="unreadable"):
        HospitalNode(consortium.hospitals[0], study, shares[0], home=tmp_path)
