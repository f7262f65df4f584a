"""The Solidity-side checks, run from ``ape test`` so that ``./run test`` and CI cover them.

- ``forge test``: the fuzz and invariant tests in ``tests/forge/`` (settings in ``foundry.toml``);
- Halmos: the ``check_`` properties of ``tests/forge/symbolic/`` proved for every input;
- Slither through crytic-compile's Foundry route: no High or Medium finding in ``contracts/`` that
  ``slither.triage.json`` does not list with a reason.

Each fails with the tool's own output. A canary (``tests/forge/canary/``) holds a property that is
false on purpose, so the harness is shown to report a failing fuzz test and a Halmos counterexample.
The default profile leaves the canary out, so a contract developer's plain ``forge test`` is green;
the ``canary`` profile (foundry.toml) runs it alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRIAGE_FILE = ROOT / "slither.triage.json"
CANARY = "CanaryTest"
SYMBOLIC = "AccessSymbolicTest"
BLOCKING_IMPACTS = {"High", "Medium"}
# Generous: solc-js compiles the whole tree in one process on a shared 2-core machine.
TIMEOUT = 1800
# The properties each invariant suite names (one forge campaign each): a failure says which one broke.
NAMED_INVARIANTS = {
    "AccessInvariantsTest": [
        "invariant_noStandingNoAccess",
        "invariant_revocationsAreFinal",
        "invariant_roleLossEndsGrants",
        "invariant_researchersNeedConsent",
        "invariant_exceptionsStayBounded",
        "invariant_liveDoctorGrantPasses",
    ],
    "RoundsInvariantsTest": [
        "invariant_custodyChains",
        "invariant_quorumHolds",
        "invariant_securePhasesInOrder",
        "invariant_budgetsHold",
        "invariant_refusalsHold",
    ],
}
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
TAIL = 150

pytestmark = [pytest.mark.toolchain, pytest.mark.slow, pytest.mark.timeout(2 * TIMEOUT)]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH: run the tests through ./run, which installs it (tools/bootstrap.sh)")
    return path


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    merged = {**os.environ, "NO_COLOR": "1", **(env or {})}
    return subprocess.run(args, cwd=ROOT, env=merged, capture_output=True, text=True, timeout=TIMEOUT)


def _output(result: subprocess.CompletedProcess[str]) -> str:
    lines = (result.stdout + result.stderr).splitlines()
    return "\n".join(lines[-TAIL:])


@pytest.fixture(scope="module")
def halmos_output(forge_build) -> str:
    """One Halmos run over the symbolic properties and the canary (each run re-reads the whole build)."""
    halmos = Path(_tool("halmos")).resolve()
    # The solvers (yices, z3) live beside halmos in its own virtualenv.
    path = f"{halmos.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    result = _run(
        [
            str(halmos),
            "--forge-build-out",
            ".forge/out",
            "--match-contract",
            f"^({SYMBOLIC}|{CANARY})$",
            "--function",
            "check_",
            "--solver-threads",
            "1",
        ],
        env={"PATH": path},
    )
    # Halmos colours its verdicts whatever NO_COLOR says.
    return ANSI_ESCAPE.sub("", result.stdout + result.stderr)


def _halmos_results(output: str, contract: str) -> list[str]:
    """The [PASS]/[FAIL]/... lines Halmos printed for `contract`'s tests."""
    lines, current = [], None
    for line in output.splitlines():
        if line.startswith("Running ") and " tests for " in line:
            current = line.rsplit(":", 1)[-1].strip()
        elif current == contract and line.lstrip().startswith("["):
            lines.append(line.strip())
    return lines


@pytest.fixture(scope="module")
def forge_build() -> None:
    result = _run([_tool("forge"), "build"])
    if result.returncode != 0:
        pytest.fail(f"forge build failed:\n{_output(result)}", pytrace=False)


def test_forge_fuzz_and_invariant_tests_pass(forge_build):
    """Plain `forge test`, as a contract developer runs it: green, every named invariant run."""
    result = _run([_tool("forge"), "test"])
    if result.returncode != 0:
        pytest.fail(f"forge test failed:\n{_output(result)}", pytrace=False)
    assert "0 failed" in result.stdout
    assert CANARY not in result.stdout, "the default profile ran the canary"
    ran = set(re.findall(r"\[PASS\] (invariant_\w+)\(\)", result.stdout))
    missing = {name for names in NAMED_INVARIANTS.values() for name in names} - ran
    assert not missing, f"invariant campaigns that did not run: {sorted(missing)}"


def test_forge_reports_a_failing_property(forge_build):
    result = _run([_tool("forge"), "test", "--match-test", "testFuzz_"], env={"FOUNDRY_PROFILE": "canary"})
    assert result.returncode != 0, _output(result)
    assert "testFuzz_canaryMustFail" in result.stdout


def test_halmos_proves_the_symbolic_properties(halmos_output):
    results = _halmos_results(halmos_output, SYMBOLIC)
    if not results or not all(r.startswith("[PASS]") for r in results):
        pytest.fail(f"halmos did not prove every property:\n{halmos_output[-12000:]}", pytrace=False)


def test_halmos_reports_a_counterexample(halmos_output):
    results = _halmos_results(halmos_output, CANARY)
    assert results and results[0].startswith("[FAIL]"), halmos_output[-12000:]
    assert "Counterexample" in halmos_output


# ----- Slither -----


