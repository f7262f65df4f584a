"""``medshare fl run --secure-aggregation``: hospitals that die mid-round, and the round still commits the
exact FedAvg of the survivors.

Every party is its own OS process, as ``fl run`` starts them; a dropped hospital's process is killed with
SIGKILL once its key advertisement (or its masked input) is on chain. The expected aggregate is derived
independently of the protocol: each survivor's update trained again here from the committed base model
(full-batch local training, so the batch order cannot change it), then averaged by hand, weighted by
sample counts.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from offchain.cli import main
from .conftest import PASSPHRASE
from .test_rounds_cli import _processes_with
from .test_rounds_cli import fl  # noqa: F401 (the fixture)
from .test_rounds_secure import Run, five, secure_study  # noqa: F401 (five: the fixture)

MEDSHARE = [sys.executable, "-c", "from offchain.cli import main; main()"]
HOSPITALS = 5
PHASE_SECONDS = 30  # how long a phase waits for a silent hospital; a restarted node must post keys within it
EPOCHS = 5
FULL_BATCH = 10_000  # more than any hospital's records: one batch, whatever the order
# Fixed point (2^-24) and float32 storage, far below what one hospital's update moves the mean.
TOLERANCE = 1e-5

# The run, through the library `fl run` calls, with full-batch training (which the CLI does not offer).
DRIVER = """
import json, os, sys
from fl.client import LocalTrainingConfig
from offchain.rounds.faults import Dropout
from offchain.rounds.runner import RunSettings, run_study
from offchain.settings import Settings
run = RunSettings(rounds=2, hospitals={hospitals}, rpc=sys.argv[1], passphrase=os.environ["MEDSHARE_PASSPHRASE"],
                  secure=True, phase_seconds={phase},
                  drops=(Dropout.parse("hospital-2@1"), Dropout.parse("hospital-4@1:masked-input")),
                  training=LocalTrainingConfig(epochs={epochs}, batch_size={batch}))
