"""An offline rehearsal of the Polygon Amoy deployment: ``medshare chain rehearse-amoy``.

It runs what an operator does on Amoy against a local stand-in that behaves
like it where it matters:

* an anvil with Amoy's chain id (80002), a 1-second block time and a
  Polygon-like base fee (:data:`BASE_FEE_GWEI`);
* reached through ape-polygon's real ``polygon:amoy:node`` network, its URI
  (``POLYGON_AMOY_RPC_URL``) pointed at a :class:`~offchain.chain.rpcproxy.LogRangeProxy`
  in front of the anvil, which refuses ``eth_getLogs`` over 1,000 blocks as
  public endpoints do; :data:`HISTORY_BLOCKS` blocks are mined after the
  deployment, so every log read spans several pages;
* every transaction waits for the network's configured confirmations (2, in
  ape-config.yaml);
* signed by throwaway accounts: fresh keys in Ape keyfiles under a temporary
  folder, funded with ``anvil_setBalance``, and forgotten with it (test
  accounts stay refused on any network but a local one).

The flows are the library's (:mod:`offchain.consortium`, :mod:`offchain.members`,
:class:`~offchain.records.RecordService`, :class:`~offchain.rounds.RoundsClient`);
the rehearsal only strings them together and measures each operation's gas.
Its state (store, keystores, deployments) lives in a temporary folder, so it
leaves nothing in ``$MEDSHARE_HOME``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import secrets
import tempfile
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offchain.chain import localchain
from offchain.chain.access import AccessClient
from offchain.chain.contract import ContractClient
from offchain.consortium import ConsortiumContracts, deploy_contracts, ensure_published_key
from offchain.errors import MedShareError
from offchain.members import MemberChange, add_members
from offchain.chain.network import connect
from offchain.records import RecordIndex, RecordService
from offchain.chain.roles import Role
from offchain.chain.rpcproxy import DEFAULT_MAX_LOG_BLOCKS, LogRangeProxy
from offchain.rounds import ArtifactRef, RoundsClient, StudyTerms
from offchain.settings import Settings

AMOY_CHAIN_ID = 80002
AMOY_NETWORK = "polygon:amoy:node"
AMOY_RPC_ENV = "POLYGON_AMOY_RPC_URL"
BLOCK_TIME_SECONDS = 1
BASE_FEE_GWEI = 30
"""The rehearsal chain's first base fee: Amoy's fees run at a few tens of gwei."""
DEFAULT_GAS_PRICE_GWEI = 30.0
"""The gas price the cost table is priced at unless told (a typical Amoy price)."""
HISTORY_BLOCKS = 2_500
"""Blocks mined after the deployment: every read from the deployment block spans several log pages."""
GWEI = 10**9
FUNDING_WEI = 1_000 * 10**18

OPERATIONS = ("deploy", "add_member", "register_record", "grant", "fetch", "revoke_rotate", "open_round",
              "submit_update", "commit_aggregate")
"""What the cost table lists, in the order the rehearsal runs them."""

ACTORS: dict[str, Role] = {
    "admin": Role.ADMIN,
    "hospital": Role.DATA_OWNER | Role.PARTICIPANT,
    "doctor": Role.DOCTOR,
    "patient": Role.PATIENT,
    "coordinator": Role.COORDINATOR,
}
"""The throwaway accounts and the roles they get (the admin deploys, so it holds its role already)."""

Log = Callable[[str], None]


class RehearsalFailed(MedShareError):
    """The rehearsal chain did not behave as a step expected."""


@dataclass(frozen=True)
class Cost:
    """One operation's gas, and its price in POL at the rehearsal's gas price."""

    gas: int
    pol: float


@dataclass
class Rehearsal:
    """What a rehearsal measured."""

    chain_id: int
    network: str
    confirmations: int
    """The confirmations the network requires, which every transaction waited for."""
    gas_price_gwei: float
    costs: dict[str, Cost] = field(default_factory=dict)
    fewest_confirmations: int | None = None
    """The fewest blocks seen on top of an operation's transactions when the flow went on."""
    log_queries: int = 0
    refused_log_queries: int = 0
    widest_log_range: int = 0
    max_log_blocks: int = DEFAULT_MAX_LOG_BLOCKS

    def as_json(self) -> dict[str, Any]:
        """``{chain_id, network, confirmations, costs: {operation: {gas, pol}}}`` and what the proxy saw."""
        return {
            "chain_id": self.chain_id,
            "network": self.network,
            "confirmations": self.confirmations,
            "gas_price_gwei": self.gas_price_gwei,
            "costs": {name: {"gas": cost.gas, "pol": cost.pol} for name, cost in self.costs.items()},
            "fewest_confirmations_seen": self.fewest_confirmations,
            "get_logs": {"queries": self.log_queries, "refused": self.refused_log_queries,
                         "widest_range": self.widest_log_range, "limit": self.max_log_blocks},
        }


