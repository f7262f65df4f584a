"""A throwaway SoftHSM2 token for the test session (see :mod:`softhsm`); every test here is skipped, saying
why, where SoftHSM2 is not installed."""

import os

import pytest
from hsm.softhsm import HSM_ENV, NOT_INSTALLED, REMOVABLE_LABEL, TOKEN_LABEL, SoftHsm


@pytest.fixture(scope="session", autouse=True)
def softhsm(tmp_path_factory) -> SoftHsm:
    """The session's SoftHSM2 with two fresh tokens (the main one, and one a test removes); this process
    uses the main one through the environment, as the CLI does."""
    from offchain.hsm import close_tokens

    if NOT_INSTALLED:
        pytest.skip(NOT_INSTALLED + ": the HSM tests need a PKCS#11 token")
    hsm = SoftHsm(tmp_path_factory.mktemp("softhsm"))
    hsm.init_token(TOKEN_LABEL)
    hsm.init_token(REMOVABLE_LABEL)
    saved = {name: os.environ.get(name) for name in HSM_ENV}
    os.environ.update(hsm.env(TOKEN_LABEL))
    yield hsm
    close_tokens()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def fresh_login():
    """Close this process's token sessions before and after the test, so each command logs in anew
    (a test changing the PIN or the token in the environment sees its own settings)."""
    from offchain.hsm import close_tokens

    close_tokens()
    yield
    close_tokens()
