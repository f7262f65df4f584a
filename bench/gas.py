"""Gas used by each MedicalAccess function on a local anvil.

Prints a table, then (last line) a JSON object of the figures.
Run: ./run bench gas
"""

import json

from ape import accounts, networks, project

CID = bytes.fromhex("01551220") + bytes(range(32))


def measure() -> dict[str, int]:
    hospital, doctor = accounts.test_accounts[0], accounts.test_accounts[1]
    access = hospital.deploy(project.MedicalAccess)
    figures: dict[str, int] = {}

    tx = access.registerRecord(CID, sender=hospital)
    figures["register_record"] = tx.gas_used
    record = tx.return_value

    figures["grant"] = access.grantAccess(record, doctor, sender=hospital).gas_used
    # A view's execution gas: the estimate less the 21,000 intrinsic cost.
    figures["check_access"] = access.checkAccess.estimate_gas_cost(doctor, record, sender=doctor) - 21_000
    return figures


def main() -> None:
    with networks.parse_network_choice("ethereum:local:foundry"):
        figures = measure()
    width = max(map(len, figures))
    print(f"{'function'.ljust(width)}  gas")
    for name, gas in figures.items():
        print(f"{name.ljust(width)}  {gas:>7,}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
