"""Verification on Polygonscan through ape-etherscan, its requests answered here, never sent.

A MedicalAccess is deployed on an anvil with Amoy's chain id, reached as ape-polygon's
polygon:amoy:node; `verify_deployments` then runs ape-etherscan's real verification against an HTTP
adapter mounted in the plugin's session, which answers as Etherscan's v2 API would and keeps every
request, so the test checks the `verifysourcecode` form: standard-JSON input, compiler version,
contract name, constructor arguments, optimizer and EVM settings, API key and endpoint.
"""

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from eth_abi import encode as abi_encode
from eth_utils import to_canonical_address

from offchain.chain import deploy, localchain
from offchain.chain import explorer
from offchain.scenarios import rehearsal
from offchain.chain.network import connect


class FakeEtherscan(requests.adapters.BaseAdapter):
    """Etherscan's v2 API as far as a verification goes; ``requests`` keeps what was asked."""

    def __init__(self, creation_input: str) -> None:
        super().__init__()
        self.creation_input = creation_input
        self.requests: list[tuple[str, str, dict, dict]] = []

    def send(self, request, **kwargs):
        url = urlsplit(request.url)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        body = request.body.decode() if isinstance(request.body, bytes) else (request.body or "")
        form = {key: values[0] for key, values in parse_qs(body).items()}
        self.requests.append((request.method, f"{url.scheme}://{url.netloc}{url.path}", query, form))
        action = {**query, **form}["action"]
        result = {
            "txlist": [{"input": self.creation_input, "hash": "0x" + "11" * 32}],
            "verifysourcecode": "guid-amoy-1",
            "checkverifystatus": "Pass - Verified",
        }[action]
        response = requests.Response()
        response.status_code = 200
        response.headers["Content-Type"] = "application/json"
        response._content = json.dumps({"status": "1", "message": "OK", "result": result}).encode()
        response.url, response.request = request.url, request
        return response

    def close(self) -> None:
        pass


def test_the_verify_request_for_polygonscan_is_built_from_the_deployment(project, tmp_path, monkeypatch):
    from ape_etherscan.client import _APIClient

    monkeypatch.setenv("ETHERSCAN_API_KEY", "a-test-key")
    deployments = tmp_path / "deployments.json"
    cache_before = len(list(project.contracts_folder.rglob("*.sol")))
    with localchain.throwaway(rehearsal.AMOY_CHAIN_ID, tmp_path / "anvil.log",
                              block_time=rehearsal.BLOCK_TIME_SECONDS) as node, \
            connect(rehearsal.AMOY_NETWORK, node):
        from ape import chain

        admin = rehearsal.throwaway_accounts(tmp_path / "accounts", ["admin"], node)["admin"]
        monkeypatch.setattr(deploy, "CONTRACTS", deploy.CONTRACTS[:1])  # MedicalAccess is enough
        (access,) = deploy.deploy(admin, admin.address, path=deployments)
        creation = chain.provider.web3.eth.get_transaction(access.deployment.transaction)["input"]
        etherscan = FakeEtherscan("0x" + bytes(creation).hex())
        session = requests.Session()
        session.mount("https://", etherscan)
        session.mount("http://", etherscan)
        monkeypatch.setattr(_APIClient, "session", session)
        (verified,) = explorer.verify_deployments(path=deployments)

    assert verified.name == "MedicalAccess" and verified.address == access.address
    # What the plugin had Ape copy into the contracts folder is gone: every source is still in view.
    assert len(list(project.contracts_folder.rglob("*.sol"))) == cache_before
    assert "RoundRegistry" in project.contracts
    assert verified.url == f"https://amoy.polygonscan.com/address/{access.address}#code"
    submissions = [form for method, _, _, form in etherscan.requests if form.get("action") == "verifysourcecode"]
    assert len(submissions) == 1
    method, endpoint, query, form = next(r for r in etherscan.requests if r[3].get("action") == "verifysourcecode")
    assert (method, endpoint, query) == ("POST", "https://api.etherscan.io/v2/api", {"chainid": "80002"})
    assert form["module"] == "contract" and form["apikey"] == "a-test-key"
    assert form["contractaddress"] == access.address
    assert form["codeformat"] == "solidity-standard-json-input"
    assert form["compilerversion"].startswith("v0.8.28")
    assert form["contractname"].endswith("MedicalAccess")
    assert form["constructorArguements"].removeprefix("0x") == abi_encode(
        ["address"], [to_canonical_address(admin.address)]).hex()
    assert (form["optimizationUsed"], form["runs"], form["evmversion"]) == ("1", "200", "cancun")
    assert form["licenseType"] == "3"  # MIT
    standard_json = json.loads(form["sourceCode"])
    assert standard_json["language"] == "Solidity"
    assert any(source.endswith("MedicalAccess.sol") for source in standard_json["sources"])
    assert any("openzeppelin" in source.lower() for source in standard_json["sources"])
    assert standard_json["settings"]["optimizer"] == {"enabled": True, "runs": 200}
    # Every request went to the configured endpoint (nothing looked up Etherscan's chain list).
    assert {endpoint for _, endpoint, _, _ in etherscan.requests} == {"https://api.etherscan.io/v2/api"}


def test_verification_needs_an_explorer_and_a_key(project, tmp_path, monkeypatch):
    monkeypatch.delenv("ETHERSCAN_API_KEY", raising=False)
    with localchain.throwaway(rehearsal.AMOY_CHAIN_ID, tmp_path / "anvil.log") as node, \
            connect(rehearsal.AMOY_NETWORK, node):
        with pytest.raises(explorer.VerificationUnavailable, match="ETHERSCAN_API_KEY"):
            explorer.verify_deployments(path=tmp_path / "deployments.json")
