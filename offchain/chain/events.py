"""The indexed event store: one contract's logs in an embedded SQLite database, kept in step with the chain.

Every client read (a record's grants or audit trail, an owner's records, a round's updates) is an
indexed query of this store, never a scan of history, and memory stays bounded however long the
history: a sync holds a few pages of logs at a time, a query only the rows it returns.

Layout: ``<folder>/<chain id>/<address>.sqlite`` (WAL mode, shared by every process of the site).
Table ``logs`` holds one row per log: its place (``block``, ``idx``), transaction, event type
(``event``, a small integer for the log's first topic) and its indexed fields ``t1``..``t3`` (the
record, owner, patient, grantee, reader, member, study, round... of each event, as their 32-byte
topics), each with an index beside the event type; ``data`` holds the other fields, decoded when a
query returns them.

Sync appends only new logs, one transaction per page (the page's logs and the block it reached
commit together, so a crash resumes at the last committed page). Before reading on, it checks that
the newest block it knows (a checkpoint: the head it reached, or the last log of a page) is still
canonical, by the head's parent hash where the head is the next block, else by asking the chain;
after a reorg it drops back to the newest checkpoint still canonical and forgets every log after it.

Pages adapt to the provider: a sync starts at the range the store learned last time (a small probe
at first), halves it when the provider refuses a range or a result as too large, and doubles it
after successes, up to ``MEDSHARE_LOG_PAGE_BLOCKS`` (1,000 by default).
"""

from __future__ import annotations

import functools
import http.client
import itertools
import json
import os
import re
import sqlite3
import sys
import threading
import time
import urllib.parse
import queue
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from offchain.errors import MedShareError
from offchain.settings import Settings

SCHEMA_VERSION = 1
FIRST_PAGE_BLOCKS = 8
"""The range a store with nothing learned yet starts at: a dense chain (a thousand logs a block)
must not send a first page of a million logs."""
TARGET_PAGE_LOGS = 5000
"""Pages grow while they return fewer logs than this, and shrink when they return more."""
PAGES_AHEAD = 2
"""Pages fetched and converted ahead of the one being stored (what a sync holds in memory, beyond it)."""
CHECKPOINTS_KEPT = 64
CEILING_PAGES = 64
PROGRESS_BLOCKS = 2000
"""A sync reading fewer blocks than this shows no progress (it is over before one would read it)."""


class EventStoreError(MedShareError):
    """The event store cannot be used or brought up to date (the message says why and what to do)."""


class LogQueryRefused(EventStoreError):
    """The provider refused ``eth_getLogs`` even for a single block."""


def page_blocks_setting(environ: Any = os.environ) -> int:
    """The widest page of blocks a sync asks for (``MEDSHARE_LOG_PAGE_BLOCKS``, default 1,000), checked
    when a sync needs it, not at import."""
    return Settings.from_env(environ).log_page_blocks


@dataclass(frozen=True)
class SyncProgress:
    """How far a sync is: blocks ``done`` of ``total`` to read, logs stored so far this sync, the page range."""

    done: int
    total: int
    logs: int
    page_blocks: int


