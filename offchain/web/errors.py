"""A contract refusal in words: the custom error's NatSpec notice, with its arguments filled in.

The notices are written once, above each ``error`` in the Solidity sources,
and reach Python through the compiler's user documentation. A notice names
an argument as `name` and a contract constant as {NAME}; the constants are
read from the deployed contract once, so a page never shows a raw template.
"""

from __future__ import annotations

import re
from typing import Any

from offchain.chain.contract import ChainRefusal

_ARGUMENT = re.compile(r"`(\w+)`")
_CONSTANT = re.compile(r"\{(\w+)\}")


def error_notices(contract: Any) -> dict[str, str]:
    """Each custom error's notice by name, its {CONSTANT}s replaced by the deployed contract's values."""
    contract_type = contract.contract_type
    constants = {method.name for method in contract_type.view_methods if not method.inputs}
    values: dict[str, str] = {}

    def constant(match: re.Match[str]) -> str:
        name = match[1]
        if name not in constants:
            return name.replace("_", " ").lower()
        if name not in values:
            values[name] = str(getattr(contract, name)())
        return values[name]

    notices = {}
    for signature, docs in ((contract_type.userdoc or {}).get("errors") or {}).items():
        notice = docs[0].get("notice") if docs else None
        if notice:
            notices[signature.split("(")[0]] = _CONSTANT.sub(constant, notice)
    return notices


def explain_refusal(refusal: ChainRefusal, notices: dict[str, str]) -> str:
    """``refusal`` as a sentence: its error's notice with `name` placeholders replaced by the values."""
    notice = notices.get(refusal.error)
    if not notice:
        return str(refusal)
    return _ARGUMENT.sub(lambda match: _shown(refusal.inputs.get(match[1], match[0])), notice)


def _shown(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return str(value)
