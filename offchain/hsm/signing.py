"""Ethereum signing keys inside a token: secp256k1 key pairs whose private half never leaves it.

The token signs a 32-byte digest with ``CKM_ECDSA`` and returns ``r || s``;
what Ethereum adds is computed here: ``s`` is brought into the lower half of
the curve order (EIP-2: the other half is refused as malleable), and the
recovery id is the one of the two candidates that recovers the key's own
public key (which also checks the token's signature before anyone sees it).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from eth_keys import keys as eth_keys
from eth_utils import keccak, to_checksum_address

from offchain.hsm.errors import HsmError
from offchain.hsm.token import Token

SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
MAX_LABEL_LENGTH = 32  # CKA_LABEL is free length, but many devices cut it; keep aliases short and exact
_ID_SIZE = 16


@dataclass(frozen=True)
class SigningKey:
    """One secp256k1 key pair in the token: its label, its public key (64 bytes, X || Y) and its address."""

    label: str
    public_key: bytes
    key_id: bytes

    @property
    def address(self) -> str:
        return to_checksum_address(keccak(self.public_key)[-20:])


def check_label(label: str) -> str:
    """Refuse a label that cannot name a key: empty, too long, or with characters other than printable ASCII."""
    if not label or len(label) > MAX_LABEL_LENGTH or not label.isascii() or not label.isprintable() \
            or label != label.strip():
        raise HsmError(f"a key label is 1 to {MAX_LABEL_LENGTH} printable ASCII characters without surrounding "
                       f"spaces, not {label!r}")
    return label


def create_signing_key(token: Token, label: str) -> SigningKey:
    """Generate a secp256k1 key pair in ``token`` under ``label``: private half sensitive, never extractable."""
    from pkcs11 import Attribute, KeyType, Mechanism

    check_label(label)
    token.has_mechanisms(Mechanism.EC_KEY_PAIR_GEN, Mechanism.ECDSA)
    if any(key.label == label for key in signing_keys(token)):
        raise HsmError(f"{token.settings.describe()} already holds a signing key labelled {label!r}")
    key_id = secrets.token_bytes(_ID_SIZE)
    with token.session() as session:
        parameters = session.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: _secp256k1_parameters()}, local=True)
        public, _private = parameters.generate_keypair(
            store=True, label=label, id=key_id,
            public_template={Attribute.VERIFY: True, Attribute.PRIVATE: False},
            private_template={Attribute.SIGN: True, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
                              Attribute.PRIVATE: True, Attribute.DERIVE: False, Attribute.DECRYPT: False,
                              Attribute.UNWRAP: False},
        )
        return SigningKey(label, _public_key(public), key_id)


def import_signing_key(token: Token, label: str, private_key: bytes) -> SigningKey:
    """Put an existing secp256k1 private key (32 bytes) into ``token`` under ``label``: sensitive and never
    extractable from then on.

    The token records that the key was not born there (``CKA_ALWAYS_SENSITIVE``
    and ``CKA_NEVER_EXTRACTABLE`` stay false): copies made before the import,
    such as the keyfile it came from, are the owner's to destroy.
    """
    from asn1crypto.core import OctetString
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

    check_label(label)
    try:
        public_key = eth_keys.PrivateKey(private_key).public_key.to_bytes()
    except Exception:  # noqa: BLE001 - eth-keys raises several kinds; the key itself must not be echoed
        raise HsmError("the key to import is not a secp256k1 private key") from None
    token.has_mechanisms(Mechanism.ECDSA)
    existing = signing_keys(token)
    if any(key.label == label for key in existing):
        raise HsmError(f"{token.settings.describe()} already holds a signing key labelled {label!r}")
    if any(key.public_key == public_key for key in existing):
        raise HsmError(f"{token.settings.describe()} already holds this key (as "
                       f"{next(key.label for key in existing if key.public_key == public_key)!r})")
    key_id = secrets.token_bytes(_ID_SIZE)
    common = {Attribute.KEY_TYPE: KeyType.EC, Attribute.EC_PARAMS: _secp256k1_parameters(), Attribute.TOKEN: True,
              Attribute.LABEL: label, Attribute.ID: key_id}
    with token.session() as session:
        session.create_object({**common, Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.VALUE: private_key,
                               Attribute.SIGN: True, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
                               Attribute.PRIVATE: True, Attribute.DERIVE: False, Attribute.DECRYPT: False,
                               Attribute.UNWRAP: False})
        session.create_object({**common, Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.VERIFY: True,
                               Attribute.PRIVATE: False, Attribute.EC_POINT: OctetString(b"\x04" + public_key).dump()})
    return SigningKey(label, public_key, key_id)


def signing_keys(token: Token) -> list[SigningKey]:
    """Every secp256k1 key pair in the token with both halves present, by label."""
    from pkcs11 import Attribute, KeyType, ObjectClass

    found = []
    with token.session() as session:
        privates = {bytes(key[Attribute.ID]) for key in session.get_objects(
            {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.KEY_TYPE: KeyType.EC,
             Attribute.EC_PARAMS: _secp256k1_parameters()})}
        for public in session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: KeyType.EC,
                                           Attribute.EC_PARAMS: _secp256k1_parameters()}):
            key_id = bytes(public[Attribute.ID])
            if key_id in privates:
                found.append(SigningKey(public[Attribute.LABEL], _public_key(public), key_id))
    return sorted(found, key=lambda key: key.label)


def find_signing_key(token: Token, label: str) -> SigningKey:
    """The signing key labelled ``label``; HsmError naming the labels there are if none is."""
    keys = signing_keys(token)
    matching = [key for key in keys if key.label == label]
    if not matching:
        known = ", ".join(repr(key.label) for key in keys) or "none: create one with `medshare keys hsm create LABEL`"
        raise HsmError(f"{token.settings.describe()} holds no signing key labelled {label!r} (keys: {known})")
    if len(matching) > 1:
        raise HsmError(f"{token.settings.describe()} holds {len(matching)} signing keys labelled {label!r}; "
                       "give each a label of its own")
    return matching[0]


def sign_digest(token: Token, key: SigningKey, digest: bytes) -> tuple[int, int, int]:
    """Sign a 32-byte digest in the token: ``(recovery id 0 or 1, r, s)`` with ``s`` in the lower half."""
    from pkcs11 import Attribute, Mechanism, ObjectClass

    if len(digest) != 32:
        raise ValueError(f"a digest to sign is 32 bytes, not {len(digest)}")
    with token.session() as session:
        private = _one(session, {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: key.key_id}, token, key)
        signature = private.sign(digest, mechanism=Mechanism.ECDSA)
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if s > SECP256K1_ORDER // 2:
        s = SECP256K1_ORDER - s
    for recovery_id in (0, 1):
        recovered = eth_keys.Signature(vrs=(recovery_id, r, s)).recover_public_key_from_msg_hash(digest)
        if recovered.to_bytes() == key.public_key:
            return recovery_id, r, s
    raise HsmError(f"the signature {token.settings.describe()} made with key {key.label!r} does not verify "
                   "against that key's public key")


def _one(session: Any, attributes: dict, token: Token, key: SigningKey) -> Any:
    objects = list(session.get_objects(attributes))
    if len(objects) != 1:
        raise HsmError(f"{token.settings.describe()} no longer holds signing key {key.label!r} "
                       "(deleted since it was loaded?)")
    return objects[0]


def _public_key(public: Any) -> bytes:
    """The 64-byte X || Y of an EC public key object (CKA_EC_POINT: a DER OCTET STRING of 04 || X || Y)."""
    from asn1crypto.core import OctetString
    from pkcs11 import Attribute

    point = bytes(OctetString.load(public[Attribute.EC_POINT]))
    if len(point) != 65 or point[0] != 4:
        raise HsmError("the token returned an EC public key that is not an uncompressed secp256k1 point")
    return point[1:]


def _secp256k1_parameters() -> bytes:
    from pkcs11.util.ec import encode_named_curve_parameters

    return encode_named_curve_parameters("secp256k1")
