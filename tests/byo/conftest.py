"""The consortium's own model package (tests/byo/models_pkg) importable as an installed package would be."""

from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).parent
CNN = "models_pkg.cnn:build"


@pytest.fixture
def models_pkg(monkeypatch):
    """``models_pkg`` on this process's path and on its child processes' PYTHONPATH."""
    monkeypatch.syspath_prepend(str(PACKAGE_ROOT))
    monkeypatch.setenv("PYTHONPATH", str(PACKAGE_ROOT))
    return CNN
