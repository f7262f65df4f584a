"""``medshare fl`` with privacy budgets: `fl status` shows spend against budget, `fl run --dp-epsilon`
runs DP-SGD within each hospital's budget on chain and reports both by hospital name."""

import json
import os
import subprocess
import sys

from click.testing import CliRunner

from offchain.cli import main
from .conftest import PASSPHRASE
from .test_rounds_cli import fl  # noqa: F401 (the fixture)
from .test_rounds_privacy import EPSILON, budgeted_study

MEDSHARE = [sys.executable, "-c", "from offchain.cli import main; main()"]


def test_status_shows_each_hospitals_spend_against_its_budget(consortium, fl):  # noqa: F811
    study = budgeted_study(consortium, rounds=2)
    consortium.run_round(study)
    status = fl(2, "status", "--study", str(study))
    lines = [line for line in status.splitlines() if f"of a budget of {EPSILON:g} " in line]
    assert len(lines) == 3, status
    for member in consortium.hospitals:
        (line,) = [line for line in lines if member.address in line]
        assert "1 updates" in line and "epsilon 0.000" not in line
    plain = fl(2, "status", "--study", str(consortium.study()))
    assert "of a budget of" not in plain


def test_fl_run_with_a_budget_reports_spend_and_budget_by_hospital(chain, tmp_path):
    env = {**os.environ, "MEDSHARE_HOME": str(tmp_path / "home"), "MEDSHARE_PASSPHRASE": PASSPHRASE}
    run = subprocess.run([*MEDSHARE, "fl", "run", "--rounds", "2", "--hospitals", "2", "--rpc", chain.provider.http_uri,
                          "--dp-epsilon", "3", "--dp-delta", "1e-5", "--json"],
                         env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads(run.stdout)  # with --json, stdout is the JSON document alone
    assert all(entry["verified"] for entry in summary["rounds"]) and len(summary["rounds"]) == 2
    assert summary["epsilon_budget"] == {"hospital-1": 3.0, "hospital-2": 3.0}
    assert set(summary["epsilon_spent"]) == {"hospital-1", "hospital-2"}
    # The noise was calibrated to spend the budget over the two rounds: close to it, never over.
    assert all(2.5 < spent <= 3.0 for spent in summary["epsilon_spent"].values()), summary
    assert "hospital-1: epsilon " in run.stderr


def test_fl_run_refuses_bad_dp_options_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSHARE_HOME", str(tmp_path))
    monkeypatch.setenv("MEDSHARE_PASSPHRASE", PASSPHRASE)
    lonely = CliRunner().invoke(main, ["fl", "run", "--rounds", "1", "--hospitals", "1", "--dp-delta", "1e-5"])
    assert lonely.exit_code == 2 and "--dp-delta needs --dp-epsilon" in lonely.output
    for epsilon, delta in [("-1", "1e-5"), ("nan", "1e-5"), ("4", "1"), ("4", "0")]:
        refused = CliRunner().invoke(main, ["fl", "run", "--rounds", "1", "--hospitals", "1", "--dp-epsilon", epsilon,
                                            "--dp-delta", delta])
        assert refused.exit_code == 1 and refused.output.startswith("Error: privacy budget: "), refused.output
        assert refused.output.count("\n") == 1


def test_create_puts_each_hospitals_budget_on_chain(consortium, fl):  # noqa: F811
    from offchain.rounds.privacy import privacy_spend

    participants = [arg for member in consortium.hospitals for arg in ("--participant", member.address)]
    created = fl(1, "create", *participants, "--auditor", consortium.auditor.address, "--dp-epsilon", "2.5",
                 "--dp-delta", "1e-6", "--dp-rounds", "3")
    study = int(created.split()[1])
    assert privacy_spend(consortium.auditor, study) == {m.address: (0.0, 2.5) for m in consortium.hospitals}
    config = consortium.auditor.study(study).config
    assert (config.dp.epsilon_budget, config.dp.delta) == (2.5, 1e-6)
    missing = fl(1, "create", *participants, "--dp-epsilon", "2.5", ok=False)
    assert "--dp-epsilon needs --dp-rounds" in missing
    lonely = fl(1, "create", *participants, "--dp-rounds", "3", ok=False)
    assert "need --dp-epsilon" in lonely
