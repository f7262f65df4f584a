"""A patient's EIP-712 grant, signed in the patient's own wallet for a hospital to relay.

The patient pays no gas: they sign ``Grant(record, grantee, expiry, nonce,
issuedBlock, deadline)`` under MedicalAccess's domain (name ``MedicalAccess``,
version ``1``, the chain id and the contract's address), and the record's
owner relays it with the grantee's key share
(:meth:`~offchain.records.RecordService.relay_signed_grant`). The web
portal's patient page signs the same structure with the browser wallet.
"""

from __future__ import annotations

import secrets
from typing import Any

from eth_account.messages import encode_typed_data

from offchain.chain.access import AccessClient, SignedGrant

DOMAIN_NAME, DOMAIN_VERSION = "MedicalAccess", "1"

GRANT_TYPE = [
    {"name": "record", "type": "bytes32"},
    {"name": "grantee", "type": "address"},
    {"name": "expiry", "type": "uint64"},
    {"name": "nonce", "type": "uint256"},
    {"name": "issuedBlock", "type": "uint64"},
    {"name": "deadline", "type": "uint256"},
]
"""The contract's ``GRANT_TYPEHASH`` structure, field for field."""

DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def grant_typed_data(client: AccessClient, record_id: bytes, grantee: str, expiry: int, nonce: int,
                     issued_block: int, deadline: int) -> dict:
    """The EIP-712 document a patient signs to grant ``grantee`` the record until ``expiry``."""
    return {
        "types": {"EIP712Domain": DOMAIN_TYPE, "Grant": GRANT_TYPE},
        "primaryType": "Grant",
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": int(client.contract.provider.chain_id),
                   "verifyingContract": client.contract.address},
        "message": {"record": bytes(record_id), "grantee": grantee, "expiry": expiry, "nonce": nonce,
                    "issuedBlock": issued_block, "deadline": deadline},
    }


def sign_grant(patient: Any, client: AccessClient, record_id: bytes, grantee: str, expiry: int, *,
               valid_for: int = 3600) -> SignedGrant:
    """``patient`` (an Ape account) signs a grant for anyone to relay within ``valid_for`` seconds.

    The nonce is random (the contract takes any unused one), so two
    signatures never collide. The issued block is the one before the chain's
    latest, as the portal's patient page names it: a node simulates the relay
    in the latest block's context, which must already lie after it. A later
    revocation or grant for the same pair makes the signature void.
    """
    nonce = secrets.randbits(128)
    issued_block = max(int(client.contract.provider.web3.eth.block_number) - 1, 0)
    deadline = client.now() + valid_for
    typed = grant_typed_data(client, record_id, grantee, expiry, nonce, issued_block, deadline)
    signature = patient.sign_message(encode_typed_data(full_message=typed))
    return SignedGrant(bytes(record_id), grantee, expiry, nonce, issued_block, deadline, signature.encode_rsv())
