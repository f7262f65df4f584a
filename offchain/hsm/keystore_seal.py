"""A keystore sealed by an AES-256 key inside a token instead of a passphrase.

The keystore's private keys (X25519 and ML-KEM) are encrypted with
``CKM_AES_GCM`` inside the token, under an AES key that is sensitive and never
extractable, with the keystore's own nonce and associated data
(:mod:`offchain.crypto.keystore`). Opening a keystore decrypts through the
token; a token-sealed keystore decrypts again on each use, so no private key
outlives the call that needed it and nothing unsealed is written anywhere.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from offchain.crypto import KeystoreError
from offchain.crypto.keystore import TOKEN_FORMAT_VERSION, TOKEN_KEY_NAME
from offchain.hsm.errors import HsmError
from offchain.hsm.signing import check_label
from offchain.hsm.token import Token

DEFAULT_KEY_LABEL = "medshare-keystore"
_ID_SIZE = 16
_TAG_BITS = 128


class TokenSeal:
    """AES-256-GCM inside the token under one AES key (a :class:`~offchain.crypto.keystore.KeySeal`)."""

    format_version = TOKEN_FORMAT_VERSION
    keeps_keys = False

    def __init__(self, token: Token, label: str, key_id: bytes) -> None:
        self._token, self.label, self.key_id = token, label, key_id
        self.header = {"token_key": {"name": TOKEN_KEY_NAME, "label": label, "id": key_id.hex()}}

    def encrypt(self, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
        from pkcs11 import Mechanism
        from pkcs11.mechanisms import GCMParams

        with self._token.session() as session:
            key = _aes_key(session, self._token, self.label, self.key_id)
            return bytes(key.encrypt(plaintext, mechanism=Mechanism.AES_GCM,
                                     mechanism_param=GCMParams(nonce, associated_data, _TAG_BITS)))

    def decrypt(self, path: Path, nonce: bytes, ciphertext: bytes, associated_data: bytes) -> bytes:
        import pkcs11.exceptions as errors
        from pkcs11 import Mechanism
        from pkcs11.mechanisms import GCMParams

        with self._token.session() as session:
            key = _aes_key(session, self._token, self.label, self.key_id)
            try:
                return bytes(key.decrypt(ciphertext, mechanism=Mechanism.AES_GCM,
                                         mechanism_param=GCMParams(nonce, associated_data, _TAG_BITS)))
            except (errors.EncryptedDataInvalid, errors.EncryptedDataLenRange, errors.GeneralError,
                    errors.FunctionFailed, errors.DataInvalid):
                # A GCM tag that does not verify: SoftHSM2 reports it as a general error, others as invalid data.
                raise KeystoreError(f"cannot unlock keystore {path}: the token's key {self.label!r} does not "
                                    "open it, or the file was modified") from None


class TokenSealer:
    """Seals keystores with the token's AES key labelled ``label`` (a :class:`~offchain.crypto.keystore.KeySealer`).

    ``create`` makes the key in the token when there is none by that label
    (for a new or converted keystore); opening a file uses the key its header
    names, by label and id, so a key re-made under the same label cannot be
    mistaken for the one that sealed it.
    """

    def __init__(self, token: Token, label: str = DEFAULT_KEY_LABEL, *, create: bool = False) -> None:
        self._token, self._label, self._create = token, check_label(label), create

    def new_seal(self) -> TokenSeal:
        from pkcs11 import Attribute, Mechanism

        self._token.has_mechanisms(Mechanism.AES_GCM)
        with self._token.session() as session:
            keys = _aes_keys(session, self._label)
            if len(keys) > 1:
                raise HsmError(f"{self._token.settings.describe()} holds {len(keys)} AES keys labelled "
                               f"{self._label!r}; give each a label of its own")
            if keys:
                return TokenSeal(self._token, self._label, bytes(keys[0][Attribute.ID]))
        if not self._create:
            raise HsmError(f"{self._token.settings.describe()} holds no keystore key labelled {self._label!r}; "
                           "`medshare keys hsm seal-keystore` creates one")
        return TokenSeal(self._token, self._label, create_keystore_key(self._token, self._label))

    def open_seal(self, path: Path, header: dict[str, Any]) -> TokenSeal:
        from pkcs11 import Mechanism

        if "token_key" not in header:
            raise KeystoreError(f"keystore {path} is sealed by a passphrase, not by a key inside a token")
        named = header["token_key"]
        self._token.has_mechanisms(Mechanism.AES_GCM)
        seal = TokenSeal(self._token, named["label"], bytes.fromhex(named["id"]))
        with self._token.session() as session:
            _aes_key(session, self._token, seal.label, seal.key_id)  # a missing key is named before any decryption
        return seal


def create_keystore_key(token: Token, label: str) -> bytes:
    """Generate an AES-256 key in ``token`` for sealing keystores: sensitive, never extractable; returns its id."""
    from pkcs11 import Attribute, KeyType, Mechanism

    token.has_mechanisms(Mechanism.AES_KEY_GEN, Mechanism.AES_GCM)
    key_id = secrets.token_bytes(_ID_SIZE)
    with token.session() as session:
        session.generate_key(KeyType.AES, 256, store=True, label=check_label(label), id=key_id, template={
            Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.PRIVATE: True,
            Attribute.ENCRYPT: True, Attribute.DECRYPT: True, Attribute.WRAP: False, Attribute.UNWRAP: False,
            Attribute.SIGN: False, Attribute.VERIFY: False, Attribute.DERIVE: False,
        })
    return key_id


def _aes_keys(session: Any, label: str, key_id: bytes | None = None) -> list[Any]:
    from pkcs11 import Attribute, KeyType, ObjectClass

    attributes = {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES, Attribute.LABEL: label}
    if key_id is not None:
        attributes[Attribute.ID] = key_id
    return list(session.get_objects(attributes))


def _aes_key(session: Any, token: Token, label: str, key_id: bytes) -> Any:
    keys = _aes_keys(session, label, key_id)
    if not keys:
        raise HsmError(f"{token.settings.describe()} holds no AES key labelled {label!r} with the id the keystore "
                       "names (a different token, or the key was deleted)")
    return keys[0]
