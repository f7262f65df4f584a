"""The indexed event store: reads are paged and incremental, survive reorgs and crashes, adapt to a
provider's range cap, carry to the next process on disk, and a damaged database is one clear error."""

import os
import re
import sqlite3
import subprocess
import sys

import pytest
from web3 import HTTPProvider, Web3

from conftest import ONE_DAY, make_cid
from offchain.chain import events as event_store
from offchain.chain.access import AccessClient
from offchain.errors import InvalidInput
from offchain.chain.events import EventStore, EventStoreError
from offchain.chain.rpcproxy import LogRangeProxy


@pytest.fixture
def log_ranges(monkeypatch):
    """The (start, stop) block range of every eth_getLogs the stores send (a spy on the real calls)."""
    ranges = []
    real = event_store._rpc

    def recorded(web3, method, params):
        if method == "eth_getLogs":
            ranges.append((int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)))
        return real(web3, method, params)

    monkeypatch.setattr(event_store, "_rpc", recorded)
    return ranges


def test_reads_are_paged_incremental_and_survive_a_short_reorg(access, chain, hospital, doctor, researcher,
                                                                patient, record, log_ranges, monkeypatch):
    monkeypatch.setenv("MEDSHARE_LOG_PAGE_BLOCKS", "3")
    start = chain.blocks.height
    client = AccessClient(access, hospital, from_block=start)
    access.grantAccess(record, doctor, chain.pending_timestamp + ONE_DAY, sender=hospital)
    chain.mine(7)
    assert client.granted_users(record) == [doctor.address]
    head = chain.blocks.height
    assert log_ranges and all(stop - begin + 1 <= 3 for begin, stop in log_ranges)
    assert log_ranges[0][0] == start and log_ranges[-1][1] == head  # every block read, none twice
    assert sum(stop - begin + 1 for begin, stop in log_ranges) == head - start + 1

    # A second read fetches only the new blocks; a read with no new block fetches nothing.
    log_ranges.clear()
    assert client.granted_users(record) == [doctor.address] and log_ranges == []
    snapshot = chain.snapshot()
    access.grantAccess(record, researcher, chain.pending_timestamp + ONE_DAY, sender=patient)
    assert client.granted_users(record) == [doctor.address, researcher.address]
    assert log_ranges == [(head + 1, head + 1)]

    # A reorg of the last block: the researcher's grant vanishes, and so does its log.
    chain.restore(snapshot)
    assert client.granted_users(record) == [doctor.address]
    # Another block at the same height, with another hash: the store drops back and reads it again.
    snapshot = chain.snapshot()
    access.grantAccess(record, researcher, chain.pending_timestamp + ONE_DAY, sender=patient)
    assert client.granted_users(record) == [doctor.address, researcher.address]
    chain.restore(snapshot)
    chain.mine(1)
    log_ranges.clear()
    assert client.granted_users(record) == [doctor.address]
    assert log_ranges == [(head + 1, head + 1)]


def test_a_store_on_disk_carries_the_logs_to_the_next_client(access, chain, hospital, doctor, researcher, patient,
                                                             record, log_ranges, tmp_path):
    start = chain.blocks.height
    access.grantAccess(record, doctor, chain.pending_timestamp + ONE_DAY, sender=hospital)
    chain.mine(5)
    first = AccessClient(access, hospital, from_block=start, cache_folder=tmp_path)
    assert first.granted_users(record) == [doctor.address]
    head = chain.blocks.height
    path = tmp_path / "events" / str(chain.chain_id) / f"{access.address.lower()}.sqlite"
    assert path.is_file()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)

    # A new client (as a new process would) reads only the blocks added since.
    snapshot = chain.snapshot()
    access.grantAccess(record, researcher, chain.pending_timestamp + ONE_DAY, sender=patient)
    log_ranges.clear()
    second = AccessClient(access, doctor, from_block=start, cache_folder=tmp_path)
    assert second.granted_users(record) == [doctor.address, researcher.address]
    assert log_ranges == [(head + 1, head + 1)]

    # After a reorg under the saved store, the next client drops the vanished block's logs.
    chain.restore(snapshot)
    chain.mine(2)
    log_ranges.clear()
    third = AccessClient(access, patient, from_block=start, cache_folder=tmp_path)
    assert third.granted_users(record) == [doctor.address]
    assert log_ranges and log_ranges[0][0] == head + 1 and log_ranges[-1][1] == head + 2

    # A store of another deployment (another start block) is not used: it starts over.
    log_ranges.clear()
    assert AccessClient(access, patient, from_block=head, cache_folder=tmp_path).granted_users(record) == []
    assert log_ranges[0][0] == head


