"""Gas used by each MedicalAccess and RoundRegistry function on a local anvil, against their targets.

Transactions are counted as their receipt's gas used; ``checkAccess``, a view, as its execution
gas: eth_estimateGas (every slot cold in a fresh call) less the 21,000 intrinsic cost. The batch
figure is the marginal cost of one more grantee: (batch of N - batch of 1) / (N - 1). Rounds:
``open_round`` (no invitations) and ``submit_update`` are the most any round or update of the run
cost; ``commit_aggregate_10`` commits a round of 10 updates and ``commit_aggregate_marginal`` is
(commit of 10 - commit of 2) / 8. The same two commits after some account outside the round lost
the participant role (which makes the registry re-read every submitter's roles) are printed too.
``submit_private_update`` is the most an update to a study with privacy budgets costs (its DP
declaration, the checked and recorded spend, its event), held to ``submit_update``'s target.
``report_evaluation``, a hospital's evaluation of its study's last model, is printed without a target.

Enrolment: ``enrol_patient`` is a multicall giving one new account the patient role,
``enrol_patient_batch_marginal`` one more in a batch (what a members file costs a row).

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
from eth_abi import encode as abi_encode
from eth_utils import keccak

from offchain.crypto import KeySuite, RecipientKey, new_data_key, wrap_data_key
from offchain.rounds import StudyTerms
from offchain.rounds.privacy import Declaration

# A published patient-centric EIP-712 EHR design reports about 78,000 gas per grant.
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
    "open_round": 100_000,
    "submit_update": 75_000,
    "submit_private_update": 75_000,
    "commit_aggregate_10": 90_000,
    "commit_aggregate_marginal": 2_600,
    "secure_round_participant": 160_000,
    "enrol_patient_batch_marginal": 60_000,
}
BATCH_SIZE = 5
ENROL_BATCH = 20
ROUND_SIZES = (2, 10)
SECURE_HOSPITALS = 5
MAX_SAMPLES = 1_000_000
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
    figures.update(measure_enrolment(access, admin))
    figures.update(_measure_keys())
    figures.update(measure_rounds(admin, access))
    figures.update(measure_private_rounds(admin, access))
    figures.update(measure_secure_rounds(admin, access))
    return figures


def measure_enrolment(access, admin) -> dict[str, int]:
    """``enrol_patient_batch_marginal``: one more patient in a multicall of grantRole calls, as
    ``medshare members add --csv`` sends them: (batch of N - batch of 1) / (N - 1), fresh accounts."""
    role = access.PATIENT_ROLE()

    def batch(count: int) -> int:
        patients = [accounts.test_accounts.generate_test_account().address for _ in range(count)]
        return access.multicall([access.grantRole.encode_input(role, patient) for patient in patients],
                                sender=admin).gas_used

    single, many = batch(1), batch(ENROL_BATCH)
    return {"enrol_patient": single, "enrol_patient_batch_marginal": (many - single) // (ENROL_BATCH - 1)}


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


def measure_rounds(admin, access) -> dict[str, int]:
    """Rounds of one study: commits of 2 and 10 updates, then the same after a participant's removal."""
    coordinator, *sites = (_funded_new_account() for _ in range(1 + ROUND_SIZES[-1]))
    registry = admin.deploy(project.RoundRegistry, access)
    access.grantRole(access.COORDINATOR_ROLE(), coordinator, sender=admin)
    for site in sites:
        access.grantRole(access.PARTICIPANT_ROLE(), site, sender=admin)
    genesis = (_cid(1000), (1000).to_bytes(32, "big"))
    study = registry.createStudy(*genesis, b"\x01" * 32, _cid(999), StudyTerms(2, MAX_SAMPLES).encoded(),
                                 sender=coordinator).return_value

    bystander = _funded_new_account()  # a participant outside the rounds
    base, opens, submits, commits = _commitment(*genesis), [], [], {}
    for number, (size, removal) in enumerate([(n, removal) for removal in (False, True) for n in ROUND_SIZES], 1):
        if removal:
            access.grantRole(access.PARTICIPANT_ROLE(), bystander, sender=admin)
        tx = registry.openRound(study, base, chain.pending_timestamp + ONE_YEAR, [], sender=coordinator)
        opens.append(tx.gas_used)
        for i, site in enumerate(sites[:size]):
            update = (_cid(100 * number + i), (1).to_bytes(32, "big"))
            submits.append(registry.submitUpdate(study, number, *update, 100, sender=site).gas_used)
        if removal:  # a participant removed since the round opened: the registry re-reads the submitters'
            access.revokeRole(access.PARTICIPANT_ROLE(), bystander, sender=admin)
        aggregate = (_cid(100 * number + 99), (2).to_bytes(32, "big"))
        tx = registry.commitAggregate(study, number, sites[:size], 0, *aggregate, sender=coordinator)
        commits[size, removal] = tx.gas_used
        base = _commitment(*aggregate)
    # A hospital's evaluation of the study's last model, posted when the study ends (an event only).
    evaluation = (_cid(9000), (3).to_bytes(32, "big"))
    posted = registry.reportEvaluation(study, number, *evaluation, sender=sites[0]).gas_used

    small, large = ROUND_SIZES
    return {
        "report_evaluation": posted,
        "open_round": max(opens),
        "submit_update": max(submits),
        "commit_aggregate_10": commits[large, False],
        "commit_aggregate_marginal": (commits[large, False] - commits[small, False]) // (large - small),
        "commit_aggregate_10_after_removal": commits[large, True],
        "commit_aggregate_marginal_after_removal": (commits[large, True] - commits[small, True]) // (large - small),
    }


