"""EIP-170: every contract MedShare deploys stays under 24,576 bytes of runtime code; and their errors
share one namespace."""

EIP170_LIMIT = 24_576
DEPLOYED = ("MedicalAccess", "RoundRegistry")


def test_every_deployed_contract_fits_eip170(chain, access, rounds):
    sizes = {name: len(chain.provider.get_code(contract.address)) for name, contract in zip(DEPLOYED, (access, rounds))}
    assert all(size > 1_000 for size in sizes.values()), sizes  # real code, not an empty account
    assert all(size < EIP170_LIMIT for size in sizes.values()), sizes


def test_every_compiled_contract_fits_eip170(project):
    """Every contract of the project with runtime code (abstract units and interfaces have none)."""
    sizes = {
        contract.name: len(contract.runtime_bytecode.bytecode) // 2 - 1
        for contract in project.contracts.values()
        if contract.runtime_bytecode and len(contract.runtime_bytecode.bytecode or "") > 2
    }
    assert set(DEPLOYED) <= set(sizes)
    assert all(size < EIP170_LIMIT for size in sizes.values()), sizes


def test_error_names_are_unique_across_deployed_contracts(project):
    """The units share one ABI namespace: a name used twice must be the same error (a shared unit's)."""
    signatures: dict[str, set[str]] = {}
    for name in DEPLOYED:
        for error in project.get_contract(name).contract_type.errors:
            signatures.setdefault(error.name, set()).add(error.signature)
    assert {name: sigs for name, sigs in signatures.items() if len(sigs) > 1} == {}
    assert {"NotParticipant", "QuorumNotMet", "AccessDenied", "InvalidCid"} <= set(signatures)
