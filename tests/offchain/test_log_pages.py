"""Client reads page eth_getLogs by block range and keep the contract's logs, reading only new blocks,
dropping back after a reorg, and (with a cache folder) sharing them with the next process."""

import pytest

from conftest import ONE_DAY
from offchain import contract_client
from offchain.chain import AccessClient


@pytest.fixture
def log_ranges(access, monkeypatch):
    """The (start, stop) block range of every eth_getLogs the clients send, with pages of 3 blocks."""
    monkeypatch.setenv("MEDSHARE_LOG_PAGE_BLOCKS", "3")
    ranges = []
    real = contract_client._get_logs

    def recorded(web3, address, start, stop):
        ranges.append((start, stop))
        return real(web3, address, start, stop)

    monkeypatch.setattr(contract_client, "_get_logs", recorded)
    return ranges


def test_reads_are_paged_cached_and_survive_a_short_reorg(access, chain, hospital, doctor, researcher, patient,
                                                          record, log_ranges):
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
    # Another block at the same height, with another hash: the cache drops back and reads it again.
    snapshot = chain.snapshot()  # a snapshot is used up by its restore
    access.grantAccess(record, researcher, chain.pending_timestamp + ONE_DAY, sender=patient)
    chain.restore(snapshot)
    chain.mine(1)
    log_ranges.clear()
    assert client.granted_users(record) == [doctor.address]
    assert log_ranges == [(head + 1, head + 1)]


def test_a_cache_folder_carries_the_logs_to_the_next_client(access, chain, hospital, doctor, researcher, patient,
                                                            record, log_ranges, tmp_path):
    start = chain.blocks.height
    access.grantAccess(record, doctor, chain.pending_timestamp + ONE_DAY, sender=hospital)
    chain.mine(5)
    first = AccessClient(access, hospital, from_block=start, cache_folder=tmp_path)
    assert first.granted_users(record) == [doctor.address]
    head = chain.blocks.height
    assert (tmp_path / "logs" / str(chain.chain_id) / f"{access.address.lower()}.json").is_file()

    # A new client (as a new process would) reads only the blocks added since.
    snapshot = chain.snapshot()
    access.grantAccess(record, researcher, chain.pending_timestamp + ONE_DAY, sender=patient)
    log_ranges.clear()
    second = AccessClient(access, doctor, from_block=start, cache_folder=tmp_path)
    assert second.granted_users(record) == [doctor.address, researcher.address]
    assert log_ranges == [(head + 1, head + 1)]

    # After a reorg under the saved cache, the next client drops the vanished block's logs.
    chain.restore(snapshot)
    chain.mine(2)
    log_ranges.clear()
    third = AccessClient(access, patient, from_block=start, cache_folder=tmp_path)
    assert third.granted_users(record) == [doctor.address]
    assert log_ranges == [(head + 1, head + 2)]

    # A cache of another chain or deployment (another start block) is not used.
    log_ranges.clear()
    assert AccessClient(access, patient, from_block=head, cache_folder=tmp_path).granted_users(record) == []
    assert log_ranges[0][0] == head
