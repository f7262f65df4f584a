import ape
from conftest import make_cid


def test_runs_on_anvil(chain):
    assert chain.provider.name == "foundry"
    assert chain.provider.uri.startswith("http://127.0.0.1:")


def test_grant_and_check(access, hospital, patient, doctor, in_a_day):
    record = access.registerRecord(make_cid(1), patient, sender=hospital).return_value
    assert not access.checkAccess(doctor, record)
    tx = access.grantAccess(record, doctor, in_a_day, sender=hospital)
    assert access.checkAccess(doctor, record)
    assert tx.events == [access.AccessGranted(record, doctor, hospital, in_a_day)]


def test_stranger_cannot_grant(access, record, doctor, stranger, in_a_day):
    with ape.reverts(access.NotOwnerOrPatient, record=record, caller=stranger):
        access.grantAccess(record, doctor, in_a_day, sender=stranger)
    assert not access.checkAccess(doctor, record)
