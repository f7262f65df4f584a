"""The embedded store under crash: a separate process killed (SIGKILL) at every step of add, pin, unpin and gc.

A forked child runs a fixed workload on a store (adds sharing blocks, pins, unpins, a gc that rewrites a
pack, more adds) with probes on every file-system step that matters for durability (``pwritev`` into a
pack, ``fsync`` of a file or a directory, ``replace``/``link``/``unlink``, and each SQL statement the
index runs but reads). The probes write each step to a trace file as it begins; at step K the child stops and the
test kills it with SIGKILL, for every K from the first step to the last.

After each kill:
- the store opens cleanly, and every CID the child was handed (and had not begun to unpin) reads back
  its exact bytes, is still pinned, and survives a gc; a new add works;
- the trace up to the kill obeys the ordering that makes the same guarantees hold after a power loss,
  which a SIGKILL alone does not show (the page cache survives it): a pack's bytes and its directory
  entry are fsynced before the index transaction that lists them commits; the index runs with
  ``synchronous=FULL``; a pin list is fsynced before it is renamed into place and its directory fsynced
  before the CID is handed out; an old pack is unlinked only after its kept blocks were written to a
  new pack, fsynced and listed.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import random
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from offchain.ipfs import CID, EmbeddedStore, StoreError

CHUNK = 262_144


def content(name: str) -> bytes:
    sizes = {"a": 2 * CHUNK + 11, "b": 5_000, "c": 1, "e": 0, "f": CHUNK + 1}
    if name == "e":  # a's bytes and one chunk more: shares a's leaves, so a's pack keeps live blocks after a goes
        return content("a") + random.Random("e").randbytes(CHUNK)
    return random.Random(name).randbytes(sizes[name])


# The workload: (operation, name). Versions: b is CIDv0 (dag-pb leaves), the others CIDv1 (raw leaves).
WORKLOAD = [
    ("add", "a"), ("add", "b"), ("add", "c"), ("add", "e"),
    ("unpin", "b"), ("unpin", "a"), ("gc", ""),  # b's pack goes whole; a's is rewritten (its leaves live on in e)
    ("add", "f"), ("pin", "c"), ("gc", ""),
]


class _Trace:
    """Appends one JSON line a step, unbuffered, so what was written survives a SIGKILL."""

    def __init__(self, path: Path, stop_at: int | None) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._stop_at = stop_at
        self.steps = 0

    def step(self, kind: str, *args: str) -> None:
        self.steps += 1
        self.note(kind, *args)
        if self.steps == self._stop_at:
            self.note("paused")
            time.sleep(600)  # the test kills us here

    def note(self, kind: str, *args: str) -> None:
        os.write(self._fd, (json.dumps([kind, *args]) + "\n").encode())


def _path_of(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


def _sql_step(trace: _Trace, sql: str) -> None:
    """Statements that change the index are steps; rows changed inside a transaction are noted only, as a kill
    between them and the commit is the same as one before the commit; reads are left out."""
    statement = " ".join(sql.split())
    verb = statement.split(" ", 1)[0].upper()
    if verb in ("INSERT", "DELETE", "UPDATE"):
        trace.note("sql", statement[:60])
    elif verb != "SELECT":
        trace.step("sql", statement)


def _install_probes(trace: _Trace) -> None:
    """Wrap the system calls the store makes durable steps with (in the child only)."""
    real = {name: getattr(os, name) for name in ("fsync", "pwritev", "replace", "link", "unlink")}
    real_connect = sqlite3.connect

    def fsync(fd):
        trace.step("fsync", _path_of(fd))
        return real["fsync"](fd)

    def pwritev(fd, buffers, offset, *rest):
        trace.step("write", _path_of(fd))
        return real["pwritev"](fd, buffers, offset, *rest)

    def replace(source, target, **kwargs):
        trace.step("replace", str(source), str(target))
        return real["replace"](source, target, **kwargs)

    def link(source, target, **kwargs):
        trace.step("link", str(source), str(target))
        return real["link"](source, target, **kwargs)

    def unlink(path, **kwargs):
        (trace.step if os.path.lexists(path) else trace.note)("unlink", str(path))
        return real["unlink"](path, **kwargs)

    def connect(*args, **kwargs):
        connection = real_connect(*args, **kwargs)
        connection.set_trace_callback(lambda sql: _sql_step(trace, sql))
        return connection

    os.fsync, os.pwritev, os.replace, os.link, os.unlink = fsync, pwritev, replace, link, unlink
    sqlite3.connect = connect


def run_workload(root: str, trace_path: str, stop_at: int | None) -> None:
    """The child: the workload with probes, noting when each operation starts and what it returned."""
    trace = _Trace(Path(trace_path), stop_at)
    _install_probes(trace)
    store = EmbeddedStore(Path(root))
    cids: dict[str, CID] = {}
    for operation, name in WORKLOAD:
        trace.note("start", operation, name)
        if operation == "add":
            cids[name] = store.add(io.BytesIO(content(name)), cid_version=0 if name == "b" else 1)
            trace.note("returned", operation, name, str(cids[name]))
        elif operation == "gc":
            store.gc()
            trace.note("returned", operation, name)
        else:
            getattr(store, operation)(cids[name])
            trace.note("returned", operation, name, str(cids[name]))
    trace.note("done", str(trace.steps))


def _read_trace(path: Path) -> list[list[str]]:
    """The complete lines: polled while the child appends, the last one may be caught half written."""
    complete = path.read_text().rpartition("\n")[0]
    return [json.loads(line) for line in complete.splitlines()]


def _run_child(root: Path, trace: Path, stop_at: int | None) -> list[list[str]]:
    """Run the workload in a forked process; with ``stop_at``, SIGKILL it as it reaches that step."""
    trace.unlink(missing_ok=True)
    child = multiprocessing.get_context("fork").Process(target=run_workload, args=(str(root), str(trace), stop_at))
    child.start()
    deadline = time.monotonic() + 120
    while True:
        events = _read_trace(trace) if trace.exists() else []
        if stop_at is not None and events and events[-1] == ["paused"]:
            os.kill(child.pid, signal.SIGKILL)
            break
        if not child.is_alive():
            break
        assert time.monotonic() < deadline, "the child neither paused nor finished"
        time.sleep(0.005)
    child.join()
    if stop_at is None:
        assert child.exitcode == 0
    else:
        assert child.exitcode == -signal.SIGKILL
    return _read_trace(trace)


def durability_violations(events: list[list[str]]) -> list[str]:
    """What in the trace would lose a returned CID, or the store's consistency, at a power loss there."""
    problems = []
    dirty: set[str] = set()  # packs written since their last fsync
    unnamed: set[str] = set()  # packs created since their directory's last fsync
    written_since_listing = False
    synced: set[str] = set()  # files fsynced since their last write
    pins_dir_pending = False
    full_sync = False
    for event in events:
        kind, args = event[0], event[1:]
        if kind == "write" and args[0].endswith(".pack"):
            dirty.add(args[0])
            unnamed.add(args[0])
            written_since_listing = True
        elif kind == "fsync":
            dirty.discard(args[0])
            synced.add(args[0])
            unnamed = {pack for pack in unnamed if os.path.dirname(pack) != args[0]}
            if pins_dir_pending and args[0] == pins_dir_pending:
                pins_dir_pending = False
        elif kind == "sql" and args[0].upper().startswith("PRAGMA SYNCHRONOUS"):
            full_sync = args[0].split("=")[-1].strip().upper() in ("FULL", "2", "EXTRA", "3")
        elif kind == "sql" and args[0].upper() == "COMMIT":
            if not full_sync:
                problems.append(f"{event}: the index commits without synchronous=FULL")
            if dirty:
                problems.append(f"{event}: listed while packs {sorted(dirty)} hold bytes not fsynced")
            if unnamed:
                problems.append(f"{event}: listed while the directory entries of {sorted(unnamed)} are not fsynced")
            written_since_listing = False
        elif kind in ("replace", "link") and os.path.basename(args[1]) == "pins":
            if args[0] not in synced:
                problems.append(f"{event}: a pin list renamed into place before it was fsynced")
            pins_dir_pending = os.path.dirname(args[1])
        elif kind == "unlink" and args[0].endswith(".pack"):
            if dirty or written_since_listing:
                problems.append(f"{event}: an old pack unlinked before the blocks it keeps are durable and listed")
        elif kind == "returned" and pins_dir_pending:
            problems.append(f"{event}: handed out before the pin list's directory was fsynced")
    return problems


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> tuple[list[list[str]], int]:
    """One uninterrupted run of the workload: its trace and how many steps it has."""
    folder = tmp_path_factory.mktemp("full-run")
    events = _run_child(folder / "store", folder / "trace", None)
    assert events[-1][0] == "done"
    return events, int(events[-1][1])


