"""Break-glass access and the on-chain read log (the key registry: test_access_key_registry.py)."""

import ape
import pytest

from conftest import make_cid

REASON = b"\x42" * 32
HOUR = 3600


@pytest.fixture
def max_duration(access):
    return access.MAX_EMERGENCY_DURATION()


def test_break_glass_opens_short_logged_access(access, chain, medic, patient, record):
    tx = access.openEmergencyAccess(record, REASON, HOUR, sender=medic)
    expiry = tx.timestamp + HOUR
    assert tx.return_value == expiry
    assert tx.events == [access.EmergencyAccessOpened(record, medic, patient, REASON, expiry, 1)]
    assert access.grantOf(record, medic) == (0, 0, expiry)
    assert access.checkAccess(medic, record)
    chain.mine(timestamp=expiry)
    assert not access.checkAccess(medic, record)


def test_break_glass_duration_is_capped(access, medic, record, max_duration):
    assert max_duration == 12 * HOUR
    for duration in (0, max_duration + 1):
        with ape.reverts(access.EmergencyDurationOutOfRange, duration=duration, max=max_duration):
            access.openEmergencyAccess(record, REASON, duration, sender=medic)
    access.openEmergencyAccess(record, REASON, max_duration, sender=medic)


def test_break_glass_needs_the_role_and_a_reason(access, doctor, medic, record):
    with ape.reverts(access.AccessControlUnauthorizedAccount, account=doctor, neededRole=access.EMERGENCY_ROLE()):
        access.openEmergencyAccess(record, REASON, HOUR, sender=doctor)
    with ape.reverts(access.EmptyEmergencyReason):
        access.openEmergencyAccess(record, b"\x00" * 32, HOUR, sender=medic)


@pytest.mark.parametrize("closer", ["patient", "hospital", "medic"])
def test_patient_owner_or_opener_closes_break_glass(access, request, medic, record, closer):
    closed_by = request.getfixturevalue(closer)
    access.openEmergencyAccess(record, REASON, HOUR, sender=medic)
    tx = access.closeEmergencyAccess(record, medic, sender=closed_by)
    assert tx.events == [access.EmergencyAccessClosed(record, medic, closed_by)]
    assert not access.checkAccess(medic, record)
    with ape.reverts(access.NoEmergencyAccess, record=record, user=medic):
        access.closeEmergencyAccess(record, medic, sender=closed_by)


def test_others_cannot_close_break_glass(access, doctor, other_patient, medic, record):
    access.openEmergencyAccess(record, REASON, HOUR, sender=medic)
    for caller in (doctor, other_patient):
        with ape.reverts(access.NotOwnerOrPatient, record=record, caller=caller):
            access.closeEmergencyAccess(record, medic, sender=caller)
    assert access.checkAccess(medic, record)


def test_break_glass_ends_with_the_emergency_role(access, admin, medic, record):
    access.openEmergencyAccess(record, REASON, HOUR, sender=medic)
    access.revokeRole(access.EMERGENCY_ROLE(), medic, sender=admin)
    assert not access.checkAccess(medic, record)
    access.grantRole(access.EMERGENCY_ROLE(), medic, sender=admin)
    assert not access.checkAccess(medic, record)


def test_expired_or_voided_break_glass_cannot_be_closed(access, chain, admin, medic, patient, record):
    expiry = access.openEmergencyAccess(record, REASON, HOUR, sender=medic).return_value
    chain.mine(timestamp=expiry)
    with ape.reverts(access.NoEmergencyAccess, record=record, user=medic):
        access.closeEmergencyAccess(record, medic, sender=patient)
    access.openEmergencyAccess(record, REASON, HOUR, sender=medic)
    access.revokeRole(access.EMERGENCY_ROLE(), medic, sender=admin)
    with ape.reverts(access.NoEmergencyAccess, record=record, user=medic):
        access.closeEmergencyAccess(record, medic, sender=patient)


def test_pause_stops_opening_break_glass_but_not_closing_it(access, guardian, medic, patient, record):
    access.openEmergencyAccess(record, REASON, HOUR, sender=medic)
    access.pause(sender=guardian)
    assert not access.checkAccess(medic, record)
    with ape.reverts(access.EnforcedPause):
        access.openEmergencyAccess(record, REASON, HOUR, sender=medic)
    access.unpause(sender=guardian)
    assert access.checkAccess(medic, record)
    access.pause(sender=guardian)
    access.closeEmergencyAccess(record, medic, sender=patient)
    access.unpause(sender=guardian)
    assert not access.checkAccess(medic, record)


def test_break_glass_and_a_grant_are_independent(access, admin, hospital, medic, record, in_a_day):
    access.grantRole(access.DOCTOR_ROLE(), medic, sender=admin)
    access.grantAccess(record, medic, in_a_day, sender=hospital)
    access.openEmergencyAccess(record, REASON, HOUR, sender=medic)
    access.closeEmergencyAccess(record, medic, sender=medic)
    assert access.checkAccess(medic, record), "closing break-glass leaves the grant"
    access.openEmergencyAccess(record, REASON, HOUR, sender=medic)
    access.revokeAccess(record, medic, sender=hospital)
    assert access.checkAccess(medic, record), "revoking the grant leaves break-glass open"


def test_a_read_is_logged_with_who_what_when(access, hospital, doctor, medic, record, in_a_day):
    access.grantAccess(record, doctor, in_a_day, sender=hospital)
    tx = access.logAccess(record, sender=doctor)
    assert tx.return_value == 1
    assert tx.events == [access.AccessLogged(record, doctor, 1, tx.timestamp)]
    access.rotateRecord(record, make_cid(2), sender=hospital)
    tx = access.logAccess(record, sender=doctor)
    assert tx.events == [access.AccessLogged(record, doctor, 2, tx.timestamp)]
    access.openEmergencyAccess(record, REASON, HOUR, sender=medic)
    tx = access.logAccess(record, sender=medic)
    assert tx.events == [access.AccessLogged(record, medic, 2, tx.timestamp)]


def test_a_read_without_access_reverts(access, doctor, stranger, record):
    for reader in (doctor, stranger):
        with ape.reverts(access.AccessDenied, record=record, user=reader):
            access.logAccess(record, sender=reader)


def test_history_is_rebuilt_from_logs(access, chain, hospital, patient, doctor, researcher, record, in_a_day):
    """Every policy change and read of a record shows up in its event log, in order."""
    access.grantAccess(record, doctor, in_a_day, sender=hospital)
    access.grantAccess(record, researcher, in_a_day, sender=hospital)
    access.setConsent(record, researcher, in_a_day, sender=patient)
    access.logAccess(record, sender=doctor)
    access.revokeAccess(record, doctor, sender=patient)
    kinds = [
        access.RecordRegistered,
        access.AccessGranted,
        access.ConsentSet,
        access.AccessLogged,
        access.AccessRevoked,
    ]
    history = sorted(
        (log for kind in kinds for log in kind.range(chain.blocks.height + 1, search_topics={"record": record})),
        key=lambda log: (log.block_number, log.log_index),
    )
    assert [log.event_name for log in history] == [
        "RecordRegistered",
        "AccessGranted",
        "AccessGranted",
        "ConsentSet",
        "AccessLogged",
        "AccessRevoked",
    ]
