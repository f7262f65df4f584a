"""The study report (offchain.rounds.report) that `medshare fl status`, `fl run` and the portal show:
verdicts, test accuracy, participants with names, privacy spend, and what a non-member cannot check."""

import io

import pytest
from click.testing import CliRunner

from fl.client import LocalTrainingConfig
from fl.models import ModelSpec
from fl.privacy import DPParameters, DPSGDConfig, epsilon_of
from offchain.addressbook import known_names, remember_names
from offchain.cli import main
from offchain.errors import InvalidInput
from offchain.rounds.config import StudyConfig
from offchain.rounds.coordinator import Coordinator
from offchain.rounds.report import bundled_test_split, privacy_spend, round_accuracy, study_report
from offchain.settings import Settings

from .conftest import PASSPHRASE
from .tamper import flip_stored_byte


def test_report_verifies_and_scores_for_an_auditor_and_says_what_a_stranger_cannot_check(consortium):
    study = consortium.study()
    consortium.run_round(study)
    consortium.run_round(study)
    first = consortium.hospitals[0].address
    test = bundled_test_split()  # a simulation's or a bench's: only they hold a test split
    report = study_report(consortium.auditor, study, names={first: "hospital-1"}, test=test)
    view = consortium.auditor.study(study)
    assert [(r.status.round, r.status.state, r.verified) for r in report.rounds] == [
        (1, "committed", True), (2, "committed", True)]
    assert [r.test_accuracy for r in report.rounds] == [round_accuracy(view, 1), round_accuracy(view, 2)]
    assert all(0.5 < r.test_accuracy <= 1.0 for r in report.rounds)
    assert [(p.address, p.name, p.submitted, p.counted, p.privacy) for p in report.participants][0] == (
        first, "hospital-1", 2, 2, None)
    assert not report.dp_declared and report.notes == ()
    text = "\n".join(report.lines())
    assert "round 2: committed, 3 updates, 3 counted, verified, test accuracy" in text
    stored = [consortium.auditor.store.cat(update.artifact.cid, io.BytesIO())
              for update in consortium.auditor.rounds.updates(study, 2)]
    assert report.rounds[1].status.update_bytes == round(sum(stored) / 3) > 0
    assert f"{report.rounds[1].status.update_bytes:,} bytes per update stored" in text
    assert f"{first} (hospital-1): 2 updates, 2 counted; no DP declared" in text
    assert report.to_json()["rounds"][1]["verified"] is True

    outsider = study_report(consortium.stranger, study, test=test)
    assert [(r.verified, r.test_accuracy) for r in outsider.rounds] == [(None, None), (None, None)]
    # Sizes are public: a stranger sees the bytes stored per update too.
    assert [r.status.update_bytes for r in outsider.rounds] == [r.status.update_bytes for r in report.rounds]
    assert any("auditors and its coordinator" in note for note in outsider.notes)
    assert any("only the study's members" in note for note in outsider.notes)

    flip_stored_byte(consortium.auditor.store, consortium.auditor.rounds.round(study, 2).aggregate.cid)
    damaged = study_report(consortium.auditor, study, test=test)
    assert [(r.verified, r.failed_check) for r in damaged.rounds] == [(True, None), (False, "aggregate")]
    assert damaged.rounds[1].test_accuracy is None and damaged.rounds[0].test_accuracy is not None
    assert any(note.startswith("round 2: no test accuracy") for note in damaged.notes)


def test_privacy_spend_composes_every_submitted_update_even_in_a_cancelled_round(consortium, chain):
    dp = DPSGDConfig(noise_multiplier=1.5, max_grad_norm=1.0, sample_rate=0.5, epsilon_budget=20.0)
    config = StudyConfig(ModelSpec("logistic", 30), tuple(m.address for m in consortium.hospitals),
                         (consortium.auditor.address,), training=LocalTrainingConfig(epochs=2), dp=dp,
                         round_seconds=100)
    study = consortium.coordinator.create_study(config, min_updates=3).number
    coordinator = Coordinator(consortium.coordinator, study)
    coordinator.step()
    first, *_ = consortium.nodes(study)
    assert first.step().action == "submitted"  # alone: the round misses its quorum
    chain.mine(timestamp=chain.pending_timestamp + 200)
    assert coordinator.step().action == "cancelled"
    consortium.run_round(study)
    view = consortium.auditor.study(study)
    release = DPParameters(1.5, 0.5, 2 * 2, 1.0)  # 2 epochs of ceil(1 / 0.5) steps
    spent = privacy_spend(view, consortium.hospitals[0].address)
    assert spent.releases == 2 and spent.epsilon == pytest.approx(epsilon_of([release] * 2, dp.delta))
    assert spent.budget == 20.0 and not spent.over_budget
    other = privacy_spend(view, consortium.hospitals[1].address)
    assert other.releases == 1 and other.epsilon == pytest.approx(epsilon_of([release], dp.delta))
    report = study_report(consortium.auditor, study, verify=False)
    assert report.dp_declared and [p.privacy for p in report.participants][:2] == [spent, other]
    assert f"epsilon {spent.epsilon:.3f} of a budget of 20 (delta 1e-05, 2 updates)" in "\n".join(report.lines())


def test_fl_status_prints_the_report_with_known_names(consortium, monkeypatch):
    study = consortium.study()
    consortium.run_round(study)
    home = Settings(home=consortium.home)
    first = consortium.hospitals[0].address
    remember_names(home, {first: "St Mary's"})
    monkeypatch.setenv("MEDSHARE_HOME", str(consortium.home))
    monkeypatch.setenv("MEDSHARE_PASSPHRASE", PASSPHRASE)
    result = CliRunner().invoke(main, ["fl", "status", "--study", str(study), "--account", "TEST::2", "--contract",
                                       consortium.access.address, "--registry", consortium.registry.address])
    assert result.exit_code == 0, result.output
    # A consortium's coordinator holds no test split: fl status shows no test accuracy, only what the
    # hospitals publish and what the chain and the store hold.
    assert "round 1: committed, 3 updates, 3 counted, verified, " in result.output
    assert "bytes per update stored" in result.output and "test accuracy" not in result.output
    assert f"{first} (St Mary's): 1 updates, 1 counted; no DP declared" in result.output


def test_address_book_refuses_a_damaged_file_in_words(tmp_path):
    settings = Settings(home=tmp_path)
    assert known_names(settings) == {}
    remember_names(settings, {"0x70997970c51812dc3a010c7d01b50e0d17dc79c8": "hospital-1"})
    assert known_names(settings) == {"0x70997970C51812dc3A010C7d01b50e0d17dc79C8": "hospital-1"}
    for damaged in ("not json", '["a list"]', '{"0x1234": "short"}', '{"0x70997970C51812dc3A010C7d01b50e0d17dc79C8": 7}'):
        (tmp_path / "names.json").write_text(damaged)
        with pytest.raises(InvalidInput, match="names.json"):
            known_names(settings)