def test_the_workload_reaches_every_kind_of_step(full_run):
    events, steps = full_run
    kinds = {event[0] for event in events}
    assert {"write", "fsync", "sql", "unlink", "returned"} <= kinds
    assert any(event[0] == "unlink" and event[1].endswith(".pack") for event in events), "gc rewrote no pack"
    assert 20 < steps < 400


def test_every_step_orders_writes_so_a_power_loss_loses_nothing_returned(full_run):
    events, _ = full_run
    assert durability_violations(events) == []


def test_a_store_killed_at_any_step_opens_cleanly_and_keeps_every_cid_it_returned(full_run, tmp_path):
    _, steps = full_run
    for stop_at in range(1, steps + 1):
        root = tmp_path / f"killed-at-{stop_at}"
        events = _run_child(root, tmp_path / "trace", stop_at)
        assert durability_violations(events) == [], f"killed at step {stop_at}"
        kept: dict[str, CID] = {}
        for event in events:
            if event[0] == "returned" and event[1] in ("add", "pin"):
                kept[event[2]] = CID.parse(event[3])
            elif event[0] == "start" and event[1] == "unpin":
                kept.pop(event[2], None)  # may or may not be pinned now
        store = EmbeddedStore(root)
        pinned = set(store.pins())
        for name, cid in kept.items():
            assert cid in pinned, f"killed at step {stop_at}: {name} lost its pin"
            assert _cat(store, cid) == content(name), f"killed at step {stop_at}: {name} unreadable"
        store.gc()
        for name, cid in kept.items():
            assert _cat(store, cid) == content(name), f"killed at step {stop_at}: gc lost {name}"
        fresh = store.add(io.BytesIO(b"after the crash"))
        assert _cat(EmbeddedStore(root), fresh) == b"after the crash"


