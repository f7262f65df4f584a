"""Client reads page eth_getLogs by block range and cache settled logs, re-reading only recent blocks."""

import pytest

from conftest import ONE_DAY
from offchain import contract_client
from offchain.chain import AccessClient


@pytest.fixture
def log_ranges(access, monkeypatch):
    """The (start, stop) block range of every eth_getLogs the clients send, with pages of 3 blocks."""
    monkeypatch.setattr(contract_client, "LOG_PAGE_BLOCKS", 3)
    monkeypatch.setattr(contract_client, "REORG_DEPTH", 2)
    provider = access.provider
    ranges = []
    real = type(provider).get_contract_logs

    def recorded(self, log_filter):
        ranges.append((log_filter.start_block, log_filter.stop_block))
        return real(self, log_filter)

    monkeypatch.setattr(type(provider), "get_contract_logs", recorded)
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

    # A second read fetches only the blocks that were not settled (the last REORG_DEPTH) and the new ones.
    log_ranges.clear()
    snapshot = chain.snapshot()
    access.grantAccess(record, researcher, chain.pending_timestamp + ONE_DAY, sender=patient)
    assert client.granted_users(record) == [doctor.address, researcher.address]
    assert log_ranges[0][0] == head - 2 + 1

    # A reorg of the recent blocks: the researcher's grant vanishes, and so does its log.
    chain.restore(snapshot)
    assert client.granted_users(record) == [doctor.address]
