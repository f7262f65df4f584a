import ape
import pytest

CID = bytes.fromhex("01551220") + bytes(range(32))


@pytest.fixture
def access(project, admin):
    return admin.deploy(project.MedicalAccess)


def test_runs_on_anvil(chain):
    assert chain.provider.name == "foundry"
    assert chain.provider.uri.startswith("http://127.0.0.1:")


def test_grant_and_check(access, hospital, doctor):
    record = access.registerRecord(CID, sender=hospital).return_value
    assert not access.checkAccess(doctor, record)
    tx = access.grantAccess(record, doctor, sender=hospital)
    assert access.checkAccess(doctor, record)
    assert tx.events == [access.AccessGranted(record, doctor, hospital)]


def test_stranger_cannot_grant(access, hospital, doctor, stranger):
    record = access.registerRecord(CID, sender=hospital).return_value
    with ape.reverts(access.NotRecordOwner, record=record, caller=stranger):
        access.grantAccess(record, doctor, sender=stranger)
    assert not access.checkAccess(doctor, record)