def price_pol(gas: int, gas_price_gwei: float) -> float:
    """What ``gas`` costs in POL (10^18 wei) at ``gas_price_gwei``."""
    return gas * gas_price_gwei / 1e9


def rehearse_amoy(*, gas_price_gwei: float = DEFAULT_GAS_PRICE_GWEI, log: Log | None = None) -> Rehearsal:
    """Run the rehearsal the module describes; returns each operation's cost."""
    log = log or (lambda message: None)
    with tempfile.TemporaryDirectory(prefix="medshare-amoy-") as folder:
        work = Path(folder)
        with localchain.throwaway(AMOY_CHAIN_ID, work / "anvil.log", block_time=BLOCK_TIME_SECONDS,
                                  base_fee=BASE_FEE_GWEI * GWEI) as anvil, \
                LogRangeProxy(anvil) as proxy, _amoy_endpoint(proxy.url), _quiet_keyfile_signing():
            log(f"anvil (chain id {AMOY_CHAIN_ID}, {BLOCK_TIME_SECONDS} s blocks, base fee {BASE_FEE_GWEI} gwei) "
                f"behind a proxy refusing eth_getLogs over {proxy.max_log_blocks:,} blocks at {proxy.url}")
            with connect(AMOY_NETWORK, proxy.url):
                rehearsal = _run(work, anvil, gas_price_gwei, log)
            rehearsal.log_queries = proxy.log_queries
            rehearsal.refused_log_queries = proxy.refused
            rehearsal.widest_log_range = proxy.widest_served
            rehearsal.max_log_blocks = proxy.max_log_blocks
    return rehearsal


def _run(work: Path, anvil: str, gas_price_gwei: float, log: Log) -> Rehearsal:
    from ape import chain, networks

    provider = networks.provider
    network = provider.network
    rehearsal = Rehearsal(int(chain.chain_id), f"{network.ecosystem.name}:{network.name}:{provider.name}",
                          network.required_confirmations, gas_price_gwei)
    accounts = throwaway_accounts(work / "accounts", ACTORS, anvil)
    log(f"throwaway accounts funded: {', '.join(f'{name} {account.address}' for name, account in accounts.items())}")
    settings = Settings(home=work / "home")
    store = _open_store(settings)

    def measured(name: str, clients: list[ContractClient], step: Callable[[], Any],
                 sent_by_step: Callable[[Any], list[tuple[int, int]]] | None = None) -> Any:
        """Run ``step`` and note the gas and blocks of the transactions it sent (through ``clients``,
        or as ``sent_by_step`` tells from its result: (gas, block) pairs)."""
        before = [len(client.sent) for client in clients]
        result = step()
        sent = ([(tx.gas_used, tx.block) for client, count in zip(clients, before) for tx in client.sent[count:]]
                if sent_by_step is None else sent_by_step(result))
        if not sent:
            raise RehearsalFailed(f"{name} sent no transaction")
        used = sum(gas for gas, _ in sent)
        seen = int(provider.web3.eth.block_number) - max(block for _, block in sent)
        rehearsal.fewest_confirmations = seen if rehearsal.fewest_confirmations is None else min(
            rehearsal.fewest_confirmations, seen)
        rehearsal.costs[name] = Cost(used, price_pol(used, gas_price_gwei))
        log(f"{name}: {used:,} gas ({seen} blocks on top)")
        return result

    admin = accounts["admin"]
    consortium: ConsortiumContracts = measured(
        "deploy", [], lambda: deploy_contracts(admin, path=work / "deployments.json"),
        lambda deployed: [(item.gas_used, item.deployment.block) for item in deployed.deployed])
    _rpc(anvil, "anvil_mine", [hex(HISTORY_BLOCKS)])
    log(f"mined {HISTORY_BLOCKS:,} blocks: every read from the deployment block now spans several log pages")

    def access(actor: str) -> AccessClient:
        return AccessClient(consortium.access, accounts[actor], from_block=consortium.from_block)

    def rounds(actor: str) -> RoundsClient:
        return RoundsClient(consortium.registry, accounts[actor], from_block=consortium.from_block)

    admin_client = access("admin")
    changes = [MemberChange(role, accounts[actor].address, actor)
               for actor, roles in ACTORS.items() if actor != "admin" for role in Role if role in roles]
    measured("add_member", [admin_client], lambda: add_members(admin_client, changes[:1]))
    add_members(admin_client, changes[1:])

    services = {}
    for actor in ("hospital", "doctor", "patient"):
        client = access(actor)
        keystore = ensure_published_key(client, settings, secrets.token_urlsafe(24))
        index = RecordIndex.for_contract(settings.home / actor, rehearsal.chain_id, consortium.access.address)
        services[actor] = RecordService(client, store, keystore, index)
    hospital, doctor = services["hospital"], services["doctor"]
    log("encryption keys published for the hospital, the doctor and the patient")

    export = work / "export.csv"
    export.write_bytes(os.urandom(64 * 1024))
    entry = measured("register_record", [hospital.client],
                     lambda: hospital.upload(export, accounts["patient"].address, "rehearsal"))
    record_id = bytes.fromhex(entry.record_id[2:])
    doctor_address = accounts["doctor"].address
    measured("grant", [hospital.client],
             lambda: hospital.grant(record_id, [doctor_address], hospital.client.now() + 24 * 3600))
    copy = work / "copy.csv"
    measured("fetch", [doctor.client], lambda: doctor.fetch(record_id, copy))
    if copy.read_bytes() != export.read_bytes():
        raise RehearsalFailed("the record fetched back differs from the one uploaded")
    measured("revoke_rotate", [hospital.client], lambda: hospital.revoke(record_id, doctor_address, rotate=True))

    coordinator, participant = rounds("coordinator"), rounds("hospital")
    genesis, config = _artifact(store, b"genesis model"), _artifact(store, b'{"rounds": 1}')
    study = coordinator.create_study(genesis, config.sha256, config.cid, StudyTerms(1, max_samples=1_000))
    round_number = measured("open_round", [coordinator], lambda: coordinator.open_round(
        study, genesis, coordinator.now() + 3600, [accounts["hospital"].address]))
    measured("submit_update", [participant],
             lambda: participant.submit_update(study, round_number, _artifact(store, b"an update"), 100))
    measured("commit_aggregate", [coordinator], lambda: coordinator.commit_aggregate(
        study, round_number, coordinator.submitters(study, round_number), _artifact(store, b"the aggregate")))
    return rehearsal


