"""What every chain-facing front end shares: network, account, contract, keystore, clear errors.

Options (on each command, and on each Ape script, which are the same
commands): ``--network`` (an Ape network choice, default the local chain:
``medshare chain up``'s if it runs), ``--rpc`` (a node's URL, which must
answer), ``--account`` (an Ape account alias, ``hsm:LABEL`` for a key in the
HSM token (:mod:`offchain.hsm`), or ``TEST::N`` on a local network) and ``--contract`` (default: the deployment recorded for the chain).
How the node is chosen: :mod:`offchain.chain.network`.
"""

from __future__ import annotations

import functools
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from offchain import hsm, inputs
from offchain.batches import ChunkSent
from offchain.chain.access import AccessClient
from offchain.cli.errors import reported
from offchain.chain.contract import Sent
from offchain.crypto import Keystore
from offchain.crypto.keystore import KeySealer
from offchain.chain.deployments import find_deployment
from offchain.errors import ChainUnavailable, InvalidInput, MedShareError
from offchain.ipfs import open_store
from offchain.chain.network import DEFAULT_NETWORK, connect
from offchain.records import RecordIndex, RecordService
from offchain.settings import Settings

PASSPHRASE_ENV = "MEDSHARE_PASSPHRASE"
_PRIVATE_KEY = re.compile(r"(0[xX])?[0-9a-fA-F]{64}")
user_errors = reported(MedShareError, OSError)
"""Show the library's refusals as one clear line and exit status 1, never a traceback."""


@dataclass(frozen=True)
class ChainOptions:
    network: str | None
    rpc: str | None
    account: str | None
    contract: str | None = None


def _checked(parse: Callable[[str], Any]) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback running one of :mod:`offchain.inputs`' parsers (None passes through)."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        try:
            return parse(value)
        except InvalidInput as error:
            raise click.BadParameter(str(error).split(": ", 1)[-1], ctx, param) from None

    return callback


class AddressParam(click.ParamType):
    """An Ethereum address, checksummed; mixed case must carry a correct EIP-55 checksum."""

    name = "ADDRESS"

    def convert(self, value, param, ctx) -> str:
        try:
            return inputs.address(value, "address")
        except InvalidInput as error:
            self.fail(str(error).split(": ", 1)[-1], param, ctx)


ADDRESS = AddressParam()


class FiniteFloatRange(click.FloatRange):
    """A float in a range that is also a number: ``nan`` slips through every comparison, ``inf`` is no setting."""

    def convert(self, value, param, ctx) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def network_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--network``, ``--rpc`` and ``--account``; the command receives them as ``chain``."""

    @click.option("--network", default=None, metavar="ECOSYSTEM:NETWORK:PROVIDER",
                  help=f"Ape network choice (default: {DEFAULT_NETWORK}, on the chain of `medshare chain up` "
                       "if it runs).")
    @click.option("--rpc", default=None, metavar="URL",
                  help="The node's RPC URL, e.g. http://127.0.0.1:8545; it must answer.")
    @click.option("--account", default=None, metavar="ALIAS",
                  help="Ape account alias (`ape accounts import ALIAS`); hsm:LABEL for a key in the HSM token "
                       "(`medshare keys hsm create LABEL`); TEST::N for a local test account.")
    @functools.wraps(command)
    def with_options(network, rpc, account, **kwargs):
        return command(chain=ChainOptions(network, rpc, account), **kwargs)

    return with_options


def chain_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`network_options` plus ``--contract``; the command receives them as ``chain``."""

    @network_options
    @click.option("--contract", default=None, metavar="ADDRESS", callback=_checked(inputs.address),
                  help="MedicalAccess address (default: the deployment recorded for the chain).")
    @functools.wraps(command)
    def with_options(chain: ChainOptions, contract, **kwargs):
        return command(chain=ChainOptions(chain.network, chain.rpc, chain.account, contract), **kwargs)

    return with_options


@contextmanager
def connected_account(options: ChainOptions) -> Iterator[Any]:
    """The signing Ape account, connected to the chosen network."""
    from ape import accounts, networks

    with connect(options.network, options.rpc):
        yield _account(accounts, networks, options.account)


