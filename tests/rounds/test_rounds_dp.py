"""Issue 19: differential privacy that stands on the chain path.

No record count in clear in a DP study; every declaration bound to the study's DP config; each
hospital's own cap across studies; PLD as a study's accountant; distributed DP under secure
aggregation. Real anvil, real store, the library's nodes, coordinator and verifier.
"""

import io
import math

import pytest
import torch

from fl.client import LocalTrainingConfig
from fl.data import federated_breast_cancer
from fl.models import ModelSpec, ParameterLayout
from fl.privacy import DistributedDPConfig, DPParameters, calibrate_distributed_dp, epsilon_of
from offchain.chain.contract import ChainRefusal
from offchain.ipfs.cid import CID
from offchain.rounds.client import logged_artifact
from offchain.rounds.config import StudyConfig
from offchain.rounds.coordinator import Coordinator
from offchain.rounds.errors import RoundsError, StudyConfigError
from offchain.rounds.ledger import PrivacyCap
from offchain.rounds.participant import HospitalNode
from offchain.rounds.privacy import (
    DP_LEARNING_RATE,
    Declaration,
    PrivacyCheckFailed,
    budgeted_dp,
    check_round,
    declarations,
    declare,
    epsilon_units,
    study_privacy,
    submit_private_update,
)
from offchain.rounds.secure_board import secure_sum
from offchain.rounds.verifier import verify_study
from .test_rounds_secure import Run, check_committed, five, keyless, secure_study  # noqa: F401 (five: a fixture)

EPSILON, DELTA = 2.0, 1e-5


def dp_study(consortium, rounds: int = 2, accountant: str = "rdp", epsilon: float = EPSILON) -> int:
    training = LocalTrainingConfig(learning_rate=DP_LEARNING_RATE)
    dp = budgeted_dp(epsilon, DELTA, rounds, training, accountant)
    config = StudyConfig(ModelSpec("logistic", 30), tuple(m.address for m in consortium.hospitals),
                         (consortium.auditor.address,), training=training, dp=dp)
    return consortium.coordinator.create_study(config, 2).number


def counts() -> set[int]:
    """Each of the three hospitals' record counts, and their total."""
    shares = [share.data.num_samples for share in federated_breast_cancer(3).hospitals]
    return {*shares, sum(shares)}


def study_logs(rounds, study: int) -> list:
    """Every log of the registry that belongs to ``study`` (PrivacySpent by its transaction)."""
    found, transactions = [], set()
    for event in rounds.contract.contract_type.events:
        for log in rounds.logs(event.name):
            if int(log.event_arguments.get("study", -1)) == study:
                found.append(log)
                transactions.add(log.transaction_hash)
    return found + [log for log in rounds.logs("PrivacySpent") if log.transaction_hash in transactions]


# Item 1: no public counts ---------------------------------------------------------------------------


def assert_no_record_count(member, logs: list, hidden: set[int]) -> None:
    """No count of ``hidden`` (each hospital's records, and their total) in ``logs``' arguments, in the
    calldata of the transactions that emitted them, or in any object of the store they name."""
    for log in logs:
        for name, value in log.event_arguments.items():
            if isinstance(value, int) and not isinstance(value, bool):
                assert value not in hidden, (log.event_name, name, value)
            if name == "samples":
                assert value == 0, log
    web3 = member.rounds.contract.provider.web3
    for transaction in {log.transaction_hash for log in logs}:
        method, arguments = member.rounds.contract.decode_input(web3.eth.get_transaction(transaction)["input"])
        for name, value in arguments.items():
            if isinstance(value, int) and not isinstance(value, bool):
                assert value not in hidden, (method, name, value)
            if name == "samples":
                assert value == 0, (method, arguments)
    # Every object the study names in the store: its config, genesis, updates (masked inputs) and aggregates.
    cids = [CID.from_bytes(bytes(log.event_arguments[name])) for log in logs
            for name in ("cid", "genesisCid", "configCid") if name in log.event_arguments]
    cids += [logged_artifact(log).cid for log in logs if "cidDigest" in log.event_arguments]  # updates
    assert len(cids) >= 6
    for cid in cids:
        out = io.BytesIO()
        member.store.cat(cid, out)
        raw = out.getvalue()
        assert b"data_samples" not in raw and b"samples" not in raw
        for count in hidden:
            assert f'"{count}"'.encode() not in raw and f":{count},".encode() not in raw


