"""The Studies page as a study's auditor and a stranger see it: a real study, rounds run by the rounds
library on the session's anvil, its report verified by the auditor's own portal, with the metrics the
hospitals published and the bytes stored per update (no coordinator's test split)."""

from __future__ import annotations

import re

import pytest

from fl.client import LocalTrainingConfig
from fl.data import federated_breast_cancer, held_out_share
from fl.models import ModelSpec
from fl.privacy import DPParameters, DPSGDConfig, epsilon_of
from offchain.addressbook import remember_names
from offchain.rounds.config import StudyConfig
from offchain.rounds.coordinator import Coordinator
from offchain.rounds.participant import HospitalNode
from offchain.consortium import deploy_contracts, enrol
from offchain.rounds.report import study_report
from offchain.settings import Settings

from .conftest import PASSPHRASE
from .pages import check_every_page
from .test_portal import _origin_and_token, _request

ADMIN, COORDINATOR, AUDITOR, FIRST_HOSPITAL, HOSPITALS = 0, 1, 2, 3, 2
DP = DPSGDConfig(noise_multiplier=1.0, max_grad_norm=1.0, sample_rate=0.25, epsilon_budget=10.0)
TRAINING = LocalTrainingConfig(epochs=1)


@pytest.fixture
def study_chain(accounts, project, portal_home):
    """A consortium of its own: MedicalAccess and RoundRegistry, a coordinator, an auditor and two
    hospitals whose keystores live in the portals' data folder (the store is shared there too)."""
    admin, coordinator, auditor = accounts[ADMIN], accounts[COORDINATOR], accounts[AUDITOR]
    hospitals = [accounts[FIRST_HOSPITAL + i] for i in range(HOSPITALS)]
    contracts = deploy_contracts(admin, record=False)
    access, registry = contracts.access, contracts.registry
    members = enrol(access, registry, admin, coordinator, hospitals, [auditor], Settings(home=portal_home), PASSPHRASE)
    return access, registry, members, coordinator, auditor, hospitals


def _run_rounds(members, coordinator, hospitals, study: int, rounds: int, *, evaluate: bool = False) -> None:
    """``rounds`` rounds of ``study``; with ``evaluate``, each hospital publishes its metrics of the round's base."""
    driver = Coordinator(members[coordinator.address], study)
    shares = federated_breast_cancer(len(hospitals)).hospitals
    nodes = [HospitalNode(members[h.address], study, share,
                          validation=held_out_share(i, len(hospitals)) if evaluate else None)
             for i, (h, share) in enumerate(zip(hospitals, shares))]
    for _ in range(rounds):
        assert driver.step().action == "opened"
        for node in nodes:
            assert node.step().action == "submitted"
        assert driver.step().action == "committed"


def test_studies_page_shows_committed_verified_rounds_stored_bytes_and_privacy_spend(portal, study_chain, portal_home,
                                                                                 tmp_path):
    access, registry, members, coordinator, auditor, hospitals = study_chain
    participants = tuple(h.address for h in hospitals)
    with_dp = StudyConfig(ModelSpec("logistic", 30), participants, (auditor.address,), training=TRAINING, dp=DP)
    study = members[coordinator.address].create_study(with_dp, min_updates=HOSPITALS).number
    _run_rounds(members, coordinator, hospitals, study, 2)
    without_dp = StudyConfig(ModelSpec("logistic", 30), participants, (auditor.address,))
    later = members[coordinator.address].create_study(without_dp, min_updates=1).number
    remember_names(Settings(home=portal_home), {hospitals[0].address: "St Mary's"})

    page = portal(AUDITOR, contract=access.address, registry=registry.address, axe=True)
    page.click("#tab-studies")
    report = page.wait_for_selector(f"#study-report[data-study='{later}'][data-rendered='true']")
    for hospital in hospitals:  # the latest study first: no rounds, no DP declared
        cell = page.locator(f"#participants-table tr[data-participant='{hospital.address}'] .privacy")
        assert cell.inner_text() == "no DP declared"
    assert "No round opened yet" in report.inner_text()

    page.select_option("#study-select", str(study))
    page.click("#study-submit")
    page.wait_for_selector(f"#study-report[data-study='{study}'][data-rendered='true']")
    reported = study_report(members[auditor.address], study, verify=False)
    for number in (1, 2):
        row = page.locator(f"#rounds-table tr[data-round='{number}']")
        assert row.get_attribute("data-state") == "committed"
        assert row.locator(".round-verified").inner_text() == "verified"
        stored = reported.rounds[number - 1].status.update_bytes
        assert stored > 0 and row.locator(".round-bytes").inner_text() == f"{stored:,}"
    # No hospital published metrics (no validation splits): no empty axes, the reason instead; and no
    # test accuracy, which only a simulation's coordinator could have.
    assert page.locator("#metrics-chart").count() == 0
    assert "notes below say why" in page.inner_text("#metrics-none")
    assert "accuracy" not in page.inner_text("#rounds-table").lower()

    expected = epsilon_of([DPParameters(DP.noise_multiplier, DP.sample_rate, 4, DP.max_grad_norm)] * 2, DP.delta)
    for hospital in hospitals:
        row = page.locator(f"#participants-table tr[data-participant='{hospital.address}']")
        spent = row.locator(".privacy").inner_text()
        match = re.match(r"ε (\d+\.\d+) of 10 at δ 0\.00001", spent)
        assert match and float(match[1]) == pytest.approx(expected, abs=5e-4), spent
        assert row.locator(".key-suite").inner_text() == "x25519 v1"
        assert row.locator(".privacy").get_attribute("data-level") in ("success", "warning", "danger")
    assert "smaller is more private" in page.inner_text("#privacy-explained")
    named = page.locator(f"#participants-table tr[data-participant='{hospitals[0].address}'] .participant-name")
    assert named.inner_text() == "St Mary's"

    problems = check_every_page(page, "auditor", tmp_path, ready={"studies": "#study-report[data-rendered='true']"},
                                shoot=("studies",))
    assert not problems, "\n".join(problems)

    origin, token = _origin_and_token(page)
    status, _, answer = _request(f"{origin}/api/studies/{later + 1}", token=token)
    assert status == 400 and f"there is no study {later + 1}" in answer["error"]

    # One who is not in the study sees the chain's part, and why the rest is missing.
    outsider = portal(9, contract=access.address, registry=registry.address)
    outsider.click("#tab-studies")
    outsider.select_option("#study-select", str(study))
    outsider.click("#study-submit")
    outsider.wait_for_selector(f"#study-report[data-study='{study}'][data-rendered='true']")
    assert outsider.locator("#rounds-table tr[data-round='2'] .round-verified").inner_text() == "not checked"
    assert outsider.locator("#metrics-chart").count() == 0  # no empty axes: the reason instead
    assert "notes below say why" in outsider.inner_text("#metrics-none")
    notes = outsider.inner_text("#study-notes")
    assert "only the study's auditors and its coordinator" in notes