def test_a_sync_cut_short_resumes_at_its_last_committed_page(access, chain, hospital, doctor, record, log_ranges,
                                                            tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSHARE_LOG_PAGE_BLOCKS", "4")
    start = chain.blocks.height
    for _ in range(6):
        access.grantAccess(record, doctor, chain.pending_timestamp + ONE_DAY, sender=hospital)
        chain.mine(3)
    head = chain.blocks.height
    client = AccessClient(access, hospital, from_block=start, cache_folder=tmp_path)
    pages = []

    def crash(progress):
        pages.append(progress)
        if len(pages) == 2:
            raise KeyboardInterrupt  # as a Ctrl-C between two pages

    client.events.progress = crash
    with pytest.raises(KeyboardInterrupt):
        client.sync_events()
    reached = client.events.synced_to
    assert start < reached < head
    stored = client.events.count()

    log_ranges.clear()
    again = AccessClient(access, hospital, from_block=start, cache_folder=tmp_path)
    assert again.events.count() == stored  # the committed pages survived the crash
    grants = again.logs("AccessGranted", record=record)
    assert len(grants) == 6
    # Blocks up to the last checkpoint are never read again.
    assert log_ranges[0][0] <= reached + 1 and log_ranges[0][0] > start
    assert log_ranges[-1][1] == head


def test_pages_adapt_to_a_provider_refusing_more_than_10_blocks(access, chain, hospital, doctor, record, tmp_path):
    start = chain.blocks.height
    for _ in range(5):
        access.grantAccess(record, doctor, chain.pending_timestamp + ONE_DAY, sender=hospital)
        chain.mine(40)
    head = chain.blocks.height
    upstream = chain.provider.web3.provider.endpoint_uri
    with LogRangeProxy(upstream, max_log_blocks=10) as proxy:
        store = EventStore(tmp_path / "store.sqlite", access.address, start, access.contract_type.events,
                           page_blocks=1000)
        seen = []
        store.progress = seen.append
        store.sync(Web3(HTTPProvider(proxy.url)))
        assert len(store.query("AccessGranted", record=record)) == 5
        assert store.synced_to == head
        assert proxy.widest_served == 10 or proxy.widest_served == 8
        assert 1 <= proxy.refused <= 4  # it learned the cap, rather than hitting it page after page
        assert seen[-1].done == seen[-1].total == head - start + 1
        # The learned range carries to the next sync.
        chain.mine(30)
        refused = proxy.refused
        store.sync(Web3(HTTPProvider(proxy.url)))
        assert proxy.refused == refused


def test_a_provider_refusing_every_page_is_one_clear_error_and_loses_nothing(access, chain, hospital, doctor,
                                                                              record, tmp_path):
    start = chain.blocks.height
    access.grantAccess(record, doctor, chain.pending_timestamp + ONE_DAY, sender=hospital)
    chain.mine(40)  # many pages: the pages are fetched by the sync's worker thread
    upstream = chain.provider.web3.provider.endpoint_uri
    store = EventStore(tmp_path / "store.sqlite", access.address, start, access.contract_type.events)
    with LogRangeProxy(upstream, max_log_blocks=0) as proxy:
        with pytest.raises(event_store.LogQueryRefused, match=f"block {start} alone: block range is too wide"):
            store.sync(Web3(HTTPProvider(proxy.url)))
        assert proxy.log_ranges[-1] == (start, start)  # halved down to one block before giving up
    assert store.synced_to == start - 1 and store.count() == 0
    store.sync(chain.provider.web3)  # the same store, through a provider that serves it
    assert [log.grantee for log in store.query("AccessGranted", record=record)] == [doctor.address]


def test_the_proxy_runs_on_its_own_with_max_range(access, chain, hospital, doctor, record, tmp_path):
    start = chain.blocks.height
    access.grantAccess(record, doctor, chain.pending_timestamp + ONE_DAY, sender=hospital)
    chain.mine(25)
    upstream = chain.provider.web3.provider.endpoint_uri
    proxy = subprocess.Popen([sys.executable, "-m", "offchain.chain.rpcproxy", upstream, "--max-range", "10"],
                             stdout=subprocess.PIPE, text=True)
    try:
        url = proxy.stdout.readline().strip()
        web3 = Web3(HTTPProvider(url))
        wide = web3.provider.make_request("eth_getLogs", [{"fromBlock": hex(start), "toBlock": hex(start + 10)}])
        assert "too wide" in wide["error"]["message"]
        store = EventStore(None, access.address, start, access.contract_type.events)
        store.sync(web3)
        assert [log.grantee for log in store.query("AccessGranted", record=record)] == [doctor.address]
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)
    bad = subprocess.run([sys.executable, "-m", "offchain.chain.rpcproxy", upstream, "--max-range", "0"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--max-range must be at least 1" in bad.stderr


def _terminal():
    """A real pseudo-terminal: (its file, a function returning everything written to it once closed)."""
    master, slave = os.openpty()
    terminal = os.fdopen(slave, "w")

    def written() -> str:
        terminal.close()
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(master)
        return b"".join(chunks).decode()

    return terminal, written


def test_a_long_sync_shows_how_far_it_is_on_a_terminal(access, chain, hospital, doctor, record, tmp_path,
                                                       monkeypatch):
    start = chain.blocks.height
    access.grantAccess(record, doctor, chain.pending_timestamp + ONE_DAY, sender=hospital)
    chain.mine(event_store.PROGRESS_BLOCKS + 500)
    total = chain.blocks.height - start + 1
    terminal, written = _terminal()
    monkeypatch.setattr(sys, "stderr", terminal)  # the client's progress goes to standard error, a terminal here
    client = AccessClient(access, hospital, from_block=start, cache_folder=tmp_path)
    pages = []
    printer = client.events.progress
    client.events.progress = lambda progress: (pages.append(progress), printer(progress))
    assert client.granted_users(record) == [doctor.address]
    output = written()
    assert len(pages) > 2  # pages of up to 1,000 blocks, starting small
    # One line, rewritten in place (\r), ended once at the head; each frame says how far the sync is.
    assert output.endswith("\n") and output.count("\n") == 1 and output.count("\r") >= 2
    frames = [frame.strip() for frame in output.split("\r") if frame.strip()]
    shown = [re.fullmatch(rf"events of {access.address[:10]}: block ([\d,]+)/([\d,]+) \((\d+)%\), ([\d,]+) logs, "
                          r"([\d,]+) blocks a page, \d+s", frame) for frame in frames]
    assert all(shown), frames
    done = [int(match[1].replace(",", "")) for match in shown]
    assert all(int(match[2].replace(",", "")) == total for match in shown)
    assert done[0] == pages[0].done < total and done == sorted(done) and done[-1] == total
    assert [int(match[3]) for match in shown][-1] == 100 and int(shown[0][3]) < 100
    assert int(shown[-1][4].replace(",", "")) == client.events.count()

    # A sync too short to need it, or one not on a terminal (a pipe): nothing is written.
    terminal, written = _terminal()
    client.events.progress = event_store.progress_printer("events", terminal)
    chain.mine(event_store.PROGRESS_BLOCKS - 10)
    client.sync_events()
    assert written() == ""
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as pipe:
        store = EventStore(tmp_path / "piped.sqlite", access.address, start, access.contract_type.events)
        store.progress = event_store.progress_printer("events", pipe)
        store.sync(chain.provider.web3)
        assert store.synced_to == chain.blocks.height
    with os.fdopen(read_end) as piped:
        assert piped.read() == ""


def test_stored_logs_decode_as_ape_decodes_them(access, chain, hospital, doctor, patient, record, researcher):
    start = chain.blocks.height
    access.grantAccess(record, doctor, chain.pending_timestamp + ONE_DAY, sender=hospital)
    access.setConsent(record, researcher, chain.pending_timestamp + ONE_DAY, sender=patient)
    client = AccessClient(access, hospital, from_block=start - 5)
    ours = client.logs("AccessGranted", record=record)
    theirs = list(access.AccessGranted.range(start - 5, chain.blocks.height + 1))
    theirs = [log for log in theirs if log.event_arguments["record"] == record]
    assert [log.event_arguments for log in ours] == [dict(log.event_arguments) for log in theirs]
    assert [(log.block_number, log.log_index, log.transaction_hash) for log in ours] == \
        [(log.block_number, log.log_index, str(log.transaction_hash)) for log in theirs]
    trail = client.audit_trail(record)
    assert [entry.event for entry in trail][-2:] == ["AccessGranted", "ConsentSet"]


@pytest.mark.parametrize("damage", [b"hello", b"SQLite format 3\x00" + b"\xff" * 200])
def test_a_damaged_store_is_one_clear_error_and_can_be_rebuilt(access, chain, hospital, doctor, record, tmp_path,
                                                               damage):
    start = chain.blocks.height
    access.grantAccess(record, doctor, chain.pending_timestamp + ONE_DAY, sender=hospital)
    AccessClient(access, hospital, from_block=start, cache_folder=tmp_path).granted_users(record)
    path = tmp_path / "events" / str(chain.chain_id) / f"{access.address.lower()}.sqlite"
    for extra in path.parent.glob(path.name + "-*"):
        extra.unlink()
    path.write_bytes(damage)
    with pytest.raises(EventStoreError) as refused:
        AccessClient(access, hospital, from_block=start, cache_folder=tmp_path).granted_users(record)
    message = str(refused.value)
    assert "\n" not in message and str(path) in message and "damaged" in message
    path.unlink()
    assert AccessClient(access, hospital, from_block=start, cache_folder=tmp_path).granted_users(record) \
        == [doctor.address]


def test_queries_use_indexes_not_scans(access, record, hospital):
    client = AccessClient(access, hospital)
    client.sync_events()
    db = client.events._db
    kind = client.events.types["AccessGranted"]
    plan = " ".join(row[-1] for row in db.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM logs WHERE (event = ? AND t1 = ?) ORDER BY block, idx",
        (1, kind.topic("record", record))))
    assert "USING INDEX logs_t1" in plan or "USING COVERING INDEX logs_t1" in plan
    assert "SCAN logs" not in plan


def test_page_setting_is_checked(monkeypatch):
    for bad in ("abc", "0", "-5"):
        monkeypatch.setenv("MEDSHARE_LOG_PAGE_BLOCKS", bad)
        with pytest.raises(InvalidInput, match="MEDSHARE_LOG_PAGE_BLOCKS"):
            event_store.page_blocks_setting()
    monkeypatch.setenv("MEDSHARE_LOG_PAGE_BLOCKS", "10")
    assert event_store.page_blocks_setting() == 10
    assert make_cid(1)


def test_values_are_the_fields_the_logs_carry(access, chain, hospital, doctor, patient, record):
    access.grantAccess(record, doctor, chain.pending_timestamp + ONE_DAY, sender=hospital)
    client = AccessClient(access, hospital)
    client.sync_events()
    store = client.events
    reads = (("RecordRegistered", ("cid", "patient", "record", "owner"), {"owner": hospital.address}),
             ("AccessGranted", ("expiry", "grantee", "record"), {"record": record}))
    for event, names, fields in reads:
        logs = store.query(event, **fields)
        assert logs
        assert store.values(event, names, **fields) == [tuple(log.event_arguments[name] for name in names)
                                                        for log in logs]
    assert store.values("RecordRegistered", ("cid",), owner=doctor.address) == []
    with pytest.raises(ValueError, match="no field"):
        store.values("RecordRegistered", ("nonsense",), owner=hospital.address)
