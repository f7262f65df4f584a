"""Our X25519 key wraps against an independent HPKE implementation (PyPI ``pyhpke``).

pyhpke implements RFC 9180 on its own (its own key schedule and labels); it
has no MLKEM768-X25519, so the hybrid suite is checked against
draft-ietf-hpke-pq's vectors instead (test_hpke_vectors.py).
"""

import pytest
from pyhpke import AEADId, CipherSuite, KDFId, KEMId

from offchain.crypto import KeySuite, KeyWrapError, RecipientKey, new_data_key, unwrap_data_key, wrap_data_key

RECORD_ID = bytes.fromhex("5e" * 32)
RECORD_VERSION = 7
KEY_VERSION = 4
HEADER = 15
PYHPKE = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.AES256_GCM)


def _info(header: bytes, public_key: bytes, record_version: int = RECORD_VERSION) -> bytes:
    """``info`` as README documents it."""
    return b"MedShare key wrap v2" + header + public_key + RECORD_ID + record_version.to_bytes(32, "big")


@pytest.fixture(scope="module")
def reader() -> RecipientKey:
    return RecipientKey.generate(KeySuite.X25519)


def test_pyhpke_opens_a_key_we_wrapped(reader):
    data_key = new_data_key()
    wrapped = wrap_data_key(data_key, reader.public_key, KEY_VERSION, RECORD_ID, RECORD_VERSION)
    header, enc, ciphertext = wrapped[:HEADER], wrapped[HEADER : HEADER + 32], wrapped[HEADER + 32 :]
    private = PYHPKE.kem.deserialize_private_key(reader.private_bytes_raw())
    context = PYHPKE.create_recipient_context(enc, private, info=_info(header, reader.public_key))
    assert context.open(ciphertext) == data_key


def test_we_open_a_key_pyhpke_wrapped(reader):
    data_key = new_data_key()
    header = b"MSKW\x02" + bytes.fromhex("0020" "0001" "0002") + KEY_VERSION.to_bytes(4, "big")
    public = PYHPKE.kem.deserialize_public_key(reader.public_key)
    enc, context = PYHPKE.create_sender_context(public, info=_info(header, reader.public_key))
    wrapped = header + enc + context.seal(data_key)
    assert unwrap_data_key(wrapped, reader, RECORD_ID, RECORD_VERSION) == data_key
    # Sealed by pyhpke under another record version's info: ours refuses it.
    enc, context = PYHPKE.create_sender_context(public, info=_info(header, reader.public_key, RECORD_VERSION + 1))
    with pytest.raises(KeyWrapError, match="cannot unwrap"):
        unwrap_data_key(header + enc + context.seal(data_key), reader, RECORD_ID, RECORD_VERSION)