def _cat(store: EmbeddedStore, cid: CID) -> bytes:
    out = io.BytesIO()
    store.cat(cid, out)
    return out.getvalue()


@pytest.mark.parametrize(
    "damage",
    [
        lambda pins: pins.unlink(),
        lambda pins: pins.write_bytes(b""),
        lambda pins: pins.write_bytes(b"\xff\xfe not text"),
        lambda pins: pins.chmod(0),
    ],
    ids=["lost", "empty", "not-text", "unreadable"],
)
def test_gc_refuses_to_run_without_a_readable_pin_list_and_deletes_nothing(tmp_path, damage):
    store = EmbeddedStore(tmp_path / "store")
    data = random.Random(3).randbytes(2 * CHUNK + 1)
    cid = store.add(io.BytesIO(data))
    pins = store.root / "pins"
    damage(pins)
    if os.access(pins, os.R_OK) and pins.exists() and pins.stat().st_mode & 0o444 == 0:
        pytest.skip("running as root: a mode-0 file stays readable")
    for attempt in (store.gc, lambda: store.add(io.BytesIO(b"another file")), lambda: store.unpin(cid)):
        with pytest.raises(StoreError, match=f"the pin list {pins}"):
            attempt()
    assert _cat(store, cid) == data


def test_a_new_store_starts_with_an_empty_pin_list_that_gc_accepts(tmp_path):
    store = EmbeddedStore(tmp_path / "store")
    assert (store.root / "pins").read_text() == "medshare-pins 1\n"
    assert store.pins() == []
    assert store.gc() == 0
    cid = store.add(io.BytesIO(b"kept"))
    store.unpin(cid)
    assert store.gc() == 1  # an empty list that says so is not a lost one
    assert (store.root / "pins").read_text() == "medshare-pins 1\n"


def test_a_pin_list_written_by_an_earlier_version_still_reads(tmp_path):
    store = EmbeddedStore(tmp_path / "store")
    cid = store.add(io.BytesIO(b"legacy"))
    (store.root / "pins").write_text(f"{cid}\n")  # no header line
    assert store.pins() == [cid]
    assert store.gc() == 0
