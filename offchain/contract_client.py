"""A deployed contract seen from Python: typed reads, lean signed transactions, refusals as errors.

:class:`ContractClient` is the plumbing every MedShare contract client shares
(the access policy's :class:`~offchain.chain.AccessClient`, the round
registry's client): ``eth_call`` without Ape's trace printing, event queries,
and a send path that simulates first, so a refusal costs no gas and surfaces
as :class:`ChainRefusal` carrying the contract's custom error.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ape.exceptions import ContractLogicError, CustomError
from ape.types.events import LogFilter
from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address
from web3.exceptions import ContractCustomError as Web3CustomError
from web3.exceptions import ContractLogicError as Web3LogicError

from offchain.errors import MedShareError


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


def _matches(topics: list[str], wanted: list[Any]) -> bool:
    """Whether a log's topics pass an ``eth_getLogs`` topic filter (None: any; a list: any of them)."""
    if len(topics) < len(wanted):
        return False
    for topic, choice in zip(topics, wanted):
        if choice is None:
            continue
        options = choice if isinstance(choice, (list, tuple)) else [choice]
        if topic.lower() not in {str(option).lower() for option in options}:
            return False
    return True


def _topic_value(canonical_type: str, topic: bytes) -> Any:
    """An indexed event field from its topic: the value of a static type, the hash of a dynamic one."""
    if canonical_type in ("bytes", "string") or canonical_type.endswith("]") or canonical_type.startswith("("):
        return topic
    (value,) = abi_decode([canonical_type], topic)
    return to_checksum_address(value) if canonical_type == "address" else value


def log_page_blocks() -> int:
    """The most blocks one ``eth_getLogs`` asks for (``MEDSHARE_LOG_PAGE_BLOCKS``, checked when used, not
    at import; public Polygon endpoints refuse ranges beyond 1,000 to 10,000 blocks)."""
    from offchain.settings import Settings

    return Settings.from_env().log_page_blocks

CHECKPOINTS_KEPT = 32
"""How many (block, hash) checkpoints of past reads a log cache keeps to fall back on after a reorg."""

_LOG_FIELDS = ("address", "topics", "data", "blockNumber", "blockHash", "logIndex", "transactionHash",
               "transactionIndex")


def _plain(value: Any) -> Any:
    """A raw log field as JSON holds it: bytes as 0x-hex, lists element by element."""
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _get_logs(web3: Any, address: str, start: int, stop: int) -> list[dict]:
    """Every log ``address`` emitted in blocks ``start`` to ``stop``, as plain JSON values."""
    logs = web3.eth.get_logs({"address": address, "fromBlock": start, "toBlock": stop})
    return [{name: _plain(log[name]) for name in _LOG_FIELDS} for log in logs]


def _block_hash(web3: Any, number: int) -> str | None:
    """The hash of the canonical block ``number`` now (None: the chain is not that long)."""
    from web3.exceptions import BlockNotFound

    try:
        block = web3.eth.get_block(number)
    except BlockNotFound:
        return None
    return _plain(block["hash"]) if block else None