def finding_key(finding: dict) -> str:
    """A finding's name in the triage file: detector and the function (or contract, or variable) it is
    about, without line numbers, so that an unrelated edit does not un-triage it."""
    element = finding["elements"][0]
    fields = element.get("type_specific_fields", {})
    parent = fields.get("parent", {})
    if element["type"] == "function":
        where = f"{parent.get('name')}.{fields.get('signature', element['name'])}"
    elif element["type"] == "node":
        function = parent.get("type_specific_fields", {})
        where = f"{function.get('parent', {}).get('name')}.{function.get('signature', parent.get('name'))}"
    elif element["type"] in ("variable", "event", "struct", "enum", "modifier") and parent:
        where = f"{parent.get('name')}.{element['name']}"
    else:
        where = element["name"]
    return f"{finding['check']}: {where}"


def _in_contracts(finding: dict) -> bool:
    """Whether the finding is about our sources (not Ape's copy of dependencies in contracts/.cache)."""
    files = [e.get("source_mapping", {}).get("filename_relative", "") for e in finding["elements"]]
    return any(f.startswith("contracts/") and not f.startswith("contracts/.cache/") for f in files)


def untriaged(findings: list[dict], triage: dict[str, str]) -> list[dict]:
    """High and Medium findings about contracts/ that the triage does not list."""
    return [
        f
        for f in findings
        if f["impact"] in BLOCKING_IMPACTS and _in_contracts(f) and finding_key(f) not in triage
    ]


def stale(findings: list[dict], triage: dict[str, str]) -> list[str]:
    """Triage entries that no finding about contracts/ matches any more: left in place, one would
    silently accept a future finding of the same name."""
    found = {finding_key(f) for f in findings if _in_contracts(f)}
    return sorted(set(triage) - found)


def load_triage(path: Path = TRIAGE_FILE) -> dict[str, str]:
    """The triaged findings, key to reason; every entry must give a reason."""
    entries = json.loads(path.read_text())["findings"]
    triage = {}
    for entry in entries:
        reason = entry.get("reason", "").strip()
        if not reason:
            raise ValueError(f"{path.name}: {entry.get('finding')!r} has no reason")
        triage[entry["finding"]] = reason
    return triage


def _finding(check: str, impact: str, filename: str, contract: str = "C", signature: str = "f()") -> dict:
    return {
        "check": check,
        "impact": impact,
        "elements": [
            {
                "type": "function",
                "name": signature.split("(")[0],
                "source_mapping": {"filename_relative": filename},
                "type_specific_fields": {"parent": {"name": contract}, "signature": signature},
            }
        ],
    }


def test_slither_gate_blocks_untriaged_medium_and_high_in_contracts_only():
    triaged = _finding("unused-return", "Medium", "contracts/a.sol", "A", "g(bytes)")
    new_high = _finding("reentrancy-eth", "High", "contracts/b.sol")
    low = _finding("naming-convention", "Low", "contracts/b.sol")
    dependency = _finding("arbitrary-send-eth", "High", "node_modules/@openzeppelin/contracts/x.sol")
    ape_copy = _finding("arbitrary-send-eth", "High", "contracts/.cache/openzeppelin/5.7.0/x.sol")
    triage = {"unused-return: A.g(bytes)": "why"}
    assert untriaged([triaged, new_high, low, dependency, ape_copy], triage) == [new_high]


def test_slither_gate_names_stale_triage_entries():
    live = _finding("unused-return", "Medium", "contracts/a.sol", "A", "g(bytes)")
    triage = {"unused-return: A.g(bytes)": "why", "unused-return: A.gone(bytes)": "why"}
    assert stale([live], triage) == ["unused-return: A.gone(bytes)"]


def test_slither_triage_entries_need_a_reason(tmp_path):
    path = tmp_path / "triage.json"
    path.write_text(json.dumps({"findings": [{"finding": "unused-return: A.g(bytes)", "reason": " "}]}))
    with pytest.raises(ValueError, match="no reason"):
        load_triage(path)


def test_slither_finds_nothing_untriaged():
    slither = Path(_tool("slither")).resolve()
    result = _run(
        [
            str(slither),
            ".",
            "--compile-force-framework",
            "foundry",
            "--filter-paths",
            "node_modules|contracts/.cache",
            "--exclude-informational",
            "--exclude-low",
            "--exclude-optimization",
            "--json",
            "-",
        ],
        # Its own forge profile: crytic-compile runs `forge clean`, which must spare the tests' build.
        env={"FOUNDRY_PROFILE": "slither"},
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"slither printed no JSON report:\n{_output(result)}", pytrace=False)
    if not report.get("success"):
        pytest.fail(f"slither failed: {report.get('error')}\n{_output(result)}", pytrace=False)
    findings = report.get("results", {}).get("detectors", [])
    triage = load_triage()
    leftover = stale(findings, triage)
    if leftover:
        pytest.fail(f"{TRIAGE_FILE.name} lists findings Slither no longer reports (remove them): {leftover}", pytrace=False)
    blocking = untriaged(findings, triage)
    if blocking:
        listing = "\n\n".join(f"{finding_key(f)} [{f['impact']}]\n{f['description'].strip()}" for f in blocking)
        pytest.fail(
            f"{len(blocking)} untriaged High/Medium Slither finding(s) in contracts/ "
            f"(fix them, or list them in {TRIAGE_FILE.name} with the reason):\n\n{listing}",
            pytrace=False,
        )
