"""The key registry: a commitment (keccak256, HPKE suite, version) in storage, the key bytes in the event."""

import os

import ape
import pytest
from eth_utils import keccak

from offchain.crypto import MAX_WRAPPED_KEY_SIZE, KeySuite, RecipientKey

X25519, HYBRID = 0x0020, 0x647A
HYBRID_KEY = RecipientKey.generate(KeySuite.MLKEM768_X25519).public_key


def test_suite_ids_are_rfc9180s(access):
    assert (access.KEM_X25519(), access.KEM_MLKEM768_X25519()) == (X25519, HYBRID)
    assert (KeySuite.X25519.kem_id, KeySuite.MLKEM768_X25519.kem_id) == (X25519, HYBRID)


def test_a_hybrid_readers_wrapped_key_fits_a_key_share(access):
    assert MAX_WRAPPED_KEY_SIZE == KeySuite.MLKEM768_X25519.wrapped_key_size == 1183
    assert access.MAX_WRAPPED_KEY_SIZE() >= MAX_WRAPPED_KEY_SIZE


def test_members_publish_versioned_keys_of_either_kind(access, doctor):
    assert access.encryptionKeyOf(doctor) == (b"\x00" * 32, 0, 0)
    first = b"\x11" * 32
    tx = access.publishEncryptionKey(X25519, first, sender=doctor)
    assert tx.return_value == 1
    assert tx.events == [access.EncryptionKeyPublished(doctor, 1, X25519, first)]
    assert access.encryptionKeyOf(doctor) == (keccak(first), X25519, 1)
    # Rotation to a hybrid key: a new version, the commitment follows, the bytes are in the event.
    tx = access.publishEncryptionKey(HYBRID, HYBRID_KEY, sender=doctor)
    assert tx.events == [access.EncryptionKeyPublished(doctor, 2, HYBRID)]
    assert access.encryptionKeyOf(doctor) == (keccak(HYBRID_KEY), HYBRID, 2)
    logs = list(access.EncryptionKeyPublished.range(0, None, search_topics={"member": doctor, "version": 2}))
    assert [bytes(log.key) for log in logs] == [HYBRID_KEY]


def test_key_version_and_suite_survive_role_changes(access, admin, doctor):
    access.publishEncryptionKey(HYBRID, HYBRID_KEY, sender=doctor)
    access.grantRole(access.RESEARCHER_ROLE(), doctor, sender=admin)
    access.revokeRole(access.DOCTOR_ROLE(), doctor, sender=admin)
    assert access.encryptionKeyOf(doctor) == (keccak(HYBRID_KEY), HYBRID, 1)
    assert access.rolesOf(doctor) == 1 << 4


def test_key_publication_refusals(access, guardian, doctor, stranger):
    with ape.reverts(access.NotAMember, account=stranger):
        access.publishEncryptionKey(X25519, b"\x11" * 32, sender=stranger)
    with ape.reverts(access.InvalidEncryptionKey):
        access.publishEncryptionKey(X25519, b"\x00" * 32, sender=doctor)
    for suite in (0, 0x0010, 0x0041, 0xFFFF):
        with ape.reverts(access.UnsupportedKeySuite, suite=suite):
            access.publishEncryptionKey(suite, b"\x11" * 32, sender=doctor)
    for suite, key, expected in [
        (X25519, b"\x11" * 31, 32),
        (X25519, b"\x11" * 33, 32),
        (X25519, HYBRID_KEY, 32),
        (HYBRID, b"\x11" * 32, 1216),
        (HYBRID, HYBRID_KEY + b"\x00", 1216),
        (HYBRID, b"", 1216),
    ]:
        with ape.reverts(access.EncryptionKeyLength, suite=suite, length=len(key), expected=expected):
            access.publishEncryptionKey(suite, key, sender=doctor)
    access.pause(sender=guardian)
    with ape.reverts(access.EnforcedPause):
        access.publishEncryptionKey(X25519, b"\x11" * 32, sender=doctor)
    assert access.encryptionKeyOf(doctor) == (b"\x00" * 32, 0, 0)


def test_the_client_checks_the_bytes_against_the_commitment(access, doctor):
    from offchain.chain.access import AccessClient

    client = AccessClient(access, doctor)
    assert not client.encryption_key(doctor.address).published
    assert client.publish_encryption_key(HYBRID_KEY, KeySuite.MLKEM768_X25519) == 1
    key = client.encryption_key(doctor.address)
    assert (key.public_key, key.suite, key.version) == (HYBRID_KEY, KeySuite.MLKEM768_X25519, 1)
    x25519 = os.urandom(32)
    assert client.publish_encryption_key(x25519) == 2
    assert client.encryption_key(doctor.address).public_key == x25519
    assert client.encryption_key_version(doctor.address) == 2


def test_the_client_refuses_bytes_that_do_not_match_the_commitment(access, chain, doctor):
    """A node serving state that disagrees with the event (here: the stored hash overwritten on anvil)."""
    from offchain.chain.access import AccessClient
    from offchain.crypto import KeyWrapError

    client = AccessClient(access, doctor)
    key = os.urandom(32)
    client.publish_encryption_key(key)
    member_word = bytes(12) + bytes.fromhex(doctor.address[2:])
    slot = next(
        base for base in range(256)
        if bytes(chain.provider.get_storage(access.address, int.from_bytes(keccak(member_word + base.to_bytes(32, "big")), "big")))
        == keccak(key)
    )
    hash_slot = int.from_bytes(keccak(member_word + slot.to_bytes(32, "big")), "big")
    chain.provider.set_storage(access.address, hash_slot, keccak(os.urandom(32)))
    with pytest.raises(KeyWrapError, match="do not match the key registry's commitment"):
        client.encryption_key(doctor.address)
