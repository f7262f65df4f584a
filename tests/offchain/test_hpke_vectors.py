"""Published HPKE test vectors through our wrapping layer's primitives.

RFC 9180's vectors (the CFRG ``test-vectors.json`` that RFC 9180 Appendix A
excerpts, as pyca ships it in ``cryptography-vectors``) for base mode with
DHKEM(X25519, HKDF-SHA256) and HKDF-SHA256: AEAD 0x0002 (AES-256-GCM, our
``x25519`` suite exactly), 0x0001 (AES-128-GCM, Appendix A.1.1) and 0x0003
(ChaCha20Poly1305, Appendix A.2.1). And draft-ietf-hpke-pq's vectors for
MLKEM768-X25519 (0x647A) with HKDF-SHA256, for our hybrid key format.

Each vector's recipient private key goes through :class:`RecipientKey` (our
key loading: the X25519 scalar, or the X-Wing seed expanded by SHAKE256),
whose public key must be the vector's ``pkRm``; :func:`hpke_open` (our Open)
must then open the vector's ``enc`` with a ciphertext sealed under the
vector's ``key`` and ``base_nonce``, which holds only if our KEM decapsulation
and key schedule (with the vector's ``info``) give RFC 9180's values; and the
vector's own first ciphertext (aad "Count-0") must open under our key.
"""

import json

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.bindings._rust import openssl as rust_openssl
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography_vectors import open_vector_file

from offchain.crypto import KeySuite, RecipientKey
from offchain.crypto.keywrap import hpke_open

AEADS = {
    0x0001: (hpke.AEAD.AES_128_GCM, AESGCM),
    0x0002: (hpke.AEAD.AES_256_GCM, AESGCM),
    0x0003: (hpke.AEAD.CHACHA20_POLY1305, ChaCha20Poly1305),
}
KEMS = {KeySuite.X25519.kem_id: KeySuite.X25519, KeySuite.MLKEM768_X25519.kem_id: KeySuite.MLKEM768_X25519}


def _vectors(name: str) -> list[dict]:
    with open_vector_file(f"HPKE/{name}", "r") as file:
        vectors = json.load(file)
    return [
        vector for vector in vectors
        if vector["mode"] == 0 and vector["kem_id"] in KEMS and vector["kdf_id"] == 0x0001
        and vector["aead_id"] in AEADS
    ]


RFC9180 = _vectors("test-vectors.json")
HPKE_PQ = _vectors("hpke-pq-test-vectors.json")
VECTORS = [pytest.param(v, id=f"rfc9180-aead{v['aead_id']}") for v in RFC9180] + [
    pytest.param(v, id=f"hpke-pq-aead{v['aead_id']}") for v in HPKE_PQ
]


def test_the_vectors_cover_both_suites():
    assert sorted(v["aead_id"] for v in RFC9180 if v["kem_id"] == 0x0020) == [1, 2, 3]
    assert [v["kem_id"] for v in HPKE_PQ] == [0x647A]
    # RFC 9180 A.1.1's recipient key, so this is the published file and not some other.
    a11 = next(v for v in RFC9180 if v["aead_id"] == 1)
    assert a11["pkRm"] == "3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d"
    assert a11["enc"] == "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431"
    assert bytes.fromhex(a11["info"]) == b"Ode on a Grecian Urn"


@pytest.mark.parametrize("vector", VECTORS)
def test_vector_opens_through_our_primitives(vector):
    h = bytes.fromhex
    suite = KEMS[vector["kem_id"]]
    hpke_aead, aead = AEADS[vector["aead_id"]]
    key = RecipientKey(suite, h(vector["skRm"]))
    assert key.public_key == h(vector["pkRm"])

    hpke_suite = hpke.Suite(suite.hpke_suite_kem(), hpke.KDF.HKDF_SHA256, hpke_aead)
    if vector["aead_id"] == suite.aead_id:
        hpke_suite = suite.hpke_suite()
    first = vector["encryptions"][0]
    plaintext, info, enc = h(first["pt"]), h(vector["info"]), h(vector["enc"])
    assert first["nonce"] == vector["base_nonce"]
    # Sealed with RFC 9180's key schedule output and no aad: opens only if ours derives the same.
    sealed = aead(h(vector["key"])).encrypt(h(vector["base_nonce"]), plaintext, b"")
    assert hpke_open(key, enc + sealed, info, suite=hpke_suite) == plaintext
    with pytest.raises(InvalidTag):
        hpke_open(key, enc + sealed, info + b"!", suite=hpke_suite)

    # The vector's own ciphertext, sealed with aad "Count-0" (cryptography's aad entry point).
    opened = rust_openssl.hpke._decrypt_with_aad(
        hpke_suite, enc + h(first["ct"]), key.hpke_private_key, info=info, aad=h(first["aad"])
    )
    assert opened == plaintext
