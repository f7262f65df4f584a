"""A consortium for round tests: MedicalAccess and RoundRegistry on the session's anvil, a coordinator,
three hospitals and an auditor with published keys, a shared embedded store, and a helper that
creates a fresh study per test (Ape rolls the chain back after each test; the store keeps content
by CID, so tests share it safely)."""

from dataclasses import dataclass

import pytest

from fl.artifacts import encode_client_model
from fl.data import federated_breast_cancer
from fl.models import ModelSpec
from offchain.rounds.config import StudyConfig
from offchain.rounds.coordinator import Coordinator
from offchain.rounds.participant import HospitalNode
from offchain.consortium import deploy_contracts, enrol
from offchain.rounds.study import Member
from offchain.settings import Settings

PASSPHRASE = "round tests passphrase"
HOSPITALS = 3


@dataclass
class Consortium:
    access: object
    registry: object
    admin: object
    coordinator: Member
    hospitals: list[Member]
    auditor: Member
    stranger: Member
    home: object

    def study(self, *, min_updates: int = 2, aggregator: str = "fedavg", params: dict | None = None,
              round_seconds: int = 600, participants: list[Member] | None = None) -> int:
        participants = participants or self.hospitals
        config = StudyConfig(ModelSpec("logistic", 30), tuple(m.address for m in participants), (self.auditor.address,),
                             aggregator, params or {}, round_seconds=round_seconds)
        return self.coordinator.create_study(config, min_updates).number

    def nodes(self, study: int, members: list[Member] | None = None) -> list[HospitalNode]:
        members = members or self.hospitals
        shares = federated_breast_cancer(len(members)).hospitals
        return [HospitalNode(member, study, share) for member, share in zip(members, shares)]

    def cheat_in_round_one(self, study: int, *, data_samples: int | None = None):
        """Round 1 opened and every node but the first submitted; the first (the cheat) has trained as
        it should and sealed its update (claiming ``data_samples`` if given) but posted nothing.
        Returns (the coordinator, the cheat's node, its sealed update)."""
        coordinator = Coordinator(self.coordinator, study)
        assert coordinator.step().action == "opened"
        cheat, *honest = self.nodes(study)
        for node in honest:
            assert node.step().action == "submitted"
        view = cheat.study
        trained = cheat.client.train(view.model(0), 1)
        trained = type(trained)(client_id=cheat.member.address, parameters=trained.parameters,
                                data_samples=trained.data_samples if data_samples is None else data_samples)
        return coordinator, cheat, view.seal_update(1, encode_client_model(trained, 1))

    def run_round(self, study: int, nodes=None) -> int:
        """Open a round (unless the last commit opened it), have every node submit, commit; returns the round."""
        rounds = self.coordinator.rounds
        current = rounds.study(study).round_count
        is_open = current and rounds.round(study, current).state == "open"
        # Its target is this round: the commit opens no next one.
        coordinator = Coordinator(self.coordinator, study, target_rounds=current if is_open else current + 1)
        if not is_open:
            opened = coordinator.step()
            assert opened.action == "opened", opened
        for node in nodes or self.nodes(study):
            assert node.step().action == "submitted"
        committed = coordinator.step()
        assert committed.action == "committed", committed
        return committed.round


@pytest.fixture(scope="session")
def consortium(accounts, project, tmp_path_factory):
    admin, coordinator, auditor, *hospitals = accounts[:3 + HOSPITALS]
    stranger = accounts[9]
    contracts = deploy_contracts(admin, record=False)
    access, registry = contracts.access, contracts.registry
    home = tmp_path_factory.mktemp("rounds-home")
    members = enrol(access, registry, admin, coordinator, hospitals, [auditor, stranger], Settings(home=home), PASSPHRASE)
    return Consortium(access, registry, admin, members[coordinator.address], [members[h.address] for h in hospitals],
                      members[auditor.address], members[stranger.address], home)