print(json.dumps(run_study(run, Settings.from_env(), echo=lambda line: None, progress=False).to_json()))
""".format(hospitals=HOSPITALS, phase=PHASE_SECONDS, epochs=EPOCHS, batch=FULL_BATCH)


@pytest.mark.parametrize("options, message", [
    (["--hospitals", "5", "--drop", "hospital-2@1"], "--threshold, --drop and phase seconds need --secure-aggregation"),
    (["--hospitals", "5", "--threshold", "3"], "need --secure-aggregation"),
    (["--hospitals", "5", "--secure-aggregation", "--drop", "hospital-6@1"], "there is no hospital-6"),
    (["--hospitals", "5", "--secure-aggregation", "--drop", "hospital-2@3"], "there is no round 3"),
    (["--hospitals", "5", "--secure-aggregation", "--drop", "hospital-2@0"], "there is no round 0"),
    (["--hospitals", "5", "--secure-aggregation", "--drop", "two@1"], "expected HOSPITAL@ROUND"),
    (["--hospitals", "5", "--secure-aggregation", "--drop", "hospital-2@1:later"], "'later' is not one of keys"),
    (["--hospitals", "5", "--secure-aggregation", "--drop", "hospital-2@1", "--drop", "2@1:shares"],
     "hospital-2 already goes silent in round 1"),
    (["--hospitals", "5", "--secure-aggregation", "--threshold", "2"], "threshold 2 must exceed half of the 5"),
    (["--hospitals", "5", "--secure-aggregation", "--threshold", "6"], "threshold 6 exceeds the 5"),
    (["--hospitals", "2", "--secure-aggregation"], "needs at least 3 clients"),
    (["--hospitals", "6", "--secure-aggregation", "--select", "3"], "threshold 4 exceeds the 3 clients"),
    (["--hospitals", "5", "--secure-aggregation", "--aggregator", "trimmed_mean"], "use one of fedadam, fedavg"),
    (["--hospitals", "3", "--secure-aggregation", "--drop", "hospital-1@1"],
     "round 1: with 1 of 3 hospitals silent, 2 masked inputs"),
    (["--hospitals", "5", "--secure-aggregation", "--drop", "hospital-1@1:masked-input", "--drop",
      "hospital-2@1:masked-input", "--drop", "hospital-3@1:masked-input"], "2 unmasking answers remain"),
])
def test_fl_run_refuses_bad_secure_options_in_one_line_with_status_2(options, message, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSHARE_HOME", str(tmp_path))
    monkeypatch.setenv("MEDSHARE_PASSPHRASE", PASSPHRASE)
    result = CliRunner().invoke(main, ["fl", "run", "--rounds", "2", *options])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], result.output
    assert not (tmp_path / "fl").exists(), "a refused run started something"


def test_fl_run_help_says_when_a_dropped_hospital_is_killed():
    shown = CliRunner().invoke(main, ["fl", "run", "--help"], terminal_width=400).output
    assert "--drop HOSPITAL@ROUND" in shown and "killed (SIGKILL) once its key advertisement is on chain" in shown


def test_fl_create_declares_secure_aggregation_in_the_config_and_on_chain(consortium, fl):  # noqa: F811
    participants = [arg for member in consortium.hospitals for arg in ("--participant", member.address)]
    created = fl(1, "create", *participants, "--auditor", consortium.auditor.address, "--secure-aggregation",
                 "--phase-seconds", "20")
    study = int(created.split()[1])
    view = consortium.auditor.study(study)
    assert view.info.secure is True
    secure = view.config.secure_aggregation
    assert (secure.threshold, secure.phase_seconds) == (2, 20)  # 3 hospitals: the smallest t over 1.5
    plain = consortium.auditor.study(consortium.study())
    assert plain.info.secure is False and plain.config.secure_aggregation is None

    def refused(*options):
        result = CliRunner().invoke(main, ["fl", "create", "--account", "TEST::1", "--contract",
                                           consortium.access.address, "--registry", consortium.registry.address,
                                           *participants, *options])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        return result.output

    assert "'--threshold': 1 is not in the range 2<=x<=50" in refused("--secure-aggregation", "--threshold", "1")
    assert "threshold 4 exceeds the 3 clients" in refused("--secure-aggregation", "--threshold", "4")
    assert "--threshold and --phase-seconds need --secure-aggregation" in refused("--threshold", "2")
    assert "use one of fedadam, fedavg, fedprox" in refused("--secure-aggregation", "--aggregator", "median")
    assert consortium.coordinator.rounds.studies()[-1] == plain.number, "a refused create made a study"


class Held(Exception):
    """What the test's hold raises instead of sleeping forever (the process a runner would kill)."""


@pytest.mark.parametrize("point, posted", [
    ("keys", {"keys"}), ("shares", {"keys", "shares"}), ("masked-input", {"keys", "shares", "masked-input"}),
])
def test_a_node_told_to_go_silent_holds_right_after_that_message_is_on_chain(consortium, five, point, posted,  # noqa: F811
                                                                             monkeypatch):
    """The hook `fl run --drop` sets in a hospital's node: it holds once its message of that point is
    on chain, whatever it would do next; the round then commits without it (or with its input)."""
    from offchain.rounds.client import SecurePhase
    from offchain.rounds.faults import SILENT_MARK, DropPoint, go_silent_after

    study = secure_study(consortium, five, threshold=3)
    run = Run(consortium, five, study)
    held: list[str] = []

    def hold(message: str) -> None:
        held.append(message)
        raise Held

    for member in five[1:3]:  # the members are the module's: their clients go back as they were
        monkeypatch.setattr(member.rounds, "on_sent", member.rounds.on_sent)
    go_silent_after(five[1].rounds, DropPoint(point), 1, hold)
    go_silent_after(five[2].rounds, DropPoint(point), 2, hold)  # another round's: never holds in round 1
    silent = False
    for _ in range(40):
        acted = False
        for index, node in enumerate(run.nodes):
            if index == 1 and silent:
                continue
            try:
                step = node.step()
            except Held:
                silent = True
                continue
            acted |= step.action not in ("waiting", "done")
        step = run.coordinator.step()
        if step.action == "committed":
            break
        if not acted and step.action == "waiting":
            run.clock.now += 31
    else:
        raise AssertionError(f"no commit: {run.logs}")
    assert held == [f"{SILENT_MARK} its {point} of round 1"]
    rounds, sender = consortium.auditor.rounds, five[1].address
    on_chain = {name for name, phase in (("keys", SecurePhase.KEYS), ("shares", SecurePhase.SHARES),
                                         ("unmasking", SecurePhase.UNMASKING))
                if sender in {m.sender for m in rounds.secure_messages(study, 1, phase)}}
    if sender in {update.participant for update in rounds.updates(study, 1)}:
        on_chain.add("masked-input")
    assert on_chain == posted
    counted = rounds.round(study, 1).counted_submitters
    assert (sender in counted) == (point == "masked-input")


