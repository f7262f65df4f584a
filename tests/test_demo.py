"""README's first command, ``./run demo``, end to end (``--json``, in a scratch folder): every access
check as the scenario expects, the study's rounds committed and verified, the plot written, one line a step."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _demo(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSHARE_")}
    env["MEDSHARE_HOME"] = str(home)
    return subprocess.run(["./run", "demo", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    home = tmp_path_factory.mktemp("demo-home")
    run = _demo("--json", home=home)
    assert run.returncode == 0, run.stdout + run.stderr
    return run, json.loads(run.stdout.splitlines()[-1]), home


def test_every_access_check_goes_as_the_scenario_says(demo):
    _, summary, _ = demo
    checks = summary["access_checks"]
    assert all(check["expected"] == check["got"] for check in checks), checks
    assert {(c["who"], c["expected"]) for c in checks} >= {
        ("doctor", True), ("doctor", False), ("researcher", True), ("researcher", False),
        ("stranger", False), ("emergency physician", False), ("emergency physician", True), ("patient A", True)}


def test_records_are_the_hospitals_exports_and_the_revoked_one_was_rotated(demo):
    _, summary, home = demo
    records = summary["records"]
    assert len(records) == 9 and len({record["record_id"] for record in records}) == 9
    assert {record["hospital"] for record in records} == {"Hospital A", "Hospital B", "Hospital C"}
    assert sum(record["rows"] for record in records) == 426  # the breast-cancer training split
    assert [record["version"] for record in records if record["name"] == "Hospital A/patient A"] == [2]
    assert len(list((home / "demo" / "exports").glob("*.csv"))) == 9


def test_rounds_are_committed_on_chain_verified_and_plotted(demo):
    _, summary, _ = demo
    rounds = summary["rounds"]
    assert [entry["round"] for entry in rounds] == [1, 2]
    assert all(entry["verified"] for entry in rounds)
    assert rounds[1]["base_cid"] == rounds[0]["aggregate_cid"]
    assert all(sorted(entry["participants"]) == ["hospital-1", "hospital-2", "hospital-3"] for entry in rounds)
    assert all(0.5 < entry["test_accuracy"] <= 1.0 for entry in rounds)
    assert Path(summary["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_summary_names_network_contract_and_gas_of_every_operation(demo):
    _, summary, _ = demo
    assert summary["network"] == "ethereum:local:foundry"
    assert summary["contract"].startswith("0x") and len(summary["contract"]) == 42
    for operation in ("deploy_medical_access", "add_members", "publish_key", "publish_key_pq", "register_record",
                      "grant", "grant_by_signature", "set_consent", "open_emergency_access", "fetch", "revoke",
                      "rotate", "create_study", "open_round", "submit_update"):
        assert 21_000 < summary["gas"][operation] < 10_000_000, operation


def test_output_is_one_line_a_step_with_no_transaction_logged_twice(demo):
    run, _, _ = demo
    lines = run.stdout.splitlines()
    assert not [line for line in lines if line.startswith(("INFO", "SUCCESS", "WARNING"))], run.stdout
    steps = [line.split()[0] for line in lines[:lines.index("")]]
    for step in ("deploy", "members", "keys", "records", "grant", "signed", "consent", "stranger", "break-glass",
                 "revoke", "rounds"):
        assert steps.count(step) == 1, (step, run.stdout)
    assert "Confirmed 0x" not in run.stdout + run.stderr  # Ape's per-transaction lines, let alone twice
    assert "Traceback" not in run.stderr


def test_bad_options_get_one_line(tmp_path):
    run = _demo("--rounds", "0", home=tmp_path)
    assert run.returncode == 2
    assert "Invalid value for '--rounds'" in run.stderr and "Traceback" not in run.stderr
    # `./run test` compiled already: a later `./run demo` must not compile again (the stamp skips contracts/.cache).
    assert "Compiling" not in run.stderr
    assert not (tmp_path / "demo").exists()


def test_a_folder_with_someone_else_s_files_is_refused_and_kept(tmp_path):
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    run = _demo("--folder", str(tmp_path), home=tmp_path / "home")
    assert run.returncode == 1
    assert "holds files the demo did not make" in run.stderr and "Traceback" not in run.stderr
    assert keep.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