def test_a_dp_study_publishes_no_record_count_on_chain_or_in_the_store(consortium):
    study = dp_study(consortium)
    consortium.run_round(study)
    rounds = consortium.auditor.rounds
    logs = study_logs(rounds, study)
    assert {log.event_name for log in logs} >= {"StudyCreated", "UpdateSubmitted", "PrivacySpent", "RoundCommitted"}
    assert_no_record_count(consortium.auditor, logs, counts())
    # The registry itself refuses a count in a private update.
    update = rounds.updates(study, 1)[0]
    last = declarations(rounds, study, participant=update.participant)[-1].declaration
    coordinator = Coordinator(consortium.coordinator, study)
    assert coordinator.step().action == "opened"
    with pytest.raises(ChainRefusal, match="SampleCountInPrivateUpdate"):
        consortium.hospitals[0].rounds._send(
            consortium.hospitals[0].rounds.contract.submitPrivateUpdate, study, 2, bytes(update.artifact.cid),
            update.artifact.sha256, 190, last.packed())



def test_a_record_level_distributed_dp_study_publishes_no_record_count_nor_the_sums_total_weight(consortium):
    training, _, distributed = study_privacy(EPSILON, DELTA, 1, distributed_survivors=2)
    assert distributed.record_level
    study = secure_study(consortium, consortium.hospitals, threshold=2, training=training, distributed_dp=distributed)
    assert Run(consortium, consortium.hospitals, study).drive().action == "committed"
    logs = study_logs(consortium.auditor.rounds, study)
    assert {log.event_name for log in logs} >= {"StudyCreated", "UpdateSubmitted", "PrivacySpent", "RoundCommitted"}
    assert_no_record_count(consortium.auditor, logs, counts())
    # Anyone can unmask the secure sum: its total weight counts the survivors, not their records.
    view = keyless(consortium.stranger).study(study)
    assert secure_sum(view, 1).total_weight == len(consortium.hospitals)

# Item 2: declarations bound to the study ------------------------------------------------------------


def test_a_declaration_other_than_the_studys_dp_config_is_rejected_and_fails_the_verifier(consortium):
    study = dp_study(consortium)
    # The cheat declares sigma 1000 (nearly no epsilon, its own accountant's figure for it, within its
    # budget: the registry takes it), whatever it trained with.
    coordinator, cheat, update = consortium.cheat_in_round_one(study, data_samples=1)
    view = cheat.study
    true = cheat.client.dp_round_parameters
    lie = declare(DPParameters(1000.0, true.sample_rate, true.steps, true.clipping_norm))
    units = epsilon_units([lie], DELTA)
    forged = Declaration(round(lie.noise_multiplier * 10**9), round(lie.sample_rate * 10**9),
                         round(lie.clipping_norm * 10**9), lie.steps, units)
    submit_private_update(cheat.member.rounds, study, 1, update, forged)
    # The verifier (here straight from the library) refuses such a declaration if counted...
    with pytest.raises(PrivacyCheckFailed, match="declared .sigma, q, clip, steps. .1000"):
        check_round(consortium.auditor.rounds, study, 1, [cheat.member.address], view.config)
    # ...and the coordinator does not count it: it rejects it, and the verifier agrees.
    step = coordinator.step()
    assert step.action == "committed", step
    info = consortium.auditor.rounds.round(study, 1)
    assert list(info.rejected_submitters) == [cheat.member.address]
    assert cheat.member.address not in info.counted_submitters
    assert [(v.round, v.verified) for v in verify_study(consortium.auditor, study)] == [(1, True)]


def forged(declaration: Declaration, noise_multiplier: float | None = None, epsilon: int | None = None):
    """``declaration`` with another noise multiplier (its epsilon then recomputed) or another epsilon (units)."""
    parameters = declaration.parameters()
    if noise_multiplier is not None:
        lie = declare(DPParameters(noise_multiplier, parameters.sample_rate, parameters.steps,
                                   parameters.clipping_norm))
        return Declaration(round(lie.noise_multiplier * 10**9), *declaration.as_tuple()[1:4],
                           epsilon_units([lie], DELTA))
    return Declaration(*declaration.as_tuple()[:4], epsilon)


