"""The interfaces in contracts/interfaces carry the deployed contracts' ABI: every function, event and
error a client can meet, with the NatSpec of every external function, so that a client or another
contract can be written against the interface alone."""

import pytest

# What the deployed contracts take from OpenZeppelin and the libraries they link, which no interface
# of ours declares: the batch entry point and the errors of Address (under Multicall), ShortStrings
# (EIP-712's constructor) and Cid.
OUTSIDE_INTERFACES = {
    ("function", "multicall"),
    ("error", "AddressEmptyCode"),
    ("error", "FailedCall"),
    ("error", "InvalidShortString"),
    ("error", "StringTooLong"),
    ("error", "InvalidCid"),
}
OPENZEPPELIN_FUNCTIONS = (
    "hasRole(",
    "getRoleAdmin(",
    "grantRole(",
    "revokeRole(",
    "renounceRole(",
    "eip712Domain(",
    "supportsInterface(",
    "DEFAULT_ADMIN_ROLE(",
    "paused(",
)
PAIRS = [("MedicalAccess", "IMedicalAccess"), ("RoundRegistry", "IRoundRegistry")]


def _abi(project, name: str) -> set[tuple[str, str, str]]:
    contract_type = project.get_contract(name).contract_type
    return {
        (item.type, item.name, item.selector)
        for item in contract_type.abi
        if item.type in ("function", "event", "error")
    }


@pytest.mark.parametrize(("contract", "interface"), PAIRS)
def test_interface_carries_the_deployed_abi(project, contract, interface):
    deployed, declared = _abi(project, contract), _abi(project, interface)
    assert declared <= deployed, f"{interface} declares what {contract} lacks: {declared - deployed}"
    missing = {item for item in deployed - declared if (item[0], item[1]) not in OUTSIDE_INTERFACES}
    assert missing == set(), f"{contract} has ABI entries its interface {interface} does not carry"


@pytest.mark.parametrize(("contract", "interface"), PAIRS)
def test_every_external_function_has_natspec(project, contract, interface):
    userdoc = project.get_contract(contract).contract_type.userdoc or {}
    documented = set(userdoc.get("methods", {}))
    functions = {item.selector for item in project.get_contract(interface).contract_type.abi if item.type == "function"}
    # OpenZeppelin documents its own functions with @dev only; ours carry a @notice each.
    ours = {sig for sig in functions if not sig.startswith(OPENZEPPELIN_FUNCTIONS)}
    assert ours, interface
    assert ours - documented == set()
