"""Sending a checked batch as transactions that fit a block, and resuming one cut short.

A batch (a members, grants or revokes file) is checked whole before anything is sent; then its
calls go out as ``multicall`` transactions (chunks), each under a gas budget taken from the chain's
block gas limit with a margin (:data:`BUDGET_SHARE`), so a thousand rows never make one transaction
that no block can hold. Each chunk lands whole or not at all; a :class:`BatchJournal` notes the rows
of each confirmed chunk, so running the same file again after a failure resumes after the last
confirmed chunk rather than sending those rows twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


from offchain.chain.contract import ChainRefusal, ContractClient, Sent, refusals

BUDGET_SHARE = 0.5
"""The share of the block gas limit one chunk may use: a chunk must be included beside other
transactions, and the state may move between the estimate and the block."""
SAMPLE_CALLS = 8


@dataclass(frozen=True)
class Call:
    """The encoded calls of one row (a grant and its key share travel together), and its file row(s)."""

    rows: tuple[int, ...]
    data: tuple[bytes, ...]


@dataclass(frozen=True)
class ChunkSent:
    """A confirmed chunk: its place (from 1) among ``of`` chunks, the rows it carried, its transaction."""

    number: int
    of: int
    rows: tuple[int, ...]
    sent: Sent


class ChunkFailed(ChainRefusal):
    """A chunk was refused or failed after the checks passed: the rows of the chunks before it are done."""

    def __init__(self, number: int, rows: Sequence[int], done: Sequence[int], error: Exception) -> None:
        self.number, self.rows, self.done = number, tuple(rows), tuple(done)
        shown = f"{rows[0]}-{rows[-1]}" if len(rows) > 1 else str(rows[0])
        before = (f"rows {_ranges(done)} were done before it and are not sent again when the same file is "
                  "run again" if done else "nothing was sent")
        super().__init__(f"chunk {number} (rows {shown}): {error} ({before})", {})


def _ranges(numbers: Sequence[int]) -> str:
    """``1-300, 302`` for [1..300, 302]."""
    spans, numbers = [], sorted(numbers)
    for number in numbers:
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in spans)


def _flat(calls: Sequence[Call]) -> list[bytes]:
    return [data for call in calls for data in call.data]


def gas_budget(client: ContractClient) -> int:
    """The most gas one chunk may use: :data:`BUDGET_SHARE` of the latest block's gas limit."""
    limit = int(client.contract.provider.web3.eth.get_block("latest")["gasLimit"])
    return int(limit * BUDGET_SHARE)


def _estimate(client: ContractClient, calls: Sequence[Call]) -> int | None:
    """The gas of one multicall of ``calls`` (None: beyond what the node will estimate)."""
    web3 = client.contract.provider.web3
    data = client.contract.multicall.encode_input(_flat(calls))
    try:
        with refusals(client.contract):
            return int(web3.eth.estimate_gas({"from": client.address, "to": client.contract.address, "data": data}))
    except ChainRefusal as refusal:
        if "gas" in str(refusal).lower() or "out of" in str(refusal).lower():
            return None
        raise


def plan_chunks(client: ContractClient, calls: Sequence[Call], budget: int | None = None) -> list[list[Call]]:
    """``calls`` in order, cut into chunks whose multicall each fits ``budget`` (default :func:`gas_budget`).

    A chunk's size comes from a sample's gas per call; every chunk is then estimated, and halved
    while it does not fit (calls differ: a data owner's first role costs more than a patient's)."""
    if not calls:
        return []
    budget = gas_budget(client) if budget is None else budget
    sample = list(calls[:SAMPLE_CALLS])
    sampled = _estimate(client, sample)
    per_call = max(1, (sampled or budget) // len(sample))
    size = max(1, int(budget / (per_call * 1.15)))
    chunks, start = [], 0
    while start < len(calls):
        chunk = list(calls[start:start + size])
        while len(chunk) > 1:
            gas = _estimate(client, chunk)
            if gas is not None and gas <= budget:
                break
            chunk = chunk[: len(chunk) // 2]
        chunks.append(chunk)
        start += len(chunk)
    return chunks


def send_chunks(client: ContractClient, chunks: Sequence[Sequence[Call]], *,
                journal: BatchJournal | None = None,
                on_chunk: Callable[[ChunkSent], None] | None = None) -> list[ChunkSent]:
    """Send each chunk as one multicall, in order; ChunkFailed at the first that fails."""
    sent: list[ChunkSent] = []
    done: list[int] = []
    for number, chunk in enumerate(chunks, start=1):
        rows = tuple(row for call in chunk for row in call.rows)
        try:
            client.multicall(_flat(chunk))
        except ChainRefusal as error:
            raise ChunkFailed(number, rows, done, error) from None
        done += rows
        if journal is not None:
            journal.add(rows)
        confirmed = ChunkSent(number, len(chunks), rows, client.sent[-1])
        sent.append(confirmed)
        if on_chunk is not None:
            on_chunk(confirmed)
    if journal is not None:
        journal.finish()
    return sent


class BatchJournal:
    """The rows of one batch file confirmed on chain so far, kept until the whole batch is done.

    Keyed by what the batch is (the file's bytes, its kind, the chain, the contract and the signer),
    so only the same file run again by the same signer resumes from it."""

    def __init__(self, folder: Path, kind: str, source: bytes, client: ContractClient) -> None:
        key = hashlib.sha256(b"\0".join([
            kind.encode(), source, str(client.chain_id).encode(), client.contract.address.lower().encode(),
            str(client.address).lower().encode()])).hexdigest()[:32]
        self.path = folder / f"{kind}-{key}.json"
        self.done: set[int] = set()
        try:
            self.done = {int(row) for row in json.loads(self.path.read_text())["done"]}
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError):
            self.done = set()  # a damaged journal resumes nothing: every row is checked against the chain again

    def add(self, rows: Sequence[int]) -> None:
        self.done.update(rows)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"done": sorted(self.done)}))
        os.replace(temporary, self.path)

    def finish(self) -> None:
        """The whole batch is on chain: the same file run again is a new batch."""
        self.path.unlink(missing_ok=True)


def batch_journal(kind: str, path: Path, client: ContractClient, folder: Path | None) -> BatchJournal | None:
    """The journal of batch file ``path`` under ``folder``/batches (None without a folder)."""
    if folder is None:
        return None
    return BatchJournal(folder / "batches", kind, Path(path).read_bytes(), client)


