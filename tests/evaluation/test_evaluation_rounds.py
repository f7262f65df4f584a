"""Federated evaluation on the chain path: hospital nodes publish their metrics of each committed model
with their next update, and the report gathers them per round (real anvil, real store, the library's
nodes and coordinator)."""

import json

import pytest

from fl.artifacts import decode_artifact
from fl.client import LocalTrainingConfig
from fl.models import ModelSpec
from offchain.rounds.config import StudyConfig
from offchain.rounds.evaluation import EVALUATION_METADATA, published_metrics
from offchain.rounds.participant import HospitalNode
from offchain.rounds.privacy import DP_LEARNING_RATE, budgeted_dp
from offchain.rounds.report import study_report
from offchain.rounds.sealed import UPDATE
from offchain.rounds.study import Study


def run_rounds(consortium, study: int, nodes, count: int) -> None:
    for _ in range(count):
        consortium.run_round(study, nodes)


def test_each_hospital_publishes_its_metrics_of_the_last_committed_model(consortium, evaluating_nodes):
    study = consortium.study(min_updates=3)
    nodes = evaluating_nodes(consortium, study)
    run_rounds(consortium, study, nodes, 3)
    report = study_report(consortium.auditor, study)
    by_round = {entry.status.round: entry for entry in report.rounds}
    hospitals = {member.address for member in consortium.hospitals}
    for number in (1, 2):  # published with the updates of rounds 2 and 3
        metrics = by_round[number].metrics
        assert set(metrics.sites) == hospitals
        for address, node in zip([m.address for m in consortium.hospitals], nodes):
            site = metrics.sites[address]
            assert 0.5 < site.auroc <= 1.0 and 0 <= site.brier < 0.25 and site.examples == node.validation.num_samples
        combined = metrics.weighted
        assert combined.examples == sum(node.validation.num_samples for node in nodes)
        expected = sum(s.auroc * s.examples for s in metrics.sites.values()) / combined.examples
        assert combined.auroc == pytest.approx(expected)
    # The last model has no next update: nothing published about it until the study ends for the nodes.
    assert by_round[3].metrics is None
    for node in nodes:
        node.target_rounds = 3
        assert node.step().action == "done"
    # Each posted once (a second step posts nothing more); a later posting of a hospital does not count.
    assert [node.step().action for node in nodes] == ["done"] * 3
    postings = consortium.auditor.rounds.evaluations(study, 3)
    assert {posting.hospital for posting in postings} == hospitals and len(postings) == 3
    assert len(consortium.auditor.rounds.logs("EvaluationReported", study=study, round=3)) == 3
    consortium.hospitals[0].rounds.report_evaluation(study, 3, postings[1].artifact)  # not its own: would not open
    final_report = study_report(consortium.auditor, study)
    assert not [note for note in final_report.notes if "ignored" in note], final_report.notes
    final = final_report.rounds[2].metrics
    assert set(final.sites) == hospitals
    for address, node in zip([m.address for m in consortium.hospitals], nodes):
        assert 0.5 < final.sites[address].auroc <= 1.0 and final.sites[address].examples == node.validation.num_samples
    assert final.sites != by_round[2].metrics.sites  # the final model's, not the one before it
    document = report.to_json()["rounds"][0]["metrics"]
    assert set(document["hospitals"]) == hospitals and 0.5 < document["weighted"]["auroc"] <= 1.0
    assert not [note for note in report.notes if "ignored" in note]
    assert "metrics, weighted: auroc" in "\n".join(report.lines())
    # A hospital cannot read the others' updates, so it is told why it sees no metrics.
    hospital_view = study_report(consortium.hospitals[0], study, verify=False)
    assert all(entry.metrics is None for entry in hospital_view.rounds)
    assert any("read the metrics the hospitals publish" in note for note in hospital_view.notes)


def test_the_last_round_reads_the_evaluations_of_the_hospitals_it_counted_only(consortium, evaluating_nodes):
    """A hospital whose update the coordinator rejected may post (it submitted), but no reader counts it."""
    from offchain.rounds.study import aggregate_bytes

    study = consortium.study(min_updates=2)
    nodes = evaluating_nodes(consortium, study)
    rounds = consortium.coordinator.rounds
    view = Study(consortium.coordinator, study)
    rounds.open_round(study, view.info.genesis, rounds.now() + 600)
    assert [node.step().action for node in nodes] == ["submitted"] * 3
    rejected = consortium.hospitals[2].address
    aggregate = view.store_aggregate(1, aggregate_bytes(study, 1, view.model(0)))
    rounds.commit_aggregate(study, 1, rounds.submitters(study, 1), aggregate, rejected=[rejected])
    for node in nodes:
        node.target_rounds = 1
        assert node.step().action == "done"
    assert len(rounds.evaluations(study, 1)) == 3
    report = study_report(consortium.auditor, study, verify=False)
    assert set(report.rounds[0].metrics.sites) == {m.address for m in consortium.hospitals[:2]}
    warnings = [note for note in report.notes if rejected in note]
    assert len(warnings) == 1 and "the round did not count its update" in warnings[0], report.notes


