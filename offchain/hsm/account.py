"""An Ape account whose key is a secp256k1 key pair inside a PKCS#11 token: alias ``hsm:LABEL``.

An account plugin in Ape's shape (an ``AccountContainerAPI`` listing the
token's signing keys, an ``AccountAPI`` signing through the token), registered
with Ape's plugin manager under the name ``hsm`` by :func:`register_ape_plugin`
(Ape finds plugins by their distribution's ``ape-`` name; this one ships inside
MedShare, so MedShare registers it when an ``hsm:`` alias is asked for).

Transactions are signed by eth-account's own code for every transaction type,
given a key object whose ``sign_msg_hash`` asks the token; messages (EIP-191,
EIP-712) by their digest the same way. The private key never leaves the token.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Any

from ape.api.accounts import AccountAPI, AccountContainerAPI
from ape.api.transactions import TransactionAPI
from ape.types import AddressType, MessageSignature, TransactionSignature
from eip712.messages import EIP712Message
from eth_account.messages import SignableMessage, _hash_eip191_message, encode_defunct
from eth_keys import keys as eth_keys
from eth_utils import to_bytes, to_hex

from offchain.hsm import ALIAS_PREFIX
from offchain.hsm.errors import HsmError
from offchain.hsm.signing import SigningKey, find_signing_key, sign_digest, signing_keys
from offchain.hsm.token import Token, open_token

PLUGIN_NAME = "hsm"


class HsmAccountContainer(AccountContainerAPI):
    """The signing keys of the configured token (:class:`~offchain.hsm.token.TokenSettings`), as accounts."""

    @property
    def aliases(self) -> Iterator[str]:
        for account in self.accounts:
            yield account.alias

    @property
    def accounts(self) -> Iterator[AccountAPI]:
        try:
            token = open_token()
            keys = signing_keys(token)
        except HsmError:
            return  # no usable token: this container has no accounts (`load` says why)
        for key in keys:
            yield HsmAccount(label=key.label, key=key)

    def __len__(self) -> int:
        return sum(1 for _ in self.accounts)

    def load(self, label: str) -> HsmAccount:
        """The account of the key labelled ``label``; HsmError saying why if the token or the key is not there."""
        return HsmAccount(label=label, key=find_signing_key(open_token(), label))


class HsmAccount(AccountAPI):
    """One signing key in the token. Signs without asking: the token and its PIN are the consent."""

    label: str
    key: SigningKey

    @property
    def alias(self) -> str:
        return ALIAS_PREFIX + self.label

    @cached_property
    def address(self) -> AddressType:
        return AddressType(self.key.address)

    @property
    def public_key(self) -> bytes:
        return self.key.public_key

    def __repr__(self) -> str:
        return f"<HsmAccount {self.alias} {self.address}>"

    def _sign(self, digest: bytes) -> tuple[int, int, int]:
        return sign_digest(self._token, self.key, bytes(digest))

    @property
    def _token(self) -> Token:
        return open_token()

    def sign_raw_msghash(self, msghash: Any) -> MessageSignature:
        recovery_id, r, s = self._sign(to_bytes(msghash))
        return MessageSignature(v=27 + recovery_id, r=r.to_bytes(32, "big"), s=s.to_bytes(32, "big"))

    def sign_message(self, msg: Any, **signer_options: Any) -> MessageSignature | None:
        if isinstance(msg, str):
            msg = encode_defunct(text=msg)
        elif isinstance(msg, int):
            msg = encode_defunct(hexstr=to_hex(msg))
        elif isinstance(msg, bytes):
            msg = encode_defunct(primitive=msg)
        elif isinstance(msg, EIP712Message):
            msg = msg.signable_message
        if not isinstance(msg, SignableMessage):
            return None
        return self.sign_raw_msghash(_hash_eip191_message(msg))

    def sign_transaction(self, txn: TransactionAPI, **signer_options: Any) -> TransactionAPI | None:
        from eth_account._utils.signing import sign_transaction_dict

        data = txn.model_dump(mode="json", by_alias=True, exclude={"sender"})
        v, r, s, _ = sign_transaction_dict(_TokenKey(self), data)
        txn.signature = TransactionSignature(v=v, r=r.to_bytes(32, "big"), s=s.to_bytes(32, "big"))
        return txn


class _TokenKey:
    """What eth-account's transaction signer needs of a private key: ``sign_msg_hash``, here through the token."""

    def __init__(self, account: HsmAccount) -> None:
        self._account = account

    def sign_msg_hash(self, digest: bytes) -> eth_keys.Signature:
        return eth_keys.Signature(vrs=self._account._sign(digest))


def register_ape_plugin() -> None:
    """Register the ``hsm`` account plugin with Ape (once a process), so ``accounts.containers['hsm']`` exists."""
    from ape import accounts
    from ape.plugins.pluggy_patch import plugin_manager as pluggy_manager

    from offchain.hsm import ape_plugin

    module_name = "ape_" + PLUGIN_NAME
    if pluggy_manager.has_plugin(module_name):
        return
    pluggy_manager.register(ape_plugin, name=module_name)
    accounts.__dict__.pop("containers", None)  # Ape caches its containers: let it list this one too


def load_account(alias: str) -> HsmAccount:
    """The Ape account for ``hsm:LABEL``, through Ape's registered ``hsm`` container."""
    from ape import accounts

    if not alias.startswith(ALIAS_PREFIX):
        raise HsmError(f"{alias!r} is not an HSM account alias ({ALIAS_PREFIX}LABEL)")
    register_ape_plugin()
    return accounts.containers[PLUGIN_NAME].load(alias[len(ALIAS_PREFIX):])
