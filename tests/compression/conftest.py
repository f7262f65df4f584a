"""A consortium of five hospitals for compression and robust-aggregation tests: MedicalAccess and a
RoundRegistry on the session's anvil, a coordinator, an auditor, a shared embedded store, and helpers
to create a study from a config and to run its rounds through the library the nodes use."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from fl.data import federated_breast_cancer
from fl.models import ModelSpec
from offchain.rounds.config import StudyConfig
from offchain.rounds.coordinator import Coordinator
from offchain.rounds.participant import HospitalNode
from offchain.consortium import deploy_contracts, enrol
from offchain.rounds.study import Member
from offchain.settings import Settings

HOSPITALS = 5
PASSPHRASE = "compression tests passphrase"


@dataclass
class Consortium:
    coordinator: Member
    hospitals: list[Member]
    auditor: Member
    home: Path

    def study(self, *, aggregator: str = "fedavg", params: dict | None = None, compression=None,
              hospitals: int = HOSPITALS, min_updates: int | None = None, model: str = "logistic") -> int:
        members = self.hospitals[:hospitals]
        config = StudyConfig(ModelSpec(model, 30), tuple(m.address for m in members), (self.auditor.address,),
                             aggregator, params or {}, compression=compression)
        return self.coordinator.create_study(config, min_updates or len(members)).number

    def nodes(self, study: int, hospitals: int = HOSPITALS, homes: list[Path] | None = None) -> list[HospitalNode]:
        shares = federated_breast_cancer(hospitals).hospitals
        homes = homes or [None] * hospitals
        return [HospitalNode(member, study, share, home=home)
                for member, share, home in zip(self.hospitals[:hospitals], shares, homes)]

    def run_round(self, study: int, nodes, target: int) -> str:
        """Step the coordinator and ``nodes`` until round ``target`` closes; returns the coordinator's last action."""
        coordinator = Coordinator(self.coordinator, study, target_rounds=target)
        for _ in range(20):
            for node in nodes:
                node.step()
            step = coordinator.step()
            if step.action in ("committed", "cancelled") and step.round == target:
                return step.action
        raise AssertionError(f"round {target} did not close")


@pytest.fixture(scope="session")
def five_hospitals(accounts, project, tmp_path_factory):
    admin, coordinator, auditor, *hospitals = accounts[:3 + HOSPITALS]
    contracts = deploy_contracts(admin, record=False)
    access, registry = contracts.access, contracts.registry
    home = tmp_path_factory.mktemp("compression-home")
    members = enrol(access, registry, admin, coordinator, hospitals, [auditor], Settings(home=home), PASSPHRASE)
    return Consortium(members[coordinator.address], [members[h.address] for h in hospitals],
                      members[auditor.address], home)