def test_a_dp_study_publishes_metrics_without_counts(consortium, evaluating_nodes):
    training = LocalTrainingConfig(learning_rate=DP_LEARNING_RATE)
    config = StudyConfig(ModelSpec("logistic", 30), tuple(m.address for m in consortium.hospitals),
                         (consortium.auditor.address,), training=training,
                         dp=budgeted_dp(4.0, 1e-5, 2, training), decision_threshold=0.3)
    study = consortium.coordinator.create_study(config, 3).number
    nodes = evaluating_nodes(consortium, study)
    run_rounds(consortium, study, nodes, 2)
    view = Study(consortium.auditor, study)
    for update in consortium.auditor.rounds.updates(study, 2):
        plaintext = view.open(update.artifact, view.place(2, UPDATE, update.participant))
        document = json.loads(decode_artifact(plaintext).metadata[EVALUATION_METADATA])
        assert "examples" not in document["metrics"] and document["model_round"] == 1
    metrics = published_metrics(view).rounds[1]
    assert len(metrics.sites) == 3 and all(site.examples is None for site in metrics.sites.values())
    assert metrics.weighted.examples is None
    assert metrics.weighted.auroc == pytest.approx(sum(s.auroc for s in metrics.sites.values()) / 3)
    for node in nodes:  # the study ends: the last model's metrics are posted, without counts too
        node.target_rounds = 2
        assert node.step().action == "done"
    for entry in study_report(consortium.auditor, study).to_json()["rounds"]:
        assert len(entry["metrics"]["hospitals"]) == 3
        assert all("examples" not in site for site in entry["metrics"]["hospitals"].values())
        assert "examples" not in entry["metrics"]["weighted"]


class _Lying(HospitalNode):
    """A hospital whose published metrics are not a well-formed evaluation of the round's base."""

    payload = "{not json"

    def _evaluation(self, base_round, parameters):
        return {EVALUATION_METADATA: self.payload}


@pytest.mark.parametrize("payload, reason", [
    ("{not json", "not JSON"),
    (json.dumps({"format": "medshare-evaluation/1", "model_round": 1,
                 "metrics": {"task": "binary", "loss": 0.1, "accuracy": 2.0, "auroc": 0.9, "sensitivity": 1.0,
                             "specificity": 1.0, "brier": 0.0}}), "accuracy is out of range"),
    (json.dumps({"format": "medshare-evaluation/1", "model_round": 0,
                 "metrics": {"task": "binary", "loss": 0.1, "accuracy": 1.0, "auroc": 1.0, "sensitivity": 1.0,
                             "specificity": 1.0, "brier": 0.0, "examples": 5}}), "the model of round 0"),
])
def test_malformed_metrics_are_ignored_with_one_warning(consortium, evaluating_nodes, payload, reason):
    study = consortium.study(min_updates=3)
    liar = type("Liar", (_Lying,), {"payload": payload})
    honest = evaluating_nodes(consortium, study)
    nodes = [*honest[:2], evaluating_nodes(consortium, study, node=liar)[2]]
    run_rounds(consortium, study, nodes, 2)
    report = study_report(consortium.auditor, study)
    liar_address = consortium.hospitals[2].address
    warnings = [note for note in report.notes if liar_address in note]
    assert len(warnings) == 1 and "ignored" in warnings[0] and reason in warnings[0], report.notes
    metrics = report.rounds[0].metrics
    assert set(metrics.sites) == {m.address for m in consortium.hospitals[:2]}
    # The round itself is unaffected: the update is well formed, counted and verified.
    assert report.rounds[1].verified and len(report.rounds[1].status.counted) == 3


def test_a_validation_split_unlike_the_training_data_is_refused(consortium):
    from fl.data import Dataset, federated_breast_cancer
    from offchain.rounds.errors import RoundsError

    study = consortium.study()
    share = federated_breast_cancer(3).hospitals[0]
    narrow = Dataset(share.data.features[:5, :3], share.data.labels[:5])
    with pytest.raises(RoundsError, match="validation split has 3 features, its training data 30"):
        HospitalNode(consortium.hospitals[0], study, share, validation=narrow)


def test_participant_takes_validation_only_with_its_own_table(tmp_path):
    from click.testing import CliRunner

    from offchain.cli import main

    result = CliRunner().invoke(main, ["fl", "participant", "--study", "1", "--share", "1/2",
                                       "--validation", str(tmp_path / "v.csv")])
    assert result.exit_code == 2 and "--validation goes with --data" in result.output
