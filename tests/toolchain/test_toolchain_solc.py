"""The solc-js facade behaves like a native solc for py-solc-x and ape-solidity."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FACADE = ROOT / "tools" / "solc-facade.cjs"
SOLC_VERSION = json.loads((ROOT / "node_modules" / "solc" / "package.json").read_text())["version"]

GOOD = "// SPDX-License-Identifier: MIT\npragma solidity ^0.8.24;\ncontract Good { uint256 public x; }\n"
BROKEN = "// SPDX-License-Identifier: MIT\npragma solidity ^0.8.24;\ncontract Broken { function f( external {} }\n"


def solc(*args: str, stdin: str = "", cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(FACADE), *args], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=120
    )


def standard_json(sources: dict) -> str:
    return json.dumps(
        {
            "language": "Solidity",
            "sources": sources,
            "settings": {"outputSelection": {"*": {"*": ["abi"]}}},
        }
    )


def test_version_is_what_py_solc_x_parses():
    result = solc("--version")
    assert result.returncode == 0
    assert f"Version: {SOLC_VERSION}+commit." in result.stdout


def test_installed_where_py_solc_x_looks():
    import solcx

    assert solcx.get_installed_solc_versions()[0].base_version == SOLC_VERSION
    assert Path(os.environ["SOLCX_BINARY_PATH"], f"solc-v{SOLC_VERSION}").resolve() == FACADE


def test_compiles_sources_loaded_from_base_path(tmp_path):
    (tmp_path / "Good.sol").write_text(GOOD)
    result = solc("--standard-json", "--base-path", str(tmp_path),
                  stdin=standard_json({"Good.sol": {"urls": ["Good.sol"]}}))
    assert result.returncode == 0
    output = json.loads(result.stdout)
    assert "errors" not in output
    assert output["contracts"]["Good.sol"]["Good"]["abi"][0]["name"] == "x"


def test_include_path_resolves_imports(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "Lib.sol").write_text(GOOD.replace("Good", "Lib"))
    src = tmp_path / "src"
    src.mkdir()
    (src / "Main.sol").write_text(GOOD.replace("contract Good", 'import "Lib.sol";\ncontract Main'))
    result = solc("--standard-json", "--base-path", str(src), "--include-path", str(lib),
                  stdin=standard_json({"Main.sol": {"urls": ["Main.sol"]}}))
    output = json.loads(result.stdout)
    assert "errors" not in output, output.get("errors")
    assert set(output["contracts"]) == {"Main.sol", "Lib.sol"}


def test_refuses_files_outside_allowed_paths(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "Secret.sol").write_text(GOOD)
    base = tmp_path / "base"
    base.mkdir()
    (base / "Main.sol").write_text(GOOD.replace("contract Good", f'import "{outside}/Secret.sol";\ncontract Main'))
    result = solc("--standard-json", "--base-path", str(base),
                  stdin=standard_json({"Main.sol": {"urls": ["Main.sol"]}}))
    errors = json.loads(result.stdout)["errors"]
    assert any("outside of allowed directories" in e["formattedMessage"] for e in errors)

    allowed = solc("--standard-json", "--base-path", str(base), "--allow-paths", str(outside),
                   stdin=standard_json({"Main.sol": {"urls": ["Main.sol"]}}))
    assert "errors" not in json.loads(allowed.stdout)


def test_syntax_error_is_reported_as_solc_reports_it():
    result = solc("--standard-json", stdin=standard_json({"Broken.sol": {"content": BROKEN}}))
    assert result.returncode == 0  # native solc also exits 0 in standard-JSON mode
    [error] = json.loads(result.stdout)["errors"]
    assert error["severity"] == "error" and error["type"] == "ParserError"
    assert "Broken.sol:3:" in error["formattedMessage"]


def test_invalid_json_is_a_json_error_not_a_crash():
    result = solc("--standard-json", stdin="{not json")
    [error] = json.loads(result.stdout)["errors"]
    assert error["type"] == "JSONError"


@pytest.mark.parametrize("args", [["--bogus"], [], ["--base-path"]])
def test_command_line_misuse_exits_non_zero(args):
    result = solc(*args)
    assert result.returncode == 1
    assert result.stderr.strip()


def test_ape_compile_fails_clearly_on_a_syntax_error(tmp_path):
    project = tmp_path / "project"
    (project / "contracts").mkdir(parents=True)
    (project / "contracts" / "Broken.sol").write_text(BROKEN)
    shutil.copy(ROOT / "ape-config.yaml", project / "ape-config.yaml")
    ape = Path(sys.executable).with_name("ape")
    result = subprocess.run([str(ape), "compile"], cwd=project, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "ParserError: Expected type name" in result.stdout + result.stderr
    assert "Broken.sol:3:31" in result.stdout + result.stderr
