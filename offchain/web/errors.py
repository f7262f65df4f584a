"""A contract refusal in words: the custom error's NatSpec notice, with its arguments filled in.

The notices are written once, above each ``error`` in the Solidity sources,
and reach Python through the compiler's user documentation.
"""

from __future__ import annotations

import re
from typing import Any

from offchain.contract_client import ChainRefusal

_ARGUMENT = re.compile(r"`(\w+)`")


def explain_refusal(refusal: ChainRefusal, contract_type: Any) -> str:
    """``refusal`` as a sentence: its error's notice with `name` placeholders replaced by the values."""
    userdoc = getattr(contract_type, "userdoc", None) or {}
    for signature, docs in (userdoc.get("errors") or {}).items():
        if signature.split("(")[0] == refusal.error and docs and docs[0].get("notice"):
            notice = docs[0]["notice"]
            return _ARGUMENT.sub(lambda match: _shown(refusal.inputs.get(match[1], match[0])), notice)
    return str(refusal)


def _shown(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return str(value)