def test_a_secure_round_routes_around_a_declaration_the_verifier_refuses(consortium, five):  # noqa: F811
    training = LocalTrainingConfig(learning_rate=DP_LEARNING_RATE)
    study = secure_study(consortium, five, threshold=3, training=training, dp=budgeted_dp(EPSILON, DELTA, 2, training))
    run = Run(consortium, five, study)
    liar, understater = run.nodes[1], run.nodes[3]
    # One declares sigma 1000 (its epsilon true to that sigma), one the study's DP with half its epsilon:
    # the registry takes both (ranges and a rising spend), the verifier's privacy check takes neither.
    lies = {liar: lambda d: forged(d, noise_multiplier=1000.0),
            understater: lambda d: forged(d, epsilon=d.epsilon_units // 2)}
    for node, lie in lies.items():
        def submit(number, update, samples, declared, _submit=node._submit, _lie=lie):
            return _submit(number, update, samples, _lie(declared))
        node._submit = submit
    # Their masked inputs are silence to every reader: the others unmask them as dropouts, the round commits
    # the exact mean of the three honest ones, and the keyless verifier agrees.
    assert run.drive().action == "committed"
    cheats = {liar.member.address, understater.member.address}
    honest = [m.address for m in five if m.address not in cheats]
    info = consortium.auditor.rounds.round(study, 1)
    assert sorted(info.counted_submitters) == sorted(honest)
    assert sorted(info.rejected_submitters) == sorted(cheats)
    check_committed(run, 1, honest)
    assert [(v.round, v.verified, v.updates) for v in verify_study(keyless(consortium.stranger), study)] == [(1, True, 3)]
    # What the verifier would have said had the coordinator counted them.
    for cheat, why in [(liar, "declared .sigma, q, clip, steps. .1000"), (understater, "declared epsilon")]:
        with pytest.raises(PrivacyCheckFailed, match=why):
            check_round(consortium.auditor.rounds, study, 1, [cheat.member.address], run.coordinator.study.config)


# Item 3: each hospital's own cap across studies -----------------------------------------------------


def test_a_hospitals_own_cap_holds_across_studies_on_the_same_data(consortium, tmp_path):
    first, second = dp_study(consortium, rounds=2), dp_study(consortium, rounds=2)
    share = federated_breast_cancer(3).hospitals[0]
    hospital = consortium.hospitals[0]
    home = tmp_path / "hospital-1"
    probe = HospitalNode(hospital, first, share)
    one_round = epsilon_of([probe.client.dp_round_parameters], DELTA)
    two_rounds = epsilon_of([probe.client.dp_round_parameters] * 2, DELTA)
    cap = PrivacyCap(max_epsilon=(one_round + two_rounds) / 2, delta=DELTA)  # one round, not two
    for study in (first, second):
        assert Coordinator(consortium.coordinator, study).step().action == "opened"
    assert HospitalNode(hospital, first, share, home=home, cap=cap).step().action == "submitted"
    # Another study on the same records, within its own budget: this node's cap (kept in its home) refuses
    # before training, as a node without the cap would not.
    refused = HospitalNode(hospital, second, share, home=home)
    assert refused.cap == cap
    step = refused.step()
    assert (step.action, step.detail) == ("done", "privacy cap reached")
    assert consortium.auditor.rounds.updates(second, 1) == []
    assert len(refused.ledger.releases) == 1
    assert HospitalNode(hospital, second, share, home=tmp_path / "elsewhere").step().action == "submitted"
    # A capped node takes no study without DP, and a cap out of range is refused.
    with pytest.raises(RoundsError, match="trains without DP"):
        HospitalNode(hospital, consortium.study(), share, home=home)
    for epsilon, delta in [(-1.0, DELTA), (float("nan"), DELTA), (1.0, 0.0), (1.0, 1.5)]:
        with pytest.raises(RoundsError, match="privacy cap"):
            PrivacyCap(epsilon, delta)


def test_participant_cli_takes_a_cap_with_its_delta_only(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from offchain.cli import main

    monkeypatch.setenv("MEDSHARE_HOME", str(tmp_path))
    alone = CliRunner().invoke(main, ["fl", "participant", "--study", "1", "--share", "1/3", "--max-epsilon", "2"])
    assert alone.exit_code == 2 and "--max-epsilon and --delta go together" in alone.output
    bad = CliRunner().invoke(main, ["fl", "participant", "--study", "1", "--share", "1/3", "--max-epsilon", "-2",
                                    "--delta", "1e-5"])
    assert bad.exit_code == 2 and "privacy cap" in bad.output


# Item 6: PLD as the study's accountant --------------------------------------------------------------


def test_a_pld_study_declares_and_verifies_with_pld(consortium):
    study = dp_study(consortium, rounds=2, accountant="pld")
    config = consortium.auditor.study(study).config
    assert config.dp.accountant == "pld" and b'"accountant":"pld"' in config.canonical_bytes()
    consortium.run_round(study)
    rounds = consortium.auditor.rounds
    for entry in declarations(rounds, study, round=1):
        history = [entry.declaration.parameters()]
        assert entry.declaration.epsilon_units == epsilon_units(history, DELTA, "pld")
        assert entry.declaration.epsilon_units < epsilon_units(history, DELTA, "rdp")
    assert [(v.round, v.verified) for v in verify_study(consortium.auditor, study)] == [(1, True)]


# Item 5: distributed DP under secure aggregation ----------------------------------------------------


def test_distributed_dp_noises_only_the_secure_sum_and_is_accounted_per_hospital(consortium):
    hospitals = consortium.hospitals
    distributed = calibrate_distributed_dp(1.0, DELTA, 1, clip_norm=0.5, min_survivors=2)
    study = secure_study(consortium, hospitals, threshold=2, distributed_dp=distributed)
    config = consortium.auditor.study(study).config
    assert config.distributed_dp == distributed and "coordinator and the public" in config.threat_model
    run = Run(consortium, hospitals, study)
    assert run.drive().action == "committed"
    rounds = consortium.auditor.rounds
    spent = declarations(rounds, study, round=1)
    assert len(spent) == 3
    for entry in spent:
        declared = entry.declaration.parameters()
        assert (declared.sample_rate, declared.steps, declared.clipping_norm) == (1.0, 1, 0.5)
        assert entry.declaration.epsilon_units <= 10**6
    # The sum carries the noise: the mean update is far from any clipped mean (whose norm is at most 0.5).
    base = run.coordinator.study.model(0)
    layout = ParameterLayout.of(base)
    mean = layout.flatten(run.coordinator.study.model(1)) - layout.flatten(base)
    expected_norm = distributed.share_std * math.sqrt(3 * layout.size) / 3
    assert 0.5 * expected_norm < float(torch.linalg.vector_norm(mean)) < 1.5 * expected_norm + 0.5
    assert all(log.event_arguments["samples"] == 0 for log in rounds.logs("UpdateSubmitted", study=study))
    assert [v.verified for v in verify_study(keyless(consortium.stranger), study)] == [True]


def test_record_level_distributed_dp_runs_one_dp_sgd_step_a_round_in_the_secure_sum(consortium):
    hospitals = consortium.hospitals
    training, dp, distributed = study_privacy(2.0, DELTA, 2, distributed_survivors=2)
    assert dp is None and distributed.record_level
    study = secure_study(consortium, hospitals, threshold=2, training=training, distributed_dp=distributed)
    config = consortium.auditor.study(study).config
    assert config.distributed_dp == distributed and b'"sample_rate":0.5' in config.canonical_bytes()
    run = Run(consortium, hospitals, study)
    assert run.drive().action == "committed"
    rounds = consortium.auditor.rounds
    spent = declarations(rounds, study, round=1)
    assert sorted(entry.participant for entry in spent) == sorted(m.address for m in hospitals)
    for entry in spent:  # each record's release: one sampled-Gaussian step at the full noise
        assert entry.declaration.parameters() == DPParameters(distributed.noise_multiplier, 0.5, 1, 0.5)
        assert entry.declaration.epsilon_units == epsilon_units([distributed.round_release], DELTA)
    # The committed model moved from the base by the mean of the survivors' steps (each its own noised sum).
    base, model = run.coordinator.study.model(0), run.coordinator.study.model(1)
    layout = ParameterLayout.of(base)
    moved = float(torch.linalg.vector_norm(layout.flatten(model) - layout.flatten(base)))
    assert 0 < moved < training.learning_rate * (426 * 0.5 + 10 * distributed.noise_multiplier * 0.5 * 6)
    assert all(log.event_arguments["samples"] == 0 for log in rounds.logs("UpdateSubmitted", study=study))
    assert [v.verified for v in verify_study(keyless(consortium.stranger), study)] == [True]


def test_distributed_dp_settings_are_checked():
    spec, people = ModelSpec("logistic", 30), tuple(f"0x{i:040x}" for i in range(1, 4))
    distributed = DistributedDPConfig(clip_norm=1.0, noise_multiplier=2.0, min_survivors=2)
    with pytest.raises(StudyConfigError, match="needs secure_aggregation"):
        StudyConfig(spec, people, distributed_dp=distributed)
    with pytest.raises(ValueError, match="min_survivors"):
        DistributedDPConfig(clip_norm=1.0, noise_multiplier=2.0, min_survivors=1)
    assert math.isclose(distributed.share_std, 2.0 / math.sqrt(2))  # sigma * C / sqrt(min_survivors)