def measure_private_rounds(admin, access) -> dict[str, int]:
    """``submit_private_update``: the most any update to a study with privacy budgets costs, its DP
    declaration and recorded spend included, over two rounds (the first spend and a later one)."""
    coordinator, *sites = (_funded_new_account() for _ in range(1 + ROUND_SIZES[0]))
    registry = admin.deploy(project.RoundRegistry, access)
    access.grantRole(access.COORDINATOR_ROLE(), coordinator, sender=admin)
    for site in sites:
        access.grantRole(access.PARTICIPANT_ROLE(), site, sender=admin)
    genesis = (_cid(2000), (2000).to_bytes(32, "big"))
    terms = StudyTerms(len(sites), MAX_SAMPLES, budget_hospitals=tuple(site.address for site in sites),
                       epsilon_units=4_000_000, delta_units=10**13)
    study = registry.createStudy(*genesis, b"\x01" * 32, _cid(999), terms.encoded(), sender=coordinator).return_value
    base, submits = _commitment(*genesis), []
    for number in (1, 2):
        registry.openRound(study, base, chain.pending_timestamp + ONE_YEAR, [], sender=coordinator)
        for i, site in enumerate(sites):
            update = (_cid(300 * number + i), (1).to_bytes(32, "big"))
            # noise 1.123456789, sample rate 0.25, clipping norm 1, 4 steps, epsilon 1.234567 a round
            declaration = Declaration(1_123_456_789, 250_000_000, 1_000_000_000, 4, 1_234_567 * number).packed()
            submits.append(registry.submitPrivateUpdate(study, number, *update, 0, declaration, sender=site).gas_used)
        aggregate = (_cid(300 * number + 99), (2).to_bytes(32, "big"))
        registry.commitAggregate(study, number, sites, 0, *aggregate, sender=coordinator)
        base = _commitment(*aggregate)
    return {"submit_private_update": max(submits)}


def measure_secure_rounds(admin, access) -> dict[str, int]:
    """``secure_round_participant``: the most gas one hospital signs for in one secure round of
    ``SECURE_HOSPITALS`` invited hospitals (its key advertisement, shares, masked input and
    unmasking response), over two rounds (the first, and one whose slots the first created); the
    contract's share of bench/rounds.py's ``secagg_round_gas_per_participant``, which runs the protocol."""
    coordinator, *sites = (_funded_new_account() for _ in range(1 + SECURE_HOSPITALS))
    registry = admin.deploy(project.RoundRegistry, access)
    access.grantRole(access.COORDINATOR_ROLE(), coordinator, sender=admin)
    for site in sites:
        access.grantRole(access.PARTICIPANT_ROLE(), site, sender=admin)
    genesis = (_cid(4000), (4000).to_bytes(32, "big"))
    terms = StudyTerms(3, MAX_SAMPLES, secure_aggregation=True)
    study = registry.createStudy(*genesis, b"\x01" * 32, _cid(999), terms.encoded(), sender=coordinator).return_value
    base, spent = _commitment(*genesis), []
    for number in (1, 2):
        registry.openRound(study, base, chain.pending_timestamp + ONE_YEAR, sites, sender=coordinator)
        gas = {site.address: 0 for site in sites}
        for phase in (0, 1, 2, 3):  # keys, shares, masked inputs (updates), unmasking
            for i, site in enumerate(sites):
                message = (_cid(10_000 * number + 100 * phase + i), (phase + 1).to_bytes(32, "big"))
                if phase == 2:
                    tx = registry.submitUpdate(study, number, *message, 100, sender=site)
                else:
                    tx = registry.postSecureMessage(study, number, phase, *message, sender=site)
                gas[site.address] += tx.gas_used
            registry.closeSecurePhase(study, number, phase, sender=coordinator)
        spent.append(max(gas.values()))
        aggregate = (_cid(10_000 * number + 99), (2).to_bytes(32, "big"))
        registry.commitAggregate(study, number, sites, 0, *aggregate, sender=coordinator)
        base = _commitment(*aggregate)
    return {"secure_round_participant": max(spent)}


def _funded_new_account():
    account = accounts.test_accounts.generate_test_account()
    chain.set_balance(account, 10**21)
    return account


def _commitment(cid: bytes, sha256: bytes) -> bytes:
    return keccak(abi_encode(["bytes", "bytes32"], [cid, sha256]))


def main() -> None:
    # Ape's INFO lines (deployments, anvil start/stop) would otherwise follow the JSON line.
    logger.set_level("WARNING")
    with networks.parse_network_choice("ethereum:local:foundry"):
        figures = measure()
    print(f"{'figure':<26} {'gas':>8} {'target':>8} {'of target':>10}")
    for name, gas in figures.items():
        if name in TARGETS:
            print(f"{name:<26} {gas:>8,} {TARGETS[name]:>8,} {gas / TARGETS[name]:>10.1%}")
        else:
            print(f"{name:<26} {gas:>8,} {'-':>8} {'-':>10}")
    print(f"commit_aggregate per update in the round (2 -> 10 updates): {figures['commit_aggregate_marginal']:,}")
    print(f"after a participant's removal (every submitter's roles re-read): commit of 10 "
          f"{figures['commit_aggregate_10_after_removal']:,}, per update "
          f"{figures['commit_aggregate_marginal_after_removal']:,}")
    print(f"grant vs published EHR design ({PUBLISHED_GRANT_GAS:,}): {figures['grant'] / PUBLISHED_GRANT_GAS:.1%}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