def _artifact(store: Any, data: bytes) -> ArtifactRef:
    """``data`` added to the store, as the registry names artifacts (CID and SHA-256)."""
    return ArtifactRef(store.add(io.BytesIO(data)), hashlib.sha256(data).digest())


def _open_store(settings: Settings) -> Any:
    from offchain.ipfs import open_store

    return open_store(settings)


def throwaway_accounts(folder: Path, names: Iterable[str], node: str) -> dict[str, Any]:
    """A fresh Ape keyfile account per name under ``folder``, unlocked for signing and funded on ``node``.

    Keys come from the OS's randomness and exist only in that folder (and in
    memory); nothing prints them."""
    from ape.logging import LogLevel, logger
    from ape_accounts import KeyfileAccount
    from eth_account import Account

    folder.mkdir(parents=True)
    accounts = {}
    for name in names:
        passphrase = secrets.token_urlsafe(24)
        key = Account.create()
        path = folder / f"rehearsal-{name}.json"
        # Cheap scrypt: the folder and the passphrase vanish with the rehearsal.
        path.write_text(json.dumps(Account.encrypt(key.key, passphrase, kdf="scrypt", iterations=2**14)))
        account = KeyfileAccount(keyfile_path=path)
        with logger.at_level(LogLevel.ERROR):  # "Danger! This account will now sign any transaction"
            account.set_autosign(True, passphrase=passphrase)
        _rpc(node, "anvil_setBalance", [account.address, hex(FUNDING_WEI)])
        accounts[name] = account
    return accounts


@contextmanager
def _amoy_endpoint(url: str) -> Iterator[None]:
    """``POLYGON_AMOY_RPC_URL`` at ``url`` for the duration of the block (what ape-config.yaml reads)."""
    before = os.environ.get(AMOY_RPC_ENV)
    os.environ[AMOY_RPC_ENV] = url
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(AMOY_RPC_ENV, None)
        else:
            os.environ[AMOY_RPC_ENV] = before


class _CachedKeyWarning(logging.Filter):
    """Drops Ape's "Using cached key" warning, which an unlocked keyfile account logs at every signature."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Using cached key")


@contextmanager
def _quiet_keyfile_signing() -> Iterator[None]:
    quiet = _CachedKeyWarning()
    ape_logger = logging.getLogger("ape")
    ape_logger.addFilter(quiet)
    try:
        yield
    finally:
        ape_logger.removeFilter(quiet)


def _rpc(url: str, method: str, params: list[Any]) -> Any:
    """One JSON-RPC call straight to the node (anvil's own methods, which the proxy need not see)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.loads(response.read())
    if "error" in answer:
        raise RehearsalFailed(f"{method} failed on the rehearsal chain: {answer['error']}")
    return answer.get("result")