class EventLog:
    """One decoded log: ``event_name``, ``event_arguments`` (also as attributes), and where it is on chain."""

    __slots__ = ("event_name", "event_arguments", "block_number", "log_index", "_tx")

    def __init__(self, event_name: str, arguments: dict[str, Any], block: int, index: int, tx: bytes) -> None:
        self.event_name = event_name
        self.event_arguments = arguments
        self.block_number = block
        self.log_index = index
        self._tx = tx

    @property
    def transaction_hash(self) -> str:
        """The 0x-prefixed hash of the log's transaction (made when asked: most reads never do)."""
        return "0x" + self._tx.hex()

    def __getattr__(self, name: str) -> Any:
        try:
            return self.event_arguments[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        return f"<{self.event_name} {self.event_arguments} block {self.block_number}>"


@functools.lru_cache(maxsize=65536)
def _checksum(word: bytes) -> str:
    """The checksummed address in the low 20 bytes of an ABI word (cached: a few accounts recur)."""
    return to_checksum_address(word[-20:])


_UINT = re.compile(r"uint(\d+)")
_INT = re.compile(r"int(\d+)")
_FIXED_BYTES = re.compile(r"bytes(\d+)")


def _static_decoder(canonical: str) -> Callable[[bytes], Any] | None:
    """A decoder of one 32-byte ABI word of a static elementary type (None: not one)."""
    if canonical == "address":
        return _checksum
    if canonical == "bool":
        return lambda word: word[-1] != 0
    if _UINT.fullmatch(canonical):
        return lambda word: int.from_bytes(word, "big")
    if _INT.fullmatch(canonical):
        return lambda word: int.from_bytes(word, "big", signed=True)
    size = _FIXED_BYTES.fullmatch(canonical)
    if size:
        length = int(size[1])
        return _whole_word if length == 32 else lambda word: word[:length]
    return None


def _whole_word(word: bytes) -> bytes:
    return word


def _field_decoder(canonical: str) -> tuple[bool, Callable[[bytes, int], Any]] | None:
    """(dynamic?, decode(data, head offset)) for a top-level ABI field our events use; None: use eth_abi."""
    static = _static_decoder(canonical)
    if static is not None:
        return False, lambda data, at: static(data[at:at + 32])
    if canonical in ("bytes", "string"):
        def dynamic(data: bytes, at: int) -> Any:
            start = int.from_bytes(data[at:at + 32], "big")
            length = int.from_bytes(data[start:start + 32], "big")
            raw = data[start + 32:start + 32 + length]
            return raw.decode() if canonical == "string" else raw
        return True, dynamic
    if canonical.endswith("[]"):
        element = _static_decoder(canonical[:-2])
        if element is None:
            return None

        def array(data: bytes, at: int) -> list:
            start = int.from_bytes(data[at:at + 32], "big")
            count = int.from_bytes(data[start:start + 32], "big")
            return [element(data[start + 32 + 32 * i:start + 64 + 32 * i]) for i in range(count)]
        return True, array
    return None


class EventType:
    """How one event of a contract's ABI is stored and decoded."""

    def __init__(self, abi: Any) -> None:
        self.name = abi.name
        self.topic0 = keccak(text=abi.selector)
        self.indexed = [(item.name, item.canonical_type) for item in abi.inputs if item.indexed]
        self.unindexed = [(item.name, item.canonical_type) for item in abi.inputs if not item.indexed]
        self.order = [item.name for item in abi.inputs]
        # A topic the store returns is already the value of a bytes32 (or of an indexed dynamic
        # field: its hash): those are taken as they are (None), the others decoded.
        self._topic_decoders = [
            (name, None if decoder is _whole_word else decoder)
            for name, canonical in self.indexed
            for decoder in [_static_decoder(canonical) or _whole_word]
        ]
        decoders = [_field_decoder(canonical) for _, canonical in self.unindexed]
        self._data_decoders = (
            None if any(decoder is None for decoder in decoders)
            else [(name, 32 * position, decoder[1])
                  for position, ((name, _), decoder) in enumerate(zip(self.unindexed, decoders))]
        )
        self._in_order = [name for name, _ in self.indexed + self.unindexed] == self.order

    def values(self, field: str, t1: Sequence[Any], t2: Sequence[Any], t3: Sequence[Any],
               data: Sequence[bytes]) -> Iterable[Any]:
        """The decoded ``field`` of logs whose columns are these (one sequence a column, a log a row)."""
        for position, (name, decode) in enumerate(self._topic_decoders):
            if name == field:
                topics = (t1, t2, t3)[position]
                return topics if decode is None else map(decode, topics)
        if self._data_decoders is not None:
            for name, at, decode in self._data_decoders:
                if name == field:
                    return map(decode, data, itertools.repeat(at))
        if field not in self.order:
            raise ValueError(f"{self.name} has no field {field!r}")
        return [self.decode(0, 0, b"", topics, row).event_arguments[field] for *topics, row in zip(t1, t2, t3, data)]

    def column(self, field: str) -> str:
        """The column holding indexed ``field``: ``t1``, ``t2`` or ``t3``."""
        for position, (name, _) in enumerate(self.indexed, 1):
            if name == field:
                return f"t{position}"
        raise ValueError(f"{self.name} has no indexed field {field!r}")

    def topic(self, field: str, value: Any) -> bytes:
        """``value`` of indexed ``field`` as its topic (what the column holds)."""
        canonical = dict(self.indexed)[field]
        if canonical in ("bytes", "string") or canonical.endswith("]") or canonical.startswith("("):
            return keccak(bytes(value) if canonical == "bytes" else str(value).encode())
        if canonical == "address":
            return bytes(12) + bytes.fromhex(str(value)[2:]) if isinstance(value, str) else bytes(12) + bytes(value)
        return abi_encode([canonical], [value])

    def decode(self, block: int, index: int, tx: bytes, topics: Sequence[bytes | None], data: bytes) -> EventLog:
        """The log's fields by name, in the event's order (an indexed dynamic field: its topic, the hash)."""
        values: dict[str, Any] = {}
        for (name, decode), topic in zip(self._topic_decoders, topics):
            values[name] = topic if decode is None else decode(topic)
        if self._data_decoders is not None:
            for name, at, decode in self._data_decoders:
                values[name] = decode(data, at)
        elif self.unindexed:
            decoded = abi_decode([canonical for _, canonical in self.unindexed], data)
            for (name, canonical), value in zip(self.unindexed, decoded):
                values[name] = _checksum(bytes(12) + bytes.fromhex(value[2:])) if canonical == "address" else value
        if not self._in_order:
            values = {name: values[name] for name in self.order}
        return EventLog(self.name, values, block, index, tx)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (block INTEGER PRIMARY KEY, hash BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS event_types (id INTEGER PRIMARY KEY, topic0 BLOB NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS logs (
    block INTEGER NOT NULL, idx INTEGER NOT NULL, tx BLOB NOT NULL, event INTEGER,
    t1 BLOB, t2 BLOB, t3 BLOB, data BLOB NOT NULL,
    PRIMARY KEY (block, idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS logs_event ON logs (event, block, idx);
CREATE INDEX IF NOT EXISTS logs_t1 ON logs (t1, event);
CREATE INDEX IF NOT EXISTS logs_t2 ON logs (t2, event);
CREATE INDEX IF NOT EXISTS logs_t3 ON logs (t3, event);
"""


_connections = threading.local()
INSERT_ROWS = 64
"""Logs a statement inserts: SQLite steps (and the GIL changes hands) once for that many, not once a log."""
_INSERT_ONE = "INSERT OR IGNORE INTO logs VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_MANY = "INSERT OR IGNORE INTO logs VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * INSERT_ROWS)


_DROP_INDEXES = """
DROP INDEX IF EXISTS logs_event; DROP INDEX IF EXISTS logs_t1; DROP INDEX IF EXISTS logs_t2;
DROP INDEX IF EXISTS logs_t3;
"""


class _Log(msgspec.Struct):
    """The fields of an ``eth_getLogs`` entry the store keeps (the others are skipped, not parsed)."""

    blockNumber: str  # noqa: N815 - the JSON-RPC names
    logIndex: str  # noqa: N815
    transactionHash: str  # noqa: N815
    blockHash: str  # noqa: N815
    topics: list[str]
    data: str
    removed: bool = False


class _LogsAnswer(msgspec.Struct):
    result: list[_Log] | None = None
    error: Any = None


_LOGS_ANSWER = msgspec.json.Decoder(_LogsAnswer)
"""A page of logs parsed straight into the fields kept: about half the time of json.loads (a cold
sync spends more time parsing its pages than on anything else of its own)."""


_DECODERS = {"eth_getLogs": _LOGS_ANSWER}


def _get_logs(web3: Any, address: str, start: int, stop: int) -> list[_Log]:
    logs = _rpc(web3, "eth_getLogs", [{"address": address, "fromBlock": hex(start), "toBlock": hex(stop)}])
    if logs and not isinstance(logs[0], _Log):  # a provider other than HTTP: parsed already, as dicts
        try:
            logs = msgspec.convert(logs, list[_Log])
        except msgspec.ValidationError as error:
            raise _RpcError(f"a malformed eth_getLogs answer: {error}") from None
    return logs


def _rpc(web3: Any, method: str, params: list) -> Any:
    """A raw JSON-RPC call (no web3 result formatting: a log page is parsed once, by us). Over HTTP,
    on a kept-alive connection of this thread's own: requests' per-call overhead (proxy lookups in
    the environment) would cost more than the call."""
    url = getattr(web3.provider, "endpoint_uri", None)
    if not (isinstance(url, str) and url.startswith("http://")):
        try:
            answer = web3.provider.make_request(method, params)
        except Exception as error:  # noqa: BLE001 - providers raise their own types for an error answer
            raise _RpcError(str(error)) from None
    else:
        answer = _http_rpc(str(url), method, params, _DECODERS.get(method))
    if "error" in answer:
        error = answer["error"]
        raise _RpcError(error.get("message", str(error)) if isinstance(error, dict) else str(error))
    return answer["result"]


def _http_rpc(url: str, method: str, params: list, decoder: msgspec.json.Decoder | None = None) -> dict:
    parsed = urllib.parse.urlsplit(url)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    for attempt in (1, 2):
        connection = getattr(_connections, url, None)
        if connection is None:
            connection = http.client.HTTPConnection(parsed.hostname, parsed.port or 80, timeout=120)
            setattr(_connections, url, connection)
        try:
            connection.request("POST", parsed.path or "/", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            setattr(_connections, url, None)
            if attempt == 2:
                raise _RpcError(f"{url}: {error}") from None
            continue
        try:
            if decoder is None:
                return json.loads(data)
            answer = decoder.decode(data)
            return {"result": answer.result} if answer.error is None else {"error": answer.error}
        except msgspec.ValidationError as error:
            raise _RpcError(f"{url} answered {method} with a malformed result: {error}") from None
        except (ValueError, msgspec.DecodeError):
            raise _RpcError(f"{url} answered {method} with something other than JSON (HTTP {response.status})") from None
    raise AssertionError("unreachable")


class _RpcError(Exception):
    pass


def _block(web3: Any, tag: int | str) -> dict | None:
    return _rpc(web3, "eth_getBlockByNumber", [hex(tag) if isinstance(tag, int) else tag, False])


class EventStore:
    """The logs ``address`` emitted from ``from_block`` on, in the SQLite database at ``path`` (None: in memory)."""

    def __init__(self, path: Path | None, address: str, from_block: int, events: Iterable[Any],
                 *, page_blocks: int | None = None) -> None:
        self.path = path
        self.address = address
        self.from_block = from_block
        self.max_page_blocks = page_blocks if page_blocks is not None else page_blocks_setting()
        self.types = {abi.name: EventType(abi) for abi in events}
        self.progress: Callable[[SyncProgress], None] | None = None
        """Called after every page a sync stores (front ends draw a progress bar from it)."""
        self._lock = threading.Lock()  # one connection, one thread at a time (a sync's worker never uses it)
        self._db = self._open()
        self._type_ids = self._register_types()
        self._by_id = {self._type_ids[event.topic0]: event for event in self.types.values()}
        self._hex_type_ids = {"0x" + topic0.hex(): ident for topic0, ident in self._type_ids.items()}

    @classmethod
    def for_contract(cls, folder: Path, chain_id: int, address: str, from_block: int, events: Iterable[Any],
                     **options: Any) -> EventStore:
        """The store of ``address`` on ``chain_id`` under ``folder``: ``<folder>/<chain id>/<address>.sqlite``."""
        return cls(folder / str(chain_id) / f"{address.lower()}.sqlite", address, from_block, events, **options)

    # Opening -----------------------------------------------------------------

    def _damaged(self, error: Exception) -> EventStoreError:
        return EventStoreError(
            f"the event store {self.path} is damaged ({error}): delete it and the next command rebuilds it from "
            "the chain"
        )

    def _open(self) -> sqlite3.Connection:
        target = ":memory:"
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            target = str(self.path)
        try:
            db = sqlite3.connect(target, timeout=60, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA cache_size=-32768")  # 32 MiB of pages: a sync's index inserts stay in memory
            db.executescript(_SCHEMA)
            meta = dict(db.execute("SELECT key, value FROM meta"))
            if meta.get("schema") not in (None, SCHEMA_VERSION):
                raise sqlite3.DatabaseError(f"schema version {meta.get('schema')}, this release reads {SCHEMA_VERSION}")
            if meta.get("address", self.address.lower()) != self.address.lower() or \
                    meta.get("from_block", self.from_block) != self.from_block:
                # Another deployment from the same address (a restarted local chain): start over.
                self._clear(db)
                meta = {}
            if not meta:
                with _transaction(db):
                    db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [
                        ("schema", SCHEMA_VERSION), ("address", self.address.lower()),
                        ("from_block", self.from_block), ("synced_to", self.from_block - 1)])
        except sqlite3.DatabaseError as error:
            raise self._damaged(error) from None
        return db

    @staticmethod
    def _clear(db: sqlite3.Connection) -> None:
        with _transaction(db):
            for table in ("meta", "checkpoints", "logs"):
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names

    def _register_types(self) -> dict[bytes, int]:
        try:
            with _transaction(self._db):
                self._db.executemany("INSERT OR IGNORE INTO event_types (topic0) VALUES (?)",
                                     [(event.topic0,) for event in self.types.values()])
            return {bytes(topic): ident for ident, topic in self._db.execute("SELECT id, topic0 FROM event_types")}
        except sqlite3.DatabaseError as error:
            raise self._damaged(error) from None

    def close(self) -> None:
        self._db.close()

    def rebuild(self) -> None:
        """Forget every stored log: the next sync reads the contract's history again."""
        with self._lock, self._guarded():
            self._clear(self._db)
            with _transaction(self._db):
                self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [
                    ("schema", SCHEMA_VERSION), ("address", self.address.lower()),
                    ("from_block", self.from_block), ("synced_to", self.from_block - 1)])

    # State -------------------------------------------------------------------

    def _meta(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    @property
    def synced_to(self) -> int:
        """The last block whose logs are stored."""
        with self._lock, self._guarded():
            return int(self._meta("synced_to", self.from_block - 1))

    def count(self) -> int:
        """How many logs are stored."""
        with self._lock, self._guarded():
            return int(self._db.execute("SELECT count(*) FROM logs").fetchone()[0])

    def _guarded(self):
        return _Guard(self)

    # Sync --------------------------------------------------------------------

    def sync(self, web3: Any) -> None:
        """Bring the store up to the chain's head."""
        head = _block(web3, "latest")
        head_number, head_hash = int(head["number"], 16), bytes.fromhex(head["hash"][2:])
        parent_hash = bytes.fromhex(head["parentHash"][2:])
        with self._lock, self._guarded():
            start = self._drop_back(web3, head_number, head_hash, parent_hash)
            if start > head_number:
                return
            cold = self._db.execute("SELECT 1 FROM logs LIMIT 1").fetchone() is None
            if cold and head_number - start >= FIRST_PAGE_BLOCKS:
                # An empty store reading more than a first page: its indexes are built once at the
                # end (a sorted build), not row by row (a few hundred blocks of a busy contract hold
                # hundreds of thousands of logs); a sync cut short rebuilds them when next opened.
                # It writes without waiting for the disk, too: a crash of the machine mid-way leaves at
                # worst a damaged store, which says so and is rebuilt (a process crash loses nothing).
                self._db.executescript(_DROP_INDEXES + "PRAGMA synchronous=OFF;")
                try:
                    self._read(web3, start, head_number, head_hash)
                finally:
                    self._db.executescript(_SCHEMA + "PRAGMA synchronous=NORMAL;")
                return
            self._read(web3, start, head_number, head_hash)

    def _drop_back(self, web3: Any, head_number: int, head_hash: bytes, parent_hash: bytes) -> int:
        """The first block to read: after the newest checkpoint still canonical (logs after it forgotten)."""
        db = self._db
        checkpoints = db.execute("SELECT block, hash FROM checkpoints ORDER BY block DESC").fetchall()
        synced_to = int(self._meta("synced_to", self.from_block - 1))
        for number, known in checkpoints:
            known = bytes(known)
            if number == head_number:
                canonical = known == head_hash
            elif number == head_number - 1:
                canonical = known == parent_hash
            elif number > head_number:
                canonical = False
            else:
                block = _block(web3, number)
                canonical = block is not None and bytes.fromhex(block["hash"][2:]) == known
            if canonical:
                if number < synced_to or number != checkpoints[0][0]:
                    # Blocks after the checkpoint may have changed since (a reorg, or a sync cut short
                    # after a page with no logs at its end): read them again.
                    self._truncate(number)
                return number + 1
        if synced_to >= self.from_block or checkpoints:
            self._truncate(self.from_block - 1)
        return self.from_block

    def _truncate(self, block: int) -> None:
        with _transaction(self._db):
            self._db.execute("DELETE FROM logs WHERE block > ?", (block,))
            self._db.execute("DELETE FROM checkpoints WHERE block > ?", (block,))
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'synced_to'", (block,))

    def _read(self, web3: Any, start: int, head_number: int, head_hash: bytes) -> None:
        """Read blocks ``start`` to the head, a page per transaction, adapting the page to the provider.

        A worker thread fetches and converts the next page while this one commits the last (the
        provider's work, the JSON and the SQLite inserts overlap); at most :data:`PAGES_AHEAD` pages
        wait, so memory stays bounded."""
        stored, total = 0, head_number - start + 1
        while start <= head_number:
            learned = (min(self.max_page_blocks, int(self._meta("page_blocks", FIRST_PAGE_BLOCKS))),
                       min(self.max_page_blocks, int(self._meta("page_ceiling", self.max_page_blocks))),
                       int(self._meta("page_ceiling_pages", 0)))
            pages = self._pages(web3, start, head_number, learned)
            if head_number - start + 1 > learned[0]:
                pages = _Prefetch(pages, PAGES_AHEAD)  # more than one page: fetch the next while storing
            try:
                for page in pages:
                    if page.stop == head_number:
                        page.checkpoint = (head_number, head_hash)
                    if not self._commit(page):
                        # Another process stored these blocks (or dropped back) meanwhile: pick up from there.
                        start = int(self._meta("synced_to")) + 1
                        break
                    stored += len(page.rows)
                    start = page.stop + 1
                    if self.progress is not None:
                        self.progress(SyncProgress(total - (head_number - page.stop), total, stored, page.blocks))
            finally:
                pages.close()

    def _pages(self, web3: Any, start: int, head_number: int, learned: tuple[int, int, int]) -> Iterator[_Page]:
        """The pages of logs from ``start`` to ``head_number``, each converted to rows (runs in the
        worker, which never touches the database). ``learned``: the page range, its ceiling and the
        pages left before the ceiling lifts, as the last sync left them.

        A refused page is halved and tried again; the refused width is not tried again for
        :data:`CEILING_PAGES` pages, this sync's and the next ones' (a provider's cap does not move),
        then growth resumes (a cap on the result's size moves with the chain's density)."""
        page, ceiling, ceiling_left = learned
        streak = 0
        address = self.address
        while start <= head_number:
            stop = min(head_number, start + page - 1)
            try:
                logs = _get_logs(web3, address, start, stop)
            except _RpcError as error:
                if stop == start:
                    raise LogQueryRefused(f"the provider refused eth_getLogs for block {start} alone: {error}") from None
                page = max(1, (stop - start + 1) // 2)
                ceiling, ceiling_left, streak = page, CEILING_PAGES, 0
                continue
            count = len(logs)
            rows, checkpoint, unknown = self._rows(logs)
            del logs
            yield _Page(start, stop, rows, checkpoint, unknown, page, (page, ceiling, ceiling_left - 1))
            start = stop + 1
            streak += 1
            ceiling_left -= 1
            if ceiling_left <= 0:
                ceiling = self.max_page_blocks
            if count > TARGET_PAGE_LOGS:
                page, streak = max(1, page // 2), 0
            elif streak >= 2 and count < TARGET_PAGE_LOGS // 4 and page < ceiling:
                page, streak = min(ceiling, page * 2), 0

    def _commit(self, page: _Page) -> bool:
        """Store ``page`` (its logs, checkpoint, the block reached and the learned range) in one
        transaction; False if another process moved the store meanwhile (nothing stored)."""
        db = self._db
        rows = page.rows
        if page.unknown:
            ids = {topic0: self._new_type(topic0) for topic0 in page.unknown}
            rows = [(*row[:3], ids[row[3]], *row[4:]) if isinstance(row[3], bytes) else row for row in rows]
        with _transaction(db):
            if int(self._meta("synced_to")) != page.start - 1:
                return False
            whole = len(rows) - len(rows) % INSERT_ROWS
            db.executemany(_INSERT_MANY, (list(itertools.chain.from_iterable(rows[at:at + INSERT_ROWS]))
                                          for at in range(0, whole, INSERT_ROWS)))
            db.executemany(_INSERT_ONE, rows[whole:])
            if page.checkpoint is not None:
                db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?)", page.checkpoint)
                db.execute("DELETE FROM checkpoints WHERE block <= (SELECT block FROM checkpoints "
                           "ORDER BY block DESC LIMIT 1 OFFSET ?)", (CHECKPOINTS_KEPT,))
            db.execute("UPDATE meta SET value = ? WHERE key = 'synced_to'", (page.stop,))
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                           zip(("page_blocks", "page_ceiling", "page_ceiling_pages"), page.learned))
        return True

    def _rows(self, logs: list[_Log]) -> tuple[list[tuple], tuple[int, bytes] | None, set[bytes]]:
        """The rows of a page's logs, the checkpoint its last log gives, and the first topics of events
        outside the ABI (another version of the contract), which stand in their rows for an id
        until :meth:`_commit` registers them."""
        rows: list[tuple] = []
        append = rows.append
        type_of = self._hex_type_ids.get
        fromhex = bytes.fromhex
        unknown: set[bytes] = set()
        last = None
        for log in logs:
            if log.removed:
                continue
            topics = log.topics
            count = len(topics)
            event = type_of(topics[0]) if count else None
            if event is None and count:
                event = fromhex(topics[0][2:])
                unknown.add(event)
            append((int(log.blockNumber, 16), int(log.logIndex, 16), fromhex(log.transactionHash[2:]), event,
                    fromhex(topics[1][2:]) if count > 1 else None, fromhex(topics[2][2:]) if count > 2 else None,
                    fromhex(topics[3][2:]) if count > 3 else None, fromhex(log.data[2:])))
            last = log
        checkpoint = None if last is None else (rows[-1][0], fromhex(last.blockHash[2:]))
        return rows, checkpoint, unknown

    def _new_type(self, topic0: bytes) -> int:
        """An event outside the ABI (another version of the contract): kept, under its own id."""
        with _transaction(self._db):
            self._db.execute("INSERT OR IGNORE INTO event_types (topic0) VALUES (?)", (topic0,))
        (ident,) = self._db.execute("SELECT id FROM event_types WHERE topic0 = ?", (topic0,)).fetchone()
        self._type_ids[topic0] = ident
        self._hex_type_ids["0x" + topic0.hex()] = ident
        return ident

    # Queries -----------------------------------------------------------------

    def query(self, event: str, **fields: Any) -> list[EventLog]:
        """The stored ``event`` logs whose indexed ``fields`` have these values, oldest first."""
        return self.query_any([event], **fields)

    def values(self, event: str, names: Sequence[str], **fields: Any) -> list[tuple]:
        """The ``names`` fields of the stored ``event`` logs matching ``fields``, oldest first: a read of
        many logs that needs a few of their fields decodes only those, a column at a time."""
        kind = self.types[event]
        where, params = ["event = ?"], [self._type_ids[kind.topic0]]
        for field, value in fields.items():
            where.append(f"{kind.column(field)} = ?")
            params.append(kind.topic(field, value))
        sql = f"SELECT t1, t2, t3, data FROM logs WHERE {' AND '.join(where)} ORDER BY block, idx"  # noqa: S608
        with self._lock, self._guarded():
            rows = self._db.execute(sql, params).fetchall()
        if not rows:
            return []
        columns = tuple(zip(*rows))
        return list(zip(*(kind.values(name, *columns) for name in names)))

    def query_any(self, events: Sequence[str], **fields: Any) -> list[EventLog]:
        """The stored logs of any of ``events`` matching ``fields`` (indexed in each), in chain order."""
        types = [self.types[name] for name in events]
        clauses, params = [], []
        for event in types:
            where, values = ["event = ?"], [self._type_ids[event.topic0]]
            for field, value in fields.items():
                where.append(f"{event.column(field)} = ?")
                values.append(event.topic(field, value))
            clauses.append("(" + " AND ".join(where) + ")")
            params += values
        sql = ("SELECT block, idx, tx, event, t1, t2, t3, data FROM logs WHERE "
               + " OR ".join(clauses) + " ORDER BY block, idx")
        with self._lock, self._guarded():
            rows = self._db.execute(sql, params).fetchall()
        by_id = self._by_id
        return [by_id[event].decode(block, idx, tx, (t1, t2, t3), data)
                for block, idx, tx, event, t1, t2, t3, data in rows]

    def distinct(self, event: str, field: str, **fields: Any) -> list[bytes]:
        """The distinct topics of indexed ``field`` among ``event`` logs matching ``fields``, in order of first log."""
        kind = self.types[event]
        where, values = ["event = ?"], [self._type_ids[kind.topic0]]
        for name, value in fields.items():
            where.append(f"{kind.column(name)} = ?")
            values.append(kind.topic(name, value))
        column = kind.column(field)
        sql = (f"SELECT {column} FROM logs WHERE {' AND '.join(where)} GROUP BY {column} "  # noqa: S608
               "ORDER BY min(block * 100000 + idx)")
        with self._lock, self._guarded():
            return [bytes(row[0]) for row in self._db.execute(sql, values)]


@dataclass
class _Page:
    """One page of logs, fetched and converted, waiting to be stored."""

    start: int
    stop: int
    rows: list[tuple]
    checkpoint: tuple[int, bytes] | None
    unknown: set[bytes]
    blocks: int
    learned: tuple[int, int, int]
    """The paging state to store with it: the range, its ceiling, pages left before the ceiling lifts."""


class _Prefetch:
    """Iterates ``items`` in a worker thread, at most ``depth`` items ahead; an error there is raised
    here, in order. :meth:`close` stops the worker at its next item (it holds no lock, and a fetch it
    is waiting on is left to finish in the background)."""

    _END = object()

    def __init__(self, items: Iterator[Any], depth: int) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stopped = threading.Event()
        self._items = items
        self._thread = threading.Thread(target=self._run, name="event-store-fetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put((True, item)):
                    return
        except BaseException as error:  # noqa: BLE001 - handed to the reading thread, which raises it
            self._put((False, error))
            return
        self._put((True, self._END))

    def _put(self, entry: tuple[bool, Any]) -> bool:
        while not self._stopped.is_set():
            try:
                self._queue.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Any]:
        while True:
            ok, item = self._queue.get()
            if not ok:
                raise item
            if item is self._END:
                return
            yield item

    def close(self) -> None:
        self._stopped.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break


class _Guard:
    """Turn a damaged database met mid-use into one EventStoreError naming the file."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, traceback) -> bool:
        if isinstance(error, sqlite3.DatabaseError) and not isinstance(error, sqlite3.IntegrityError):
            raise self.store._damaged(error) from None
        return False


class _transaction:  # noqa: N801 - used as a context manager, like a function
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): a page lands whole or not at all."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, error, traceback) -> bool:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
        return False


def progress_printer(label: str = "events", stream: Any = None) -> Callable[[SyncProgress], None]:
    """A progress callback printing how far a long sync is (at least :data:`PROGRESS_BLOCKS` blocks)
    to ``stream`` (standard error as it is when a page lands), on a terminal only, rewriting one
    line at most twice a second and ending it when the sync reaches the head."""
    started = time.monotonic()
    shown = [0.0]

    def show(progress: SyncProgress) -> None:
        now = time.monotonic()
        out = stream if stream is not None else sys.stderr
        if progress.total < PROGRESS_BLOCKS or not out.isatty():
            return
        if now - shown[0] < 0.5 and progress.done < progress.total:
            return
        shown[0] = now
        end = "\r" if progress.done < progress.total else "\n"
        out.write(f"{label}: block {progress.done:,}/{progress.total:,} ({progress.done / progress.total:.0%}), "
                  f"{progress.logs:,} logs, {progress.page_blocks:,} blocks a page, {now - started:.0f}s{end}")
        out.flush()

    return show
