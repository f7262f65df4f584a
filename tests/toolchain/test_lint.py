"""Ruff over the repository with the settings in pyproject.toml, so the test command (and CI) lints."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.toolchain


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not on PATH: run the tests through ./run, which installs it (pyproject.toml)")
    result = subprocess.run([ruff, "check", "--output-format", "concise", "."], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_reports_a_planted_fault(tmp_path):
    """The gate is shown to fail: an undefined name in an annotation, the kind of fault it caught here."""
    planted = tmp_path / "planted.py"
    planted.write_text("from __future__ import annotations\n\n\ndef f() -> Missing:\n    return None\n")
    result = subprocess.run([shutil.which("ruff") or "ruff", "check", "--config", str(ROOT / "pyproject.toml"),
                             str(planted)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "F821" in result.stdout, result.stdout + result.stderr