def test_the_study_report_names_each_secure_rounds_survivors_and_dropouts(consortium, five):  # noqa: F811
    """One report for `fl status`, `fl run` and the portal: a hospital silent after its keys is dropped."""
    from offchain.rounds.report import study_report

    study = secure_study(consortium, five, threshold=3)
    run = Run(consortium, five, study, target_rounds=2)
    assert run.drive(silent_after={1: "advertised"}).action == "committed"
    names = {member.address: f"hospital-{i}" for i, member in enumerate(five, start=1)}
    report = study_report(consortium.auditor, study, names=names)
    document = report.to_json()
    assert document["secureAggregation"] is True
    first, second = document["rounds"]
    assert (first["secure_phase"], first["verified"]) == ("finished", True)
    assert list(first["survivors"]) == [m.address for i, m in enumerate(five) if i != 1]
    assert list(first["dropped"]) == [five[1].address]
    # Round 2 opened with the commit: in its key phase no one has dropped yet.
    assert (second["state"], second["secure_phase"], len(second["survivors"]), len(second["dropped"])) == \
        ("open", "keys", 0, 0)
    lines = "\n".join(report.lines())
    assert "round 1: committed, 4 updates, 4 counted, secure: 4 survivors, 1 dropped (hospital-2), verified" in lines
    assert "round 2: open, 0 updates, secure (phase keys): 0 survivors, 0 dropped" in lines
    plain = study_report(consortium.auditor, consortium.study()).to_json()
    assert plain["secureAggregation"] is False


def _member(summary: dict, home: Path, account_index: int):
    """Test account ``account_index`` as a study member, with the keystore the run made for it."""
    from ape import accounts, project

    from offchain.chain.access import AccessClient
    from offchain.crypto import Keystore
    from offchain.ipfs import open_store
    from offchain.rounds.registry import rounds_client
    from offchain.rounds.study import Member
    from offchain.settings import Settings

    settings = Settings(home=home)
    account = accounts.test_accounts[account_index]
    access = AccessClient(project.MedicalAccess.at(summary["access"]), account)
    return Member(rounds_client(access, summary["contract"]), access, open_store(settings),
                  Keystore.open(settings.keystore_path(account.address), PASSPHRASE))


def _fedavg(models: list[tuple[dict[str, torch.Tensor], int]]) -> dict[str, torch.Tensor]:
    total = sum(samples for _, samples in models)
    return {name: sum(parameters[name].double() * samples for parameters, samples in models) / total
            for name in models[0][0]}


def _distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[name].double() - b[name].double()).abs().max()) for name in a)