def test_studies_page_without_a_registry_says_so(portal, publish_keys):
    publish_keys(1)
    page = portal(1)
    page.click("#tab-studies")
    assert page.locator("#studies-none").is_visible()
    assert "No round registry" in page.inner_text("#studies-none")
    origin, token = _origin_and_token(page)
    status, _, answer = _request(f"{origin}/api/studies/1", token=token)
    assert status == 400 and "no RoundRegistry" in answer["error"]
    status, _, answer = _request(f"{origin}/api/studies/one", token=token)
    assert status == 400 and "not a study number" in answer["error"]


def test_studies_page_shows_the_hospitals_published_metrics_by_round(portal, study_chain, portal_home):
    access, registry, members, coordinator, auditor, hospitals = study_chain
    config = StudyConfig(ModelSpec("logistic", 30), tuple(h.address for h in hospitals), (auditor.address,))
    study = members[coordinator.address].create_study(config, min_updates=HOSPITALS).number
    _run_rounds(members, coordinator, hospitals, study, 2, evaluate=True)
    remember_names(Settings(home=portal_home), {hospitals[0].address: "St Mary's"})
    expected = study_report(members[auditor.address], study, verify=False).rounds[0].metrics

    page = portal(AUDITOR, contract=access.address, registry=registry.address, axe=True)
    page.click("#tab-studies")
    page.wait_for_selector(f"#study-report[data-study='{study}'][data-rendered='true']")
    table = page.locator("#metrics-table")
    weighted = table.locator("tr[data-round='1'][data-hospital='weighted']")
    assert weighted.locator(".metric-auroc").inner_text() == f"{expected.weighted.auroc:.3f}"
    assert weighted.locator(".metric-examples").inner_text() == str(expected.weighted.examples)
    for hospital in hospitals:
        row = table.locator(f"tr[data-round='1'][data-hospital='{hospital.address}']")
        site = expected.sites[hospital.address]
        for name in ("auroc", "sensitivity", "specificity", "brier", "accuracy", "loss"):
            assert row.locator(f".metric-{name}").inner_text() == f"{getattr(site, name):.3f}"
    assert "St Mary's" in table.locator(f"tr[data-hospital='{hospitals[0].address}']").inner_text()
    assert table.locator("tr[data-round='2']").count() == 0  # the last model: no next update carried its metrics
    chart = page.evaluate("() => Chart.getChart('metrics-chart').data.datasets.map((d) => [d.label, d.data])")
    plotted = dict(chart)
    assert list(plotted) == [f"{name}, weighted (validation splits)"
                             for name in ("AUROC", "Sensitivity", "Specificity", "Accuracy", "Brier")]
    assert plotted["AUROC, weighted (validation splits)"] == [pytest.approx(expected.weighted.auroc)]
    assert plotted["Brier, weighted (validation splits)"] == [pytest.approx(expected.weighted.brier)]