@contextmanager
def connected(options: ChainOptions) -> Iterator[AccessClient]:
    """An :class:`AccessClient` for the chosen network, account and contract."""
    from ape import chain, project

    with connected_account(options) as account:
        from_block = 0
        address = options.contract
        if address is None:
            deployment = find_deployment(chain.chain_id)
            address, from_block = deployment.address, deployment.block
        if not chain.provider.get_code(address):
            raise ChainUnavailable(
                f"no contract code at {address} on chain {chain.chain_id} (a throwaway anvil forgets its "
                "deployments when its command exits: start one with `medshare chain up`, then deploy)"
            )
        yield AccessClient(project.MedicalAccess.at(address), account, from_block=from_block,
                           cache_folder=Settings.from_env().home / "cache")


def _account(accounts: Any, networks: Any, alias: str | None) -> Any:
    if alias is None:
        if networks.provider.network.is_local:
            return accounts.test_accounts[0]
        raise InvalidInput("--account ALIAS is required on a live network")
    if _PRIVATE_KEY.fullmatch(alias.strip()):
        raise InvalidInput("--account takes an account alias, and what was given looks like a private key (not "
                           "repeated here); never type a key on a command line: import it once with "
                           "`ape accounts import ALIAS`, and consider it exposed")
    if alias.upper().startswith("TEST::"):
        if not networks.provider.network.is_local:
            raise InvalidInput(f"--account {alias}: test accounts exist only on a local network")
        number, known = alias[6:], len(accounts.test_accounts)
        if not number.isdigit() or int(number) >= known:
            raise InvalidInput(f"--account {alias}: no such test account (TEST::0 to TEST::{known - 1})")
        account = accounts.test_accounts[int(number)]
        if not account.balance:
            raise InvalidInput(f"--account {alias}: {account.address} holds no funds on this chain to pay for "
                               "transactions (the node funds only its own test accounts)")
        return account
    if alias.startswith(hsm.ALIAS_PREFIX):
        return hsm.load_account(alias)
    if alias not in accounts.aliases:
        known = ", ".join(accounts.aliases) or "none yet; import one with `ape accounts import ALIAS`"
        raise InvalidInput(f"--account {alias}: no such Ape account (known: {known})")
    return accounts.load(alias)


def echo_chunk(chunk: ChunkSent) -> None:
    """Report one confirmed chunk of a batch (rows, block): a failure later names what is done."""
    rows = f"rows {chunk.rows[0]}-{chunk.rows[-1]}" if len(chunk.rows) > 1 else f"row {chunk.rows[0]}"
    click.echo(f"chunk {chunk.number}/{chunk.of}: {rows} ({len(chunk.rows)}) confirmed in block {chunk.sent.block} "
               f"(gas {chunk.sent.gas_used:,})")


def echo_sent(sent: Sequence[Sent]) -> None:
    """Print each transaction sent: its hash and the gas it used."""
    for transaction in sent:
        click.echo(f"  tx {transaction.tx_hash} (gas {transaction.gas_used:,}, block {transaction.block})")


def passphrase(*, confirm: bool = False) -> str:
    """The keystore passphrase: ``MEDSHARE_PASSPHRASE`` if set, else asked for (never echoed) on a terminal."""
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        raise InvalidInput(f"the keystore needs a passphrase and this run cannot ask for one: set {PASSPHRASE_ENV}")
    return click.prompt("Keystore passphrase", hide_input=True, confirmation_prompt=confirm)


def keystore_unlock(path: Path) -> Callable[..., str | KeySealer]:
    """What opens the keystore at ``path``, asked for only when needed: the configured HSM token's sealer
    if the file is sealed by a token key, else the passphrase (:func:`passphrase`)."""

    def unlock(*, confirm: bool = False) -> str | KeySealer:
        if path.exists() and Keystore.sealed_by_token(path):
            return hsm.TokenSealer(hsm.open_token())
        return passphrase(confirm=confirm)

    return unlock


def open_keystore(settings: Settings, address: str) -> Keystore | None:
    """The member's unlocked keystore, or None if it has none yet."""
    path = settings.keystore_path(address)
    if not path.exists():
        return None
    return Keystore.open(path, keystore_unlock(path)())


def record_service(client: AccessClient, settings: Settings | None = None) -> RecordService:
    """The workflow for this member: the configured store, its keystore and its index."""
    from ape import chain

    settings = settings or Settings.from_env()
    index = RecordIndex.for_contract(settings.home, chain.chain_id, client.contract.address)
    return RecordService(client, open_store(settings), open_keystore(settings, client.address), index)
