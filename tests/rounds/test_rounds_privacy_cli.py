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
        assert refused.exit_code == 2 and refused.output.startswith("Error: privacy budget: "), refused.output
        assert refused.output.count("\n") == 1
    # The accountant and distributed DP: each needs what it builds on, and only the accountants there are.
    base = ["fl", "run", "--rounds", "1", "--hospitals", "3"]
    for extra, message in [
        (["--dp-accountant", "pld"], "--dp-accountant needs --dp-epsilon"),
        (["--distributed-dp"], "--distributed-dp needs --dp-epsilon"),
        (["--dp-epsilon", "4", "--distributed-dp"], "--distributed-dp adds each hospital's share of the noise"),
        (["--dp-epsilon", "4", "--dp-accountant", "moments"], "'moments' is not one of 'rdp', 'pld'"),
        (["--dp-epsilon", "4", "--dp-accountant", ""], "'' is not one of 'rdp', 'pld'"),
    ]:
        refused = CliRunner().invoke(main, [*base, *extra])
        assert refused.exit_code == 2 and message in refused.output, (extra, refused.output)
        assert [line for line in refused.output.splitlines() if line.startswith("Error:")] == \
            [refused.output.splitlines()[-1]]


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


def test_create_takes_the_accountant_and_distributed_dp(consortium, fl):  # noqa: F811
    participants = [arg for member in consortium.hospitals for arg in ("--participant", member.address)]
    created = fl(1, "create", *participants, "--dp-epsilon", "2", "--dp-rounds", "3", "--dp-accountant", "pld",
                 "--secure-aggregation", "--threshold", "2", "--distributed-dp")
    config = consortium.auditor.study(int(created.split()[1])).config
    distributed = config.distributed_dp
    assert config.dp is None and distributed is not None
    assert (distributed.accountant, distributed.epsilon_budget, distributed.min_survivors) == ("pld", 2.0, 2)
    assert b'"accountant":"pld"' in config.canonical_bytes()
    local = fl(1, "create", *participants, "--dp-epsilon", "2", "--dp-rounds", "3", "--dp-accountant", "pld")
    local_config = consortium.auditor.study(int(local.split()[1])).config
    assert local_config.dp.accountant == "pld" and local_config.distributed_dp is None
    # PLD is tighter: the same budget over the same rounds takes less noise than RDP's.
    rdp = fl(1, "create", *participants, "--dp-epsilon", "2", "--dp-rounds", "3")
    assert local_config.dp.noise_multiplier < consortium.auditor.study(int(rdp.split()[1])).config.dp.noise_multiplier
    lonely = fl(1, "create", *participants, "--dp-epsilon", "2", "--dp-rounds", "3", "--distributed-dp", ok=False)
    assert "it needs --secure-aggregation" in lonely
    bad = fl(1, "create", *participants, "--dp-epsilon", "2", "--dp-rounds", "3", "--dp-accountant", "PLD", ok=False)
    assert "'PLD' is not one of 'rdp', 'pld'" in bad


def test_fl_run_with_distributed_dp_and_pld(chain, tmp_path):
    env = {**os.environ, "MEDSHARE_HOME": str(tmp_path / "home"), "MEDSHARE_PASSPHRASE": PASSPHRASE}
    run = subprocess.run([*MEDSHARE, "fl", "run", "--rounds", "1", "--hospitals", "3", "--rpc", chain.provider.http_uri,
                          "--secure-aggregation", "--dp-epsilon", "2", "--dp-accountant", "pld", "--distributed-dp",
                          "--json"], env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads(run.stdout)
    assert [entry["verified"] for entry in summary["rounds"]] == [True]
    assert len(summary["rounds"][0]["survivors"]) == 3
    assert summary["epsilon_budget"] == {f"hospital-{i}": 2.0 for i in (1, 2, 3)}
    # One round of the calibrated noise spends (by PLD) close to the whole budget, never more.
    assert all(1.5 < spent <= 2.0 for spent in summary["epsilon_spent"].values()), summary
