"""The contract clients' public surface that other modules call, and the hook that hears of each transaction."""

import pytest
from conftest import role_members

from offchain.chain.access import HOLDERS_PER_CALL, AccessClient
from offchain.chain.roles import Role


def test_on_sent_hears_of_each_transaction_once_mined_with_its_method_and_arguments(access, record, hospital,
                                                                                   doctor, in_a_day):
    heard = []
    client = AccessClient(access, hospital, on_sent=heard.append)
    client.grant(record, [doctor.address], in_a_day, 1, [])
    client.revoke(record, doctor.address)
    assert heard == client.sent and len(heard) == 2
    assert heard[0].method == "multicall" and heard[1].method == "revokeAccess"
    assert heard[1].args == (record, doctor.address)
    assert all(sent.block > 0 and sent.gas_used > 0 for sent in heard)


def test_a_hook_that_stops_the_step_stops_it_after_its_transaction_landed(access, record, hospital, doctor, in_a_day):
    """What ``fl run --drop`` relies on: the message is on chain, and nothing after it is sent."""
    class Stop(Exception):
        pass

    def stop(sent):
        raise Stop(sent.method)

    client = AccessClient(access, hospital, on_sent=stop)
    with pytest.raises(Stop, match="multicall"):
        client.grant(record, [doctor.address], in_a_day, 1, [])
    assert access.checkAccess(doctor, record) and len(client.sent) == 1


def test_holders_of_answers_for_any_number_of_accounts(access, hospital, stranger):
    client = AccessClient(access, stranger)
    accounts = [stranger.address] * HOLDERS_PER_CALL + [hospital.address, stranger.address]
    assert client.holders_of(accounts, Role.DATA_OWNER) == [False] * HOLDERS_PER_CALL + [True, False]
    assert client.holders_of([], Role.DATA_OWNER) == []
    assert client.total_admins() == len(role_members(access, Role.ADMIN)) >= 1


def test_encryption_keys_of_reads_every_commitment_in_one_call(access, hospital, stranger):
    client = AccessClient(access, stranger)
    hospital_key, stranger_key = client.encryption_keys_of([hospital.address, stranger.address])
    assert hospital_key.version == client.encryption_key_version(hospital.address)
    assert (stranger_key.key_hash, stranger_key.kem_id, stranger_key.version) == (bytes(32), 0, 0)
