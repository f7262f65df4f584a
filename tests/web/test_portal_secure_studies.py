"""The Studies page of a study under secure aggregation: each round's survivors and the hospitals that
dropped out, by name, as the library's study report gives them (the page only renders it)."""

from __future__ import annotations

from fl.data import federated_breast_cancer
from fl.models import ModelSpec
from offchain.addressbook import remember_names
from offchain.rounds.config import SecureAggregationSettings, StudyConfig
from offchain.rounds.coordinator import Coordinator
from offchain.rounds.participant import HospitalNode
from offchain.consortium import deploy_contracts, enrol
from offchain.settings import Settings

from .conftest import PASSPHRASE

ADMIN, COORDINATOR, AUDITOR, FIRST_HOSPITAL, HOSPITALS = 0, 1, 2, 3, 4
PHASE_SECONDS = 30


class Clock:
    """The coordinator's clock, moved by the test past a phase's wait."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_studies_page_names_a_secure_rounds_dropped_hospital(portal, accounts, project, portal_home):
    admin, coordinator, auditor = accounts[ADMIN], accounts[COORDINATOR], accounts[AUDITOR]
    hospitals = [accounts[FIRST_HOSPITAL + i] for i in range(HOSPITALS)]
    contracts = deploy_contracts(admin, record=False)
    access, registry = contracts.access, contracts.registry
    members = enrol(access, registry, admin, coordinator, hospitals, [auditor], Settings(home=portal_home), PASSPHRASE)
    config = StudyConfig(ModelSpec("logistic", 30), tuple(h.address for h in hospitals), (auditor.address,),
                         secure_aggregation=SecureAggregationSettings(3, phase_seconds=PHASE_SECONDS))
    study = members[coordinator.address].create_study(config, min_updates=3).number
    remember_names(Settings(home=portal_home), {h.address: f"hospital-{i}" for i, h in enumerate(hospitals, 1)})

    # One round in which hospital-2 advertises its keys and then never steps again.
    clock = Clock()
    driver = Coordinator(members[coordinator.address], study, target_rounds=1, clock=clock)
    shares = federated_breast_cancer(HOSPITALS).hospitals
    nodes = [HospitalNode(members[h.address], study, share) for h, share in zip(hospitals, shares)]
    assert driver.step().action == "opened"
    silent = False
    for _ in range(30):
        acted = False
        for index, node in enumerate(nodes):
            if index == 1 and silent:
                continue
            step = node.step()
            acted |= step.action not in ("waiting", "done")
            silent |= index == 1 and step.action == "advertised"
        step = driver.step()
        if step.action == "committed":
            break
        if not acted and step.action == "waiting":
            clock.now += PHASE_SECONDS + 1
    else:
        raise AssertionError("the secure round did not commit")

    page = portal(AUDITOR, contract=access.address, registry=registry.address)
    page.click("#tab-studies")
    page.wait_for_selector(f"#study-report[data-study='{study}'][data-rendered='true']")
    row = page.locator("#rounds-table tr[data-round='1']")
    assert row.get_attribute("data-state") == "committed"
    assert row.locator(".round-verified").inner_text() == "verified"
    assert row.locator(".round-updates").inner_text() == "3 (3 counted); secure: 3 survivors, dropped hospital-2"
