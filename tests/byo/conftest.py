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


PASSPHRASE = "byo tests passphrase"


@pytest.fixture(scope="session")
def byo_consortium(accounts, project, tmp_path_factory):
    """MedicalAccess and RoundRegistry on the session's anvil: a coordinator (its member), a hospital
    (its account index) and an auditor with published keys, sharing one home and store."""
    from offchain.consortium import deploy_contracts, enrol
    from offchain.settings import Settings

    admin, coordinator, auditor, hospital = accounts[0], accounts[1], accounts[2], accounts[3]
    contracts = deploy_contracts(admin, record=False)
    access, registry = contracts.access, contracts.registry
    home = tmp_path_factory.mktemp("byo-home")
    members = enrol(access, registry, admin, coordinator, [hospital], [auditor], Settings(home=home), PASSPHRASE)
    return access, registry, members[coordinator.address], hospital.address, auditor.address, home
