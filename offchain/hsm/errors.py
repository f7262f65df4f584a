"""The error ``offchain.hsm`` raises: a token, PIN or key that cannot be used as configured."""

from offchain.errors import InvalidInput


class HsmError(InvalidInput):
    """The PKCS#11 module, token, PIN or a key in the token is missing, wrong or unusable.

    Each is a setting the user gave (module path, token, PIN source, key
    label), so it is bad input: one line, exit status 2. Messages never hold a
    PIN or key material.
    """

    exit_code = 2
