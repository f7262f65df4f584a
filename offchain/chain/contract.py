"""A deployed contract seen from Python: typed reads, lean signed transactions, refusals as errors.

:class:`ContractClient` is the plumbing every MedShare contract client shares
(the access policy's :class:`~offchain.chain.access.AccessClient`, the round
registry's client): ``eth_call`` without Ape's trace printing, event queries,
and a send path that simulates first, so a refusal costs no gas and surfaces
as :class:`ChainRefusal` carrying the contract's custom error.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ape.exceptions import ContractLogicError, CustomError
from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address
from web3.exceptions import ContractCustomError as Web3CustomError
from web3.exceptions import ContractLogicError as Web3LogicError

from offchain.errors import MedShareError
from offchain.chain.events import EventLog, EventStore, progress_printer


class ChainRefusal(MedShareError):
    """The contract refused a call or transaction; ``error`` is its custom error's name."""

    def __init__(self, error: str, inputs: dict[str, Any]) -> None:
        self.error = error
        self.inputs = inputs
        shown = ", ".join(f"{name}={_show(value)}" for name, value in inputs.items())
        super().__init__(f"refused by the contract: {error}({shown})")


def _show(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return str(value)


# How anvil words a call's custom error, which Ape then leaves undecoded:
# "custom error 0x<selector>: <the arguments' ABI encoding as latin-1>", or the whole revert data as
# latin-1 text.
_RAW_CUSTOM_ERROR = re.compile(r"custom error 0x([0-9a-fA-F]{8}):\s?(.*)", re.DOTALL)


def _undecoded_error_data(contract: Any, message: str) -> bytes | None:
    """The revert data behind a message Ape did not decode, if it is one of the contract's errors."""
    raw = _RAW_CUSTOM_ERROR.fullmatch(message)
    try:
        data = bytes.fromhex(raw[1]) + raw[2].encode("latin-1") if raw else message.encode("latin-1")
    except UnicodeEncodeError:
        return None
    return data if data[:4] in contract.contract_type.errors else None


@contextmanager
def refusals(contract: Any) -> Iterator[None]:
    """Turn a revert of ``contract`` inside the block into a :class:`ChainRefusal`."""
    try:
        yield
    except CustomError as error:
        raise ChainRefusal(error.name, dict(error.inputs)) from None
    except ContractLogicError as error:
        message = error.revert_message or "revert"
        data = _undecoded_error_data(contract, message)
        if data is None:
            raise ChainRefusal(message, {}) from None
        raise _decode_error(contract, data) from None
    except Web3CustomError as error:
        raise _decode_error(contract, bytes.fromhex(str(error.data)[2:])) from None
    except Web3LogicError as error:
        raise ChainRefusal(str(error.message or "revert"), {}) from None


def _decode_error(contract: Any, data: bytes) -> ChainRefusal:
    """The custom error encoded in revert ``data``, by the contract's ABI."""
    errors = contract.contract_type.errors
    selector = data[:4]
    if selector not in errors:
        return ChainRefusal(f"custom error 0x{selector.hex()}", {})
    abi = errors[selector]
    try:
        inputs = contract.provider.network.ecosystem.decode_calldata(abi, data[4:])
    except Exception:  # noqa: BLE001 - undecodable arguments: the error's name still says what happened
        inputs = {}
    return ChainRefusal(abi.name, dict(inputs))


def _topic_value(canonical_type: str, topic: bytes) -> Any:
    """An indexed event field from its topic: the value of a static type, the hash of a dynamic one."""
    if canonical_type in ("bytes", "string") or canonical_type.endswith("]") or canonical_type.startswith("("):
        return topic
    (value,) = abi_decode([canonical_type], topic)
    return to_checksum_address(value) if canonical_type == "address" else value


@dataclass(frozen=True)
class Sent:
    """A transaction this client sent and saw mined: what front ends print (hash and gas), and the
    contract method it called with its arguments (what an :attr:`ContractClient.on_sent` hook reads)."""

    tx_hash: str
    gas_used: int
    block: int
    method: str = ""
    args: tuple = ()


class ContractClient:
    """A deployed contract (an Ape contract instance) and the account that signs for this client."""

    def __init__(self, contract: Any, account: Any, *, from_block: int = 0, cache_folder: Path | None = None,
                 on_sent: Callable[[Sent], None] | None = None) -> None:
        """``cache_folder``: keep the contract's indexed event store on disk there
        (``<cache_folder>/events/<chain id>/<address>.sqlite``), so the next process reads only new
        blocks; without it the store is in memory only. ``on_sent``: see :attr:`on_sent`."""
        self.contract = contract
        self.account = account
        self.from_block = from_block
        self.cache_folder = cache_folder
        self._cached_chain_id: int | None = None
        self.sent: list[Sent] = []
        """Every transaction sent through this client, oldest first."""
        self.on_sent = on_sent
        """Called with each transaction this client sends, once it is mined (and confirmed), before the
        step that sent it goes on: where a test or ``fl run --drop`` makes a node stop after a given message."""
        events = contract.contract_type.events
        self.events = (
            EventStore.for_contract(cache_folder / "events", self._chain_id(), contract.address, from_block, events)
            if cache_folder is not None else EventStore(None, contract.address, from_block, events)
        )
        """The contract's indexed event store, which every read of its history queries."""
        self._reading: dict[int, str] = {}
        if cache_folder is not None:
            self.events.progress = progress_printer(f"events of {contract.address[:10]}")

    @property
    def address(self) -> str:
        """The signing account's address."""
        return self.account.address

    def now(self) -> int:
        """The timestamp the next block will carry (what expiries and deadlines are compared with)."""
        return int(self.contract.chain_manager.pending_timestamp)

    def logs(self, event: str, **fields: Any) -> list[EventLog]:
        """The contract's ``event`` logs whose indexed ``fields`` have these values, oldest first: the
        event store, brought up to the chain's head, answers from its indexes."""
        self.sync_events()
        return self.events.query(event, **fields)

    def sync_events(self) -> None:
        """Bring the event store up to the chain's head (paged, incremental, reorg-checked); inside
        :meth:`one_read`, only its first call does."""
        if self._reading.get(threading.get_ident()) == "synced":
            return
        self.events.sync(self.contract.provider.web3)
        if threading.get_ident() in self._reading:
            self._reading[threading.get_ident()] = "synced"

    @contextmanager
    def one_read(self) -> Iterator[None]:
        """One read made of several queries: the store is brought up to date once, at the first."""
        thread = threading.get_ident()
        if thread in self._reading:
            yield
            return
        self._reading[thread] = "open"
        try:
            yield
        finally:
            del self._reading[thread]

    @property
    def chain_id(self) -> int:
        """The id of the chain the contract is on."""
        return self._chain_id()

    def multicall(self, calls: Sequence[bytes]) -> Any:
        """Send the contract's encoded ``calls`` as one ``multicall`` transaction (all land, or none);
        returns the receipt once confirmed."""
        return self._send(self.contract.multicall, list(calls))

    def _send(self, method: Any, *args: Any) -> Any:
        """Send ``method(*args)`` signed by the account; returns the web3 receipt once confirmed.

        Leaner than Ape's transaction path (a read is on the critical path of
        every fetch): the gas estimate doubles as the simulation, so a refusal
        costs no gas, mines nothing, and surfaces as a ChainRefusal; then one
        nonce, one fee quote, the signed send and the receipt.
        """
        provider = self.contract.provider
        web3 = provider.web3
        data = method.encode_input(*args)
        request = {"from": self.address, "to": self.contract.address, "data": data}
        with refusals(self.contract):
            gas = web3.eth.estimate_gas(request)
        priority_fee = web3.eth.max_priority_fee
        base_fee = web3.eth.get_block("pending").get("baseFeePerGas", 0)
        transaction = provider.network.ecosystem.create_transaction(
            chain_id=self._chain_id(),
            nonce=web3.eth.get_transaction_count(self.address, "pending"),
            receiver=self.contract.address,
            sender=self.address,
            data=data,
            gas_limit=gas + gas // 5,  # headroom: state may move between estimate and inclusion
            max_fee=2 * base_fee + priority_fee,
            max_priority_fee=priority_fee,
            type=2,
        )
        signed = self.account.sign_transaction(transaction)
        if signed is None:
            raise ChainRefusal("signing declined", {"account": self.address})
        tx_hash = web3.eth.send_raw_transaction(signed.serialize_transaction())
        local = provider.network.is_local
        receipt = web3.eth.wait_for_transaction_receipt(tx_hash, timeout=600, poll_latency=0.01 if local else 1.0)
        if receipt["status"] != 1:
            raise ChainRefusal("transaction reverted after its simulation passed", {"tx": tx_hash})
        sent = Sent("0x" + bytes(tx_hash).hex(), int(receipt["gasUsed"]), int(receipt["blockNumber"]),
                    method.abis[0].name, args)
        self.sent.append(sent)
        confirmations = provider.network.required_confirmations
        while confirmations and web3.eth.block_number < receipt["blockNumber"] + confirmations:
            time.sleep(1.0)
        if self.on_sent is not None:
            self.on_sent(sent)
        return receipt

    def _chain_id(self) -> int:
        if self._cached_chain_id is None:
            self._cached_chain_id = int(self.contract.provider.chain_id)
        return self._cached_chain_id

    def _event_data(self, receipt: Any, event: str) -> tuple:
        """The non-indexed fields of the first ``event`` log the contract emitted in ``receipt``."""
        abi = getattr(self.contract, event).abi
        fields = self._event_args(receipt, event)
        return tuple(fields[item.name] for item in abi.inputs if not item.indexed)

    def _event_args(self, receipt: Any, event: str) -> dict[str, Any]:
        """Every field of the first ``event`` log the contract emitted in ``receipt``, by name; an
        indexed field of a dynamic type is its topic (the hash of its value)."""
        abi = getattr(self.contract, event).abi
        topic = keccak(text=abi.selector)
        for log in receipt["logs"]:
            if log["address"] == self.contract.address and bytes(log["topics"][0]) == topic:
                data = iter(abi_decode([item.canonical_type for item in abi.inputs if not item.indexed],
                                       bytes(log["data"])))
                topics = iter(bytes(value) for value in log["topics"][1:])
                return {
                    item.name: _topic_value(item.canonical_type, next(topics)) if item.indexed else next(data)
                    for item in abi.inputs
                }
        raise ChainRefusal(f"no {event} event in the receipt", {})

    def _call(self, name: str, *args: Any, sender: str | None = None) -> tuple:
        """``eth_call`` through web3, not Ape: a revert becomes a ChainRefusal without Ape printing a
        call trace to stdout (which the local provider does for every revert)."""
        method = getattr(self.contract, name)
        request = {"to": self.contract.address, "data": method.encode_input(*args)}
        if sender is not None:
            request["from"] = sender
        with refusals(self.contract):
            returned = self.contract.provider.web3.eth.call(request)
        outputs = method.abis[0].outputs
        decoded = abi_decode([output.canonical_type for output in outputs], bytes(returned))
        return tuple(
            to_checksum_address(value) if output.type == "address" else value
            for output, value in zip(outputs, decoded)
        )