class LogCache:
    """Every log one contract emitted from ``from_block`` on, brought up to date incrementally.

    A sync reads only the blocks after the last one read, in pages of
    :func:`log_page_blocks`, so a public endpoint's range cap is never hit
    and old blocks are never read twice. Each sync first notes the head's
    hash (a checkpoint). A block's hash commits to every block before it, so
    if the checkpoint of the last sync is still canonical, nothing cached
    changed; if not (a reorg, a reverted snapshot, a restarted node), the
    cache drops back to its newest checkpoint that is still canonical,
    forgets the logs after it and reads those blocks again; with none left,
    it starts over. A checkpoint is taken before the logs it covers are
    read, so a reorg during a read shows at the next sync.

    With a ``path``, the cache is kept in that JSON file and survives the
    process: the next client on the same chain and contract reads only the
    blocks added since.
    """

    def __init__(self, address: str, from_block: int, path: Path | None = None) -> None:
        self.address = address
        self.from_block = from_block
        self.path = path
        self.logs: list[dict] = []
        self.synced_to = from_block - 1
        self.checkpoints: list[tuple[int, str]] = []
        if path is not None:
            self._load(path)

    @classmethod
    def for_contract(cls, folder: Path, chain_id: int, address: str, from_block: int) -> LogCache:
        """The cache of ``address`` on ``chain_id`` under ``folder``: ``<folder>/logs/<chain id>/<address>.json``."""
        return cls(address, from_block, folder / "logs" / str(chain_id) / f"{address.lower()}.json")

    def sync(self, web3: Any) -> list[dict]:
        """Bring the cache up to the chain's head; returns every cached log, oldest first."""
        head = web3.eth.get_block("latest")
        head_number, head_hash = int(head["number"]), _plain(head["hash"])
        self._drop_back(web3)
        if head_number <= self.synced_to and (head_number, head_hash) in self.checkpoints:
            return self.logs
        page = log_page_blocks()
        for start in range(self.synced_to + 1, head_number + 1, page):
            self.logs.extend(_get_logs(web3, self.address, start, min(head_number, start + page - 1)))
        self.synced_to = max(self.synced_to, head_number)
        self.checkpoints = [point for point in self.checkpoints if point[0] < head_number]
        self.checkpoints = (self.checkpoints + [(head_number, head_hash)])[-CHECKPOINTS_KEPT:]
        self._save()
        return self.logs

    def _drop_back(self, web3: Any) -> None:
        """Forget what a reorg replaced: everything after the newest checkpoint still canonical."""
        for index in range(len(self.checkpoints) - 1, -1, -1):
            block, known = self.checkpoints[index]
            if _block_hash(web3, block) == known:
                if index < len(self.checkpoints) - 1:
                    self._truncate(block, self.checkpoints[: index + 1])
                return
        if self.checkpoints or self.synced_to >= self.from_block:
            self._truncate(self.from_block - 1, [])

    def _truncate(self, block: int, checkpoints: list[tuple[int, str]]) -> None:
        self.logs = [log for log in self.logs if log["blockNumber"] <= block]
        self.synced_to = block
        self.checkpoints = checkpoints

    def _load(self, path: Path) -> None:
        try:
            saved = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return
        if not isinstance(saved, dict) or saved.get("from_block") != self.from_block \
                or str(saved.get("address", "")).lower() != self.address.lower():
            return  # damaged, or another deployment's cache: start over (the chain has it all)
        try:
            logs, synced_to = list(saved["logs"]), int(saved["synced_to"])
            checkpoints = [(int(block), str(block_hash)) for block, block_hash in saved["checkpoints"]]
        except (KeyError, TypeError, ValueError):
            return
        self.logs, self.synced_to, self.checkpoints = logs, synced_to, checkpoints

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        saved = {"address": self.address, "from_block": self.from_block, "synced_to": self.synced_to,
                 "checkpoints": self.checkpoints, "logs": self.logs}
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        temporary.write_text(json.dumps(saved, separators=(",", ":")))
        os.replace(temporary, self.path)


@dataclass(frozen=True)
class Sent:
    """A transaction this client sent and saw mined: what front ends print (hash and gas)."""

    tx_hash: str
    gas_used: int
    block: int


class ContractClient:
    """A deployed contract (an Ape contract instance) and the account that signs for this client."""

    def __init__(self, contract: Any, account: Any, *, from_block: int = 0, cache_folder: Path | None = None) -> None:
        """``cache_folder``: keep the contract's logs on disk there (:meth:`LogCache.for_contract`), so
        the next process reads only new blocks; without it they are cached in memory only."""
        self.contract = contract
        self.account = account
        self.from_block = from_block
        self._cached_chain_id: int | None = None
        self.sent: list[Sent] = []
        """Every transaction sent through this client, oldest first."""
        self.log_cache = (
            LogCache.for_contract(cache_folder, self._chain_id(), contract.address, from_block)
            if cache_folder is not None else LogCache(contract.address, from_block)
        )
        self._cache_lock = threading.Lock()

    @property
    def address(self) -> str:
        """The signing account's address."""
        return self.account.address

    def now(self) -> int:
        """The timestamp the next block will carry (what expiries and deadlines are compared with)."""
        return int(self.contract.chain_manager.pending_timestamp)

    def _logs(self, event: str, **topics: Any) -> list[Any]:
        """The contract's ``event`` logs matching the indexed ``topics``, oldest first.

        Every read brings the contract's :class:`LogCache` up to date (paged,
        incremental, reorg-checked) and picks the matching logs from it.
        """
        abi = getattr(self.contract, event).abi
        wanted = LogFilter.from_event(getattr(self.contract, event), search_topics=topics,
                                      addresses=[self.contract.address]).topic_filter
        with self._cache_lock:  # a fetch reads on a worker thread while it logs the access
            logs = list(self.log_cache.sync(self.contract.provider.web3))
        matching = [log for log in logs if _matches(log["topics"], wanted)]
        return list(self.contract.provider.network.ecosystem.decode_logs(matching, abi))

    def _multicall(self, calls: list[bytes]) -> Any:
        return self._send(self.contract.multicall, calls)

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
        self.sent.append(Sent("0x" + bytes(tx_hash).hex(), int(receipt["gasUsed"]), int(receipt["blockNumber"])))
        confirmations = provider.network.required_confirmations
        while confirmations and web3.eth.block_number < receipt["blockNumber"] + confirmations:
            time.sleep(1.0)
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