def test_killed_hospitals_are_recovered_and_the_round_commits_the_survivors_exact_fedavg(chain, tmp_path):
    """Round 1: hospital-2 is killed once its key advertisement is on chain, hospital-4 once its masked
    input is; round 2: both were started again and take part."""
    from fl.client import HospitalClient, LocalTrainingConfig
    from fl.data import federated_breast_cancer
    from offchain.rounds.client import SecurePhase

    home = tmp_path / "home"
    env = {**os.environ, "MEDSHARE_HOME": str(home), "MEDSHARE_PASSPHRASE": PASSPHRASE}
    rpc = chain.provider.http_uri
    run = subprocess.run([sys.executable, "-c", DRIVER, rpc], env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads(run.stdout.splitlines()[-1])
    first, second = summary["rounds"]
    everyone = [f"hospital-{i}" for i in range(1, HOSPITALS + 1)]

    # The JSON: hospital-2 dropped before its input, hospital-4's input is in the sum (it died unmasking).
    assert (first["round"], first["verified"], second["verified"]) == (1, True, True)
    assert sorted(first["survivors"]) == ["hospital-1", "hospital-3", "hospital-4", "hospital-5"]
    assert first["dropped"] == ["hospital-2"]
    assert sorted(first["participants"]) == sorted(first["survivors"])
    # Started again after round 1, the two take part in round 2 unless they came up too late for its keys.
    assert sorted(second["survivors"] + second["dropped"]) == everyone
    assert set(second["survivors"]) >= {"hospital-1", "hospital-3", "hospital-5"}
    logs = home / "fl" / "logs"
    assert "going silent after its keys of round 1" in (logs / "hospital-2.log").read_text()
    assert "going silent after its masked-input of round 1" in (logs / "hospital-4.log").read_text()
    assert _processes_with(home) == [], "the run left a node running"

    # The chain: what each killed hospital did and did not post in round 1.
    auditor = _member(summary, home, 2)
    rounds, study = auditor.rounds, summary["study"]
    address = {name: account for account, name in _names(home).items()}
    posted = {phase: {m.sender for m in rounds.secure_messages(study, 1, phase)}
              for phase in (SecurePhase.KEYS, SecurePhase.SHARES, SecurePhase.UNMASKING)}
    submitted = {update.participant for update in rounds.updates(study, 1)}
    assert posted[SecurePhase.KEYS] == {address[name] for name in everyone}
    assert address["hospital-2"] not in posted[SecurePhase.SHARES] | submitted
    assert address["hospital-4"] in submitted and address["hospital-4"] not in posted[SecurePhase.UNMASKING]

    # The oracle: each survivor's update trained again from the committed base, averaged by hand.
    view = auditor.study(study)
    spec, training = view.config.model, LocalTrainingConfig(epochs=EPOCHS, batch_size=FULL_BATCH)
    assert view.config.training == training
    base, committed = view.model(0), view.model(1)
    shares = federated_breast_cancer(HOSPITALS).hospitals
    updates = {name: HospitalClient(shares[i], spec, training).train(base, 1) for i, name in enumerate(everyone)}
    models = {name: (update.parameters, update.data_samples) for name, update in updates.items()}
    survivors = _fedavg([models[name] for name in first["survivors"]])
    assert _distance(committed, survivors) < TOLERANCE
    # ... and not the mean of everyone: hospital-2's update is not in it (the oracle can tell them apart).
    assert _distance(committed, _fedavg(list(models.values()))) > 100 * TOLERANCE

    # `medshare fl verify` re-derives both rounds from the chain and the store alone.
    verify = subprocess.run([*MEDSHARE, "fl", "verify", "--rpc", rpc, "--json"], env=env, capture_output=True,
                            text=True, timeout=600)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert json.loads(verify.stdout.splitlines()[-1])["ok"] is True

    # `medshare fl status` names each round's survivors and dropouts.
    status = subprocess.run([*MEDSHARE, "fl", "status", "--rpc", rpc, "--account", "TEST::2", "--contract",
                             summary["access"], "--registry", summary["contract"], "--study", str(study)],
                            env=env, capture_output=True, text=True, timeout=600)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "round 1: committed, 4 updates, 4 counted, secure: 4 survivors, 1 dropped (hospital-2)" in status.stdout


def _names(home: Path) -> dict[str, str]:
    from offchain.addressbook import known_names
    from offchain.settings import Settings

    return known_names(Settings(home=home))
