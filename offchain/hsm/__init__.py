"""Keys in a hardware security module (PKCS#11): Ethereum accounts and keystore sealing.

- :class:`HsmAccount` (Ape alias ``hsm:LABEL``): an Ape account whose
  secp256k1 key lives in the token and signs transactions and EIP-712
  messages there (:func:`load_account`, :func:`create_signing_key`,
  :func:`signing_keys`).
- :class:`TokenSealer`: seals a :class:`~offchain.crypto.Keystore` with an
  AES key inside the token instead of a passphrase.
- :class:`TokenSettings` / :func:`open_token`: which module, token and PIN
  source (``MEDSHARE_PKCS11_MODULE``, ``MEDSHARE_HSM_TOKEN`` or
  ``MEDSHARE_HSM_SLOT``, ``MEDSHARE_HSM_PIN`` or ``MEDSHARE_HSM_PIN_FILE``).

Every failure a user can cause (no module, no token, a wrong PIN, a locked
token, a missing mechanism or key) raises :class:`HsmError`, one line.
"""

from offchain.hsm.errors import HsmError
from offchain.hsm.keystore_seal import DEFAULT_KEY_LABEL, TokenSeal, TokenSealer, create_keystore_key
from offchain.hsm.signing import (
    SigningKey,
    create_signing_key,
    find_signing_key,
    import_signing_key,
    sign_digest,
    signing_keys,
)
from offchain.hsm.token import Token, TokenSettings, close_tokens, open_token

ALIAS_PREFIX = "hsm:"


def load_account(alias: str):
    """The Ape account of ``hsm:LABEL`` (imports Ape only when asked)."""
    from offchain.hsm.account import load_account as load

    return load(alias)


__all__ = [
    "ALIAS_PREFIX",
    "DEFAULT_KEY_LABEL",
    "HsmError",
    "SigningKey",
    "Token",
    "TokenSeal",
    "TokenSealer",
    "TokenSettings",
    "close_tokens",
    "create_keystore_key",
    "create_signing_key",
    "find_signing_key",
    "import_signing_key",
    "load_account",
    "open_token",
    "sign_digest",
    "signing_keys",
]
