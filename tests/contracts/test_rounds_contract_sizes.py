"""EIP-170: every contract MedShare deploys stays under 24,576 bytes of runtime code."""

EIP170_LIMIT = 24_576
DEPLOYED = ("MedicalAccess", "RoundRegistry")


def test_every_deployed_contract_fits_eip170(chain, access, rounds):
    sizes = {name: len(chain.provider.get_code(contract.address)) for name, contract in zip(DEPLOYED, (access, rounds))}
    assert all(size > 1_000 for size in sizes.values()), sizes  # real code, not an empty account
    assert all(size < EIP170_LIMIT for size in sizes.values()), sizes


def test_every_compiled_contract_fits_eip170(project):
    sizes = {}
    for name in DEPLOYED:
        runtime = project.get_contract(name).contract_type.get_runtime_bytecode()
        sizes[name] = len(runtime)
    assert all(0 < size < EIP170_LIMIT for size in sizes.values()), sizes
