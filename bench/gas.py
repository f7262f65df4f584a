"""Gas used by each MedicalAccess function on a local anvil, against the issue's targets.

Transactions are counted as their receipt's gas used; ``checkAccess``, a view, as its execution
gas: eth_estimateGas (every slot cold in a fresh call) less the 21,000 intrinsic cost. The batch
figure is the marginal cost of one more grantee: (batch of N - batch of 1) / (N - 1).

Key figures: ``publish_key`` and ``publish_key_pq`` are a member's first publication of an X25519
(32-byte) and an MLKEM768-X25519 (1,216-byte) key; ``grant_pq`` is a grant with its key share to one
hybrid reader (a 1,183-byte wrapped key) in one multicall, as ``medshare record grant`` sends it, and
``grant_share`` the same for an X25519 reader (95 bytes), printed beside it.

Prints a table (figure, gas, target, share of target), then as its last line a JSON object of the
figures. Run: ./run bench gas
"""

import json

from ape import accounts, chain, networks, project
from ape.logging import logger

from offchain.crypto import KeySuite, RecipientKey, new_data_key, wrap_data_key

# The patient-centric EHR design the issue cites reports about 78,000 gas per grant.
PUBLISHED_GRANT_GAS = 78_000
TARGETS = {
    "register_record": 80_000,
    "grant": 55_000,
    "grant_batch_marginal": 27_000,
    "revoke": 35_000,
    "check_access": 12_000,
    "publish_key": 60_000,
    "publish_key_pq": 85_000,
    "grant_pq": 100_000,
}
BATCH_SIZE = 5
ONE_YEAR = 365 * 24 * 3600


def _cid(n: int) -> bytes:
    """A distinct CIDv1 (raw, sha2-256) per n."""
    return bytes.fromhex("01551220") + n.to_bytes(32, "big")


def measure() -> dict[str, int]:
    admin, hospital, patient, doctor = accounts.test_accounts[:4]
    readers = [accounts.test_accounts[4 + i] for i in range(1 + BATCH_SIZE)]
    access = admin.deploy(project.MedicalAccess, admin)
    access.grantRole(access.DATA_OWNER_ROLE(), hospital, sender=admin)
    access.grantRole(access.PATIENT_ROLE(), patient, sender=admin)
    for reader in [doctor, *readers]:
        access.grantRole(access.DOCTOR_ROLE(), reader, sender=admin)

    figures: dict[str, int] = {}
    tx = access.registerRecord(_cid(1), patient, sender=hospital)
    figures["register_record"] = tx.gas_used
    record = tx.return_value
    expiry = chain.pending_timestamp + ONE_YEAR

    figures["grant"] = access.grantAccess(record, doctor, expiry, sender=hospital).gas_used
    figures["check_access"] = access.checkAccess.estimate_gas_cost(doctor, record, sender=doctor) - 21_000

    single = access.grantAccessBatch(record, readers[:1], expiry, sender=hospital).gas_used
    batch = access.grantAccessBatch(record, readers[1 : 1 + BATCH_SIZE], expiry, sender=hospital).gas_used
    figures["grant_batch_marginal"] = (batch - single) // (BATCH_SIZE - 1)

    figures["revoke"] = access.revokeAccess(record, doctor, sender=hospital).gas_used
    figures.update(_measure_keys())
    return figures


def _measure_keys() -> dict[str, int]:
    """First publication of a key of each kind, and a grant with its key share to a reader of each,
    on a fresh deployment (every grant slot new, as for ``grant``)."""
    admin, hospital, patient, classic_reader, hybrid_reader = accounts.test_accounts[:5]
    access = admin.deploy(project.MedicalAccess, admin)
    access.grantRole(access.DATA_OWNER_ROLE(), hospital, sender=admin)
    access.grantRole(access.PATIENT_ROLE(), patient, sender=admin)
    record = access.registerRecord(_cid(1), patient, sender=hospital).return_value
    expiry = chain.pending_timestamp + ONE_YEAR
    figures = {}
    for reader, suite, name in [(classic_reader, KeySuite.X25519, "publish_key"),
                                (hybrid_reader, KeySuite.MLKEM768_X25519, "publish_key_pq")]:
        access.grantRole(access.DOCTOR_ROLE(), reader, sender=admin)
        key = RecipientKey.generate(suite)
        figures[name] = access.publishEncryptionKey(suite.kem_id, key.public_key, sender=reader).gas_used
        wrapped = wrap_data_key(new_data_key(), key.public_key, 1, record, 1, suite)
        calls = [access.grantAccess.encode_input(record, reader, expiry),
                 access.shareDataKeys.encode_input(record, 1, [reader], [wrapped])]
        figures["grant_share" if suite is KeySuite.X25519 else "grant_pq"] = (
            access.multicall(calls, sender=hospital).gas_used
        )
    return figures


def main() -> None:
    # Ape's INFO lines (deployments, anvil start/stop) would otherwise follow the JSON line.
    logger.set_level("WARNING")
    with networks.parse_network_choice("ethereum:local:foundry"):
        figures = measure()
    print(f"{'figure':<22} {'gas':>8} {'target':>8} {'of target':>10}")
    for name, gas in figures.items():
        if name in TARGETS:
            print(f"{name:<22} {gas:>8,} {TARGETS[name]:>8,} {gas / TARGETS[name]:>10.1%}")
        else:
            print(f"{name:<22} {gas:>8,} {'-':>8} {'-':>10}")
    print(f"grant vs published EHR design ({PUBLISHED_GRANT_GAS:,}): {figures['grant'] / PUBLISHED_GRANT_GAS:.1%}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
