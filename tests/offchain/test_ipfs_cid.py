"""CIDs: text and binary forms as Kubo writes them, and clear errors on anything else."""

import hashlib

import base58
import pytest
from hypothesis import given
from hypothesis import strategies as st

from offchain.ipfs import CID, DAG_PB, RAW, InvalidCID

EMPTY_RAW = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"  # ipfs add --cid-version=1 of b""
EMPTY_V0 = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"  # ipfs add of b""


def test_a_raw_cidv1_is_named_by_the_sha256_of_its_block():
    cid = CID.parse(EMPTY_RAW)
    assert (cid.version, cid.codec, cid.hash_code) == (1, RAW, 0x12)
    assert cid.digest == hashlib.sha256(b"").digest()
    assert bytes(cid) == bytes.fromhex("01551220") + hashlib.sha256(b"").digest()
    assert cid == CID.from_digest(1, RAW, hashlib.sha256(b"").digest())


def test_a_cidv0_is_the_bare_base58_multihash():
    cid = CID.parse(EMPTY_V0)
    assert (cid.version, cid.codec) == (0, DAG_PB)
    assert bytes(cid) == cid.multihash and bytes(cid)[:2] == b"\x12\x20"
    assert str(cid) == EMPTY_V0


@pytest.mark.parametrize("text", [EMPTY_RAW, EMPTY_V0, "bafybeigllfqgfpqydppr6cmv56g7ax4wyhruzswvcefv6j5kj77nzttfki"])
def test_text_and_binary_forms_round_trip(text):
    cid = CID.parse(text)
    assert str(cid) == text
    assert CID.from_bytes(bytes(cid)) == cid
    assert repr(cid) == f"CID({text!r})"


def test_other_multibase_spellings_of_a_cidv1_parse_to_the_same_cid():
    cid = CID.parse(EMPTY_RAW)
    assert CID.parse(EMPTY_RAW.upper()) == cid
    assert CID.parse("f" + bytes(cid).hex()) == cid
    assert CID.parse("F" + bytes(cid).hex().upper()) == cid
    assert CID.parse("z" + base58.b58encode(bytes(cid)).decode()) == cid


@given(st.sampled_from([0, 1]), st.sampled_from([DAG_PB, RAW, 0x71]), st.binary(min_size=32, max_size=32))
def test_any_sha256_cid_round_trips(version, codec, digest):
    if version == 0:
        codec = DAG_PB
    cid = CID.from_digest(version, codec, digest)
    assert CID.parse(str(cid)) == cid
    assert CID.from_bytes(bytes(cid)) == cid


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty CID"),
        ("Qmfoo", "46 base58 characters"),
        ("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQ0", "not valid"),  # '0' is not base58
        ("hello", "unknown multibase prefix 'h'"),
        ("b!!!!", "not valid"),
        ("f0255", "unsupported binary CID version 2"),
        ("f0155", "malformed multihash"),
        ("f01551220" + "00" * 31, "declares a 32-byte digest but holds 31"),
        ("f" + "00" * 34, "unsupported binary CID version 0"),
        ("f03551220" + "00" * 32, "unsupported binary CID version 3"),
        ("f01d5001220" + "00" * 32, "non-minimal varint"),  # raw codec 0x55 padded to two bytes
    ],
)
def test_malformed_text_is_rejected_with_a_reason(text, message):
    with pytest.raises(InvalidCID, match=message):
        CID.parse(text)


def test_a_cidv0_must_be_a_dag_pb_sha256():
    with pytest.raises(InvalidCID, match="CIDv0 is always a dag-pb"):
        CID.from_digest(0, RAW, bytes(32))
    with pytest.raises(InvalidCID, match="unsupported CID version 2"):
        CID(2, RAW, bytes.fromhex("1220") + bytes(32))


def test_truncated_binary_is_rejected():
    with pytest.raises(InvalidCID):
        CID.from_bytes(bytes(CID.parse(EMPTY_RAW))[:-1])
    with pytest.raises(InvalidCID):
        CID.from_bytes(b"")
