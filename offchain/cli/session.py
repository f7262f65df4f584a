"""What every chain-facing command shares: network, account, contract, keystore, clear errors.

Options (on each command): ``--network`` (an Ape network choice, default the
local anvil), ``--rpc`` (the node's URL, e.g. a long-running ``anvil``),
``--account`` (an Ape account alias, or ``TEST::N`` on a local network) and
``--contract`` (default: the deployment recorded for the chain). Inside a
process that is already connected (``ape run``, ``ape test``) the commands
use that connection.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from offchain.chain import AccessClient
from offchain.contract_client import ChainRefusal
from offchain.cli.errors import reported
from offchain.crypto import CryptoError, Keystore
from offchain.deployments import DeploymentNotFound, find_deployment
from offchain.ipfs import StoreError, open_store
from offchain.records import RecordError, RecordIndex, RecordIndexError, RecordService
from offchain.settings import Settings

DEFAULT_NETWORK = "ethereum:local:foundry"
PASSPHRASE_ENV = "MEDSHARE_PASSPHRASE"
user_errors = reported(
    RecordError, ChainRefusal, CryptoError, StoreError, RecordIndexError, DeploymentNotFound, OSError
)
"""Show the library's refusals as one clear line and exit status 1, never a traceback."""


@dataclass(frozen=True)
class ChainOptions:
    network: str | None
    rpc: str | None
    account: str | None
    contract: str | None


def chain_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the network, account and contract options; the command receives them as ``chain``."""

    @click.option("--network", default=None, help=f"Ape network choice (default: {DEFAULT_NETWORK}).")
    @click.option("--rpc", default=None, help="The node's RPC URL, e.g. http://127.0.0.1:8545 for your own anvil.")
    @click.option("--account", default=None, help="Ape account alias; TEST::N for a local test account.")
    @click.option("--contract", default=None, help="MedicalAccess address (default: the recorded deployment).")
    @functools.wraps(command)
    def with_options(network, rpc, account, contract, **kwargs):
        return command(chain=ChainOptions(network, rpc, account, contract), **kwargs)

    return with_options


@contextmanager
def connected(options: ChainOptions) -> Iterator[AccessClient]:
    """An :class:`AccessClient` for the chosen network, account and contract."""
    from ape import accounts, chain, networks, project

    with ExitStack() as stack:
        provider = networks.active_provider
        if provider is None or not provider.is_connected or options.network or options.rpc:
            settings = {"host": options.rpc} if options.rpc else {}
            stack.enter_context(networks.parse_network_choice(options.network or DEFAULT_NETWORK, settings))
        account = _account(accounts, networks, options.account)
        from_block = 0
        address = options.contract
        if address is None:
            deployment = find_deployment(chain.chain_id)
            address, from_block = deployment.address, deployment.block
        if not chain.provider.get_code(address):
            raise click.ClickException(f"no contract code at {address} on chain {chain.chain_id}")
        yield AccessClient(project.MedicalAccess.at(address), account, from_block=from_block)


def _account(accounts: Any, networks: Any, alias: str | None) -> Any:
    if alias is None:
        if networks.provider.network.is_local:
            return accounts.test_accounts[0]
        raise click.ClickException("--account ALIAS is required on a live network")
    if alias.upper().startswith("TEST::"):
        try:
            return accounts.test_accounts[int(alias[6:])]
        except (ValueError, IndexError):
            raise click.ClickException(f"--account {alias}: no such test account") from None
    try:
        return accounts.load(alias)
    except Exception as error:  # noqa: BLE001 - Ape raises several types for an unknown alias
        raise click.ClickException(f"--account {alias}: {error}") from None


def keystore_path(settings: Settings, address: str) -> Path:
    """Where ``address``'s keystore lives: ``$MEDSHARE_HOME/keys/<address>.json``."""
    return settings.home / "keys" / f"{address.lower()}.json"


def passphrase(*, confirm: bool = False) -> str:
    """The keystore passphrase: ``MEDSHARE_PASSPHRASE`` if set, else asked for (never echoed)."""
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env:
        return from_env
    return click.prompt("Keystore passphrase", hide_input=True, confirmation_prompt=confirm)


def open_keystore(settings: Settings, address: str) -> Keystore | None:
    """The member's unlocked keystore, or None if it has none yet."""
    path = keystore_path(settings, address)
    if not path.exists():
        return None
    return Keystore.open(path, passphrase())


def record_service(client: AccessClient, settings: Settings | None = None) -> RecordService:
    """The workflow for this member: the configured store, its keystore and its index."""
    from ape import chain

    settings = settings or Settings.from_env()
    index = RecordIndex.for_contract(settings.home, chain.chain_id, client.contract.address)
    return RecordService(client, open_store(settings), open_keystore(settings, client.address), index)
