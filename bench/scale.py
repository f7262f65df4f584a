"""A consortium's history at scale: the indexed event store's sync and reads, enrolment gas, and a year's cost.

Builds a history on a local anvil (anvil's default 30M block gas limit), fast, in multicall batches
sent from unlocked (impersonated) accounts: 10 hospitals, 200 doctors, and per 10 events about one
patient enrolled, one record registered, four grants, three logged reads and one revocation
(``--events N``, default 200,000 MedicalAccess events, counted and printed); then a study of 50
hospitals run for 100 rounds on a RoundRegistry (``--rounds``, ``--hospitals``).

Then, in a fresh process that imports only the event store (what a hospital's client pays), a
cold sync of both contracts' event stores into SQLite from the deployment block: ``cold_sync_s``,
``cold_sync_events_per_s`` (target ≥ 20,000; wall clock, so on a shared machine read it with
``load_avg_1m`` and ``cold_sync_events_per_cpu_s``, the events per second of the client's own CPU
time), ``peak_rss_mib`` of that process (target ≤ 300),
``index_mib`` (the MedicalAccess database on disk), and ``incremental_sync_ms`` after one new block
(target ≤ 50). Reads, through the library's clients on the warm store, median of 20 (each target
≤ 50 ms): ``q_owner_records_ms`` (every version of a hospital's records, ``record_versions``),
``q_record_grants_ms`` (``granted_users``), ``q_audit_trail_ms`` (``audit_trail``) and
``q_study_status_ms`` (the study and its latest round: ``RoundsClient.study`` + ``round``, the
round's 50 updates included). ``enrol_gas_marginal``: one more patient in a members batch
(target ≤ 60,000).

The year model: 100 hospitals, 1M patients, 1M records, 5M grants, 5M revocations, 5M logged reads
and 50 studies × 100 rounds × 50 hospitals, each operation at the gas measured here (enrolments
batched as a members file sends them; registrations, grants, revocations and reads one transaction
each; rounds as run here) and the new storage slots it writes (counted from anvil's state diff
of one transaction of each kind); total gas, state slots, and the cost in POL at 25, 30 and 100 gwei.

The built history (anvil's state dump: every block, transaction and log) is saved under
``.cache/bench-scale/``, keyed by both contracts' bytecode, the builder's source, the options and
anvil's version, and a later run loads it into anvil instead of building it again (about 17 minutes
for the default history on 2 shared cores): the chain, and so every figure measured on it, is the
one a build would make; the gas figures are those its build measured (``history_reused`` says so).

Run: ./run bench scale [--events N] [--rounds R] [--hospitals H] [--rebuild]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HOSPITALS = 10
DOCTORS = 200
GRANTS_PER_RECORD = 4
READS_PER_RECORD = 3
TX_GAS = 29_000_000
YEAR = {"hospitals": 100, "patients": 1_000_000, "records": 1_000_000, "grants": 5_000_000,
        "revokes": 5_000_000, "reads": 5_000_000, "studies": 50, "rounds": 100, "round_hospitals": 50}
GWEI = (25, 30, 100)


# -- the sync child: only the event store, as a hospital's client ---------------------------------

def _child(args: list[str]) -> None:
    url, folder, chain_id, *contracts = args
    from ethpm_types import ContractType
    from web3 import HTTPProvider, Web3

    from offchain.chain.events import EventStore

    build = json.loads((ROOT / ".build" / "__local__.json").read_text())
    web3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 600}))
    stores, figures = [], {}
    profile = None
    if os.environ.get("BENCH_PROFILE"):
        import cProfile
        profile = cProfile.Profile()
        profile.enable()
    started, cpu = time.perf_counter(), time.process_time()
    for spec in contracts:
        name, address, from_block = spec.split(":")
        events = ContractType.model_validate(build["contractTypes"][name]).events
        store = EventStore.for_contract(Path(folder) / "events", int(chain_id), address, int(from_block), events)
        store.sync(web3)
        stores.append(store)
    figures["cold_sync_s"] = time.perf_counter() - started
    figures["cold_sync_cpu_s"] = time.process_time() - cpu
    figures["load_avg_1m"] = os.getloadavg()[0]
    if profile is not None:
        import pstats
        profile.disable()
        pstats.Stats(profile, stream=sys.stderr).sort_stats("tottime").print_stats(15)
    figures["events"] = [store.count() for store in stores]
    # One new block (a transaction from the first unlocked account), then the incremental sync.
    sender = web3.provider.make_request("eth_accounts", [])["result"][0]
    web3.provider.make_request("eth_sendTransaction", [{"from": sender, "to": sender, "value": "0x1"}])
    started = time.perf_counter()
    stores[0].sync(web3)
    figures["incremental_sync_ms"] = (time.perf_counter() - started) * 1000
    figures["peak_rss_mib"] = _peak_rss_mib()
    print(json.dumps(figures))


def _peak_rss_mib() -> float:
    """This process's peak resident memory since it started (VmHWM: unlike getrusage's ru_maxrss,
    which a child inherits from its parent across fork and exec, it counts this program alone)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- building the history ------------------------------------------------------------------------

class Builder:
    def __init__(self, web3) -> None:
        self.web3 = web3
        self.sent: list[str] = []

    def rpc(self, method: str, params: list):
        for attempt in range(5):
            try:
                answer = self.web3.provider.make_request(method, params)
                break
            except Exception:  # noqa: BLE001 - a connection anvil dropped while busy: ask again
                if attempt == 4 or method == "eth_sendTransaction":
                    raise
                time.sleep(0.5)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def unlock(self, addresses: list[str]) -> None:
        self.rpc_batch([request for address in addresses for request in (
            ("anvil_impersonateAccount", [address]), ("anvil_setBalance", [address, hex(10**24)]))])

    def send(self, sender: str, to: str, data: bytes, gas: int = TX_GAS) -> dict:
        call = {"from": sender, "to": to, "data": "0x" + data.hex(), "gas": hex(gas)}
        tx_hash = self.rpc("eth_sendTransaction", [call])
        receipt = self.rpc("eth_getTransactionReceipt", [tx_hash])
        while receipt is None:
            time.sleep(0.002)
            receipt = self.rpc("eth_getTransactionReceipt", [tx_hash])
        return self._succeeded(receipt, call)

    def send_together(self, calls: list[tuple[str, str, bytes, int]]) -> list[dict]:
        """Send ``calls`` (sender, to, data, gas) without mining, then mine them (in as few blocks as
        they fit): one block for a round's submissions rather than one each. Receipts in call order."""
        sent = [{"from": sender, "to": to, "data": "0x" + data.hex(), "gas": hex(gas)} for sender, to, data, gas in calls]
        self.rpc("evm_setAutomine", [False])
        try:
            hashes = self.rpc_batch([("eth_sendTransaction", [call]) for call in sent])
            receipts = [None] * len(sent)
            while None in receipts:
                self.rpc("evm_mine", [])
                receipts = self.rpc_batch([("eth_getTransactionReceipt", [tx_hash]) for tx_hash in hashes])
        finally:
            self.rpc("evm_setAutomine", [True])
        return [self._succeeded(receipt, call) for receipt, call in zip(receipts, sent)]

    def rpc_batch(self, requests: list[tuple[str, list]]) -> list:
        """One JSON-RPC batch (one round trip); the results in request order."""
        answers = self.web3.provider.make_batch_request(requests)
        if isinstance(answers, dict) or len(answers) != len(requests):
            raise RuntimeError(f"a batch of {len(requests)} requests: {answers}")
        answers = sorted(answers, key=lambda answer: int(answer["id"]))
        failed = [answer["error"] for answer in answers if "error" in answer]
        if failed:
            raise RuntimeError(f"{requests[0][0]}: {failed[0]}")
        return [answer["result"] for answer in answers]

    def _succeeded(self, receipt: dict, call: dict) -> dict:
        if int(receipt["status"], 16) != 1:
            why = self.web3.provider.make_request("eth_call", [call, hex(int(receipt["blockNumber"], 16) - 1)])
            raise RuntimeError(f"a history transaction failed: {receipt['transactionHash']} "
                               f"(gas used {int(receipt['gasUsed'], 16):,}): {why.get('error', why)}")
        return receipt


class Encoder:
    """Calldata of one contract function, by eth_abi: the history's hundreds of thousands of calls
    would spend most of the build in Ape's encoder."""

    def __init__(self, method) -> None:
        from eth_utils import keccak

        (abi,) = method.abis
        self.selector = keccak(text=abi.selector)[:4]
        self.types = [item.canonical_type for item in abi.inputs]

    def encode_input(self, *args) -> bytes:
        from eth_abi import encode

        return self.selector + encode(self.types, args)


class Encoders:
    """``Encoders(contract).name``: the :class:`Encoder` of ``contract``'s function ``name``."""

    def __init__(self, contract) -> None:
        self._contract = contract

    def __getattr__(self, name: str) -> Encoder:
        encoder = Encoder(getattr(self._contract, name))
        setattr(self, name, encoder)
        return encoder


def _cid(n: int) -> bytes:
    return bytes.fromhex("01551220") + n.to_bytes(32, "big")


def _address(n: int) -> str:
    from eth_utils import to_checksum_address

    return to_checksum_address((0xA11CE << 136 | n).to_bytes(20, "big"))


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def build(access, registry_type, admin, events: int, rounds: int, round_hospitals: int) -> dict:
    """The history; returns the gas figures the year model needs and the deployments' addresses."""
    from ape import chain
    from eth_abi import encode as abi_encode
    from eth_utils import keccak, to_canonical_address, to_checksum_address
    from web3 import HTTPProvider, Web3

    from offchain.rounds.client import StudyTerms

    web3 = Web3(HTTPProvider(chain.provider.web3.provider.endpoint_uri, request_kwargs={"timeout": 600}))
    b = Builder(web3)
    clock = [time.perf_counter()]

    def phase(name: str) -> None:
        now = time.perf_counter()
        print(f"  {name}: {now - clock[0]:.1f}s", file=sys.stderr)
        clock[0] = now

    start_block = web3.eth.block_number
    units = max(1, events // 10)
    hospitals = [_address(1 + i) for i in range(HOSPITALS)]
    doctors = [_address(1000 + i) for i in range(DOCTORS)]
    patients = [_address(100_000 + i) for i in range(units)]
    b.unlock(hospitals + doctors)
    fn = Encoders(access)
    multicall = fn.multicall
    to = access.address

    def batch(sender: str, calls: list[bytes], size: int) -> list[dict]:
        return [b.send(sender, to, multicall.encode_input(part)) for part in _chunks(calls, size)]

    grant_role = fn.grantRole
    figures: dict = {}
    roles = [grant_role.encode_input(access.DATA_OWNER_ROLE(), h) for h in hospitals]
    roles += [grant_role.encode_input(access.DOCTOR_ROLE(), d) for d in doctors]
    batch(admin.address, roles, 300)
    patient_role = access.PATIENT_ROLE()
    one = b.send(admin.address, to, multicall.encode_input([grant_role.encode_input(patient_role, patients[0])]))
    receipts = batch(admin.address, [grant_role.encode_input(patient_role, p) for p in patients[1:]], 400)
    figures["enrol_gas_marginal"] = (int(receipts[0]["gasUsed"], 16) - int(one["gasUsed"], 16)) // (400 - 1) \
        if len(patients) > 400 else None
    figures["enrol_patient_tx"] = int(one["gasUsed"], 16)

    phase("enrolment")
    # Records: one per patient, hospitals in turn.
    records, by_hospital = [], {h: [] for h in hospitals}
    for i, patient in enumerate(patients):
        hospital = hospitals[i % HOSPITALS]
        digest = (i + 1).to_bytes(32, "big")
        record = keccak(to_canonical_address(hospital) + digest)
        records.append((record, hospital))
        by_hospital[hospital].append(fn.registerRecord.encode_input(_cid(i + 1), patient))
    for hospital, calls in by_hospital.items():
        batch(hospital, calls, 250)
    expiry = int(chain.pending_timestamp) + 365 * 86400
    phase("records")
    # Grants: each record to 4 doctors (one grantAccessBatch), by its hospital.
    grants = {h: [] for h in hospitals}
    granted = []
    for i, (record, hospital) in enumerate(records):
        readers = [doctors[(GRANTS_PER_RECORD * i + k) % DOCTORS] for k in range(GRANTS_PER_RECORD)]
        granted.append(readers)
        grants[hospital].append(fn.grantAccessBatch.encode_input(record, readers, expiry))
    for hospital, calls in grants.items():
        batch(hospital, calls, 150)
    phase("grants")
    # Logged reads: the first 3 grantees of each record read it.
    reads = {d: [] for d in doctors}
    for (record, _), readers in zip(records, granted):
        for reader in readers[:READS_PER_RECORD]:
            reads[reader].append(fn.logAccess.encode_input(record))
    for doctor, calls in reads.items():
        batch(doctor, calls, 400)
    phase("reads")
    # Revocations: each record's 4th grantee.
    revokes = {h: [] for h in hospitals}
    for (record, hospital), readers in zip(records, granted):
        revokes[hospital].append(fn.revokeAccess.encode_input(record, readers[-1]))
    for hospital, calls in revokes.items():
        batch(hospital, calls, 500)

    phase("revocations")
    # Single-transaction costs (what one user action costs) and the slots each writes.
    extra_patient = _address(900_000)
    hospital, doctor = hospitals[0], doctors[0]
    single = {}
    diff = {}
    receipt = b.send(admin.address, to, multicall.encode_input([grant_role.encode_input(patient_role, extra_patient)]))
    diff["patients"] = _new_slots(b, receipt, to)
    receipt = b.send(admin.address, to, grant_role.encode_input(access.DATA_OWNER_ROLE(), _address(900_001)))
    single["hospitals"], diff["hospitals"] = int(receipt["gasUsed"], 16), _new_slots(b, receipt, to)
    receipt = b.send(hospital, to, fn.registerRecord.encode_input(_cid(10**9), extra_patient))
    single["records"], diff["records"] = int(receipt["gasUsed"], 16), _new_slots(b, receipt, to)
    new_record = keccak(to_canonical_address(hospital) + (10**9).to_bytes(32, "big"))
    receipt = b.send(hospital, to, fn.grantAccess.encode_input(new_record, doctor, expiry))
    single["grants"], diff["grants"] = int(receipt["gasUsed"], 16), _new_slots(b, receipt, to)
    receipt = b.send(doctor, to, fn.logAccess.encode_input(new_record))
    single["reads"], diff["reads"] = int(receipt["gasUsed"], 16), _new_slots(b, receipt, to)
    receipt = b.send(hospital, to, fn.revokeAccess.encode_input(new_record, doctor))
    single["revokes"], diff["revokes"] = int(receipt["gasUsed"], 16), _new_slots(b, receipt, to)
    single["patients"] = figures["enrol_gas_marginal"] or figures["enrol_patient_tx"]
    access_events = None
    access_to = web3.eth.block_number

    phase("single costs")
    # A study of `round_hospitals` hospitals, `rounds` rounds.
    registry = admin.deploy(registry_type, access)
    registry_block = int(registry.receipt.block_number) if getattr(registry, "receipt", None) else access_to
    coordinator = _address(2_000_000)
    sites = [_address(2_000_001 + i) for i in range(round_hospitals)]
    b.unlock([coordinator, *sites])
    batch(admin.address, [grant_role.encode_input(access.COORDINATOR_ROLE(), coordinator)]
          + [grant_role.encode_input(access.PARTICIPANT_ROLE(), s) for s in sites], 300)
    reg = registry.address
    study_calls = Encoders(registry)
    genesis = (_cid(5_000_000), (5_000_000).to_bytes(32, "big"))
    terms = StudyTerms(min_updates=2, max_samples=1000).encoded()
    b.send(coordinator, reg, study_calls.createStudy.encode_input(*genesis, b"\x01" * 32, _cid(4_999_999), terms),
           2_000_000)
    base = keccak(abi_encode(["bytes", "bytes32"], list(genesis)))
    deadline = int(chain.pending_timestamp) + 365 * 86400
    gas = {"open": 0, "submit": 0, "commit": 0}
    round_slots = 0
    for number in range(1, rounds + 1):
        receipt = b.send(coordinator, reg, study_calls.openRound.encode_input(1, base, deadline, []), 2_000_000)
        gas["open"] += int(receipt["gasUsed"], 16)
        if number == 1:
            round_slots += _new_slots(b, receipt, reg)
        submissions = [(site, reg, study_calls.submitUpdate.encode_input(
            1, number, _cid(6_000_000 + number * 1000 + i), (1).to_bytes(32, "big"), 100), 2_000_000)
            for i, site in enumerate(sites)]
        receipts = b.send_together(submissions)
        for receipt in receipts:
            gas["submit"] += int(receipt["gasUsed"], 16)
            if number == 1:
                round_slots += _new_slots(b, receipt, reg)
        # The aggregate names the submitters in the order their updates landed.
        landed = [to_checksum_address(r["from"]) for r in sorted(
            receipts, key=lambda r: (int(r["blockNumber"], 16), int(r["transactionIndex"], 16)))]
        aggregate = (_cid(7_000_000 + number), (2).to_bytes(32, "big"))
        receipt = b.send(coordinator, reg, study_calls.commitAggregate.encode_input(1, number, landed, 0, *aggregate),
                         5_000_000)
        gas["commit"] += int(receipt["gasUsed"], 16)
        if number == 1:
            round_slots += _new_slots(b, receipt, reg)
        base = keccak(abi_encode(["bytes", "bytes32"], list(aggregate)))
    phase("rounds")
    round_gas = sum(gas.values()) / max(1, rounds)
    return {
        "start_block": start_block, "registry": reg, "registry_block": registry_block, "figures": figures,
        "single": single, "slots": diff, "round_gas": round_gas, "round_slots": round_slots,
        "access_events": access_events, "hospital": hospitals[0], "record": records[0][0],
        "units": units,
    }


def _new_slots(b: Builder, receipt: dict, contract: str) -> int | None:
    """Storage slots of ``contract`` the transaction took from zero to non-zero (anvil's state diff)."""
    try:
        trace = b.rpc("debug_traceTransaction", [receipt["transactionHash"],
                                                {"tracer": "prestateTracer", "tracerConfig": {"diffMode": True}}])
    except RuntimeError:
        return None
    key = contract.lower()
    pre = {k.lower(): v for k, v in trace.get("pre", {}).items()}.get(key, {}).get("storage", {})
    post = {k.lower(): v for k, v in trace.get("post", {}).items()}.get(key, {}).get("storage", {})
    return sum(1 for slot, value in post.items() if int(value, 16) != 0 and int(pre.get(slot, "0x0"), 16) == 0)


def year_model(built: dict) -> dict:
    single, slots = built["single"], built["slots"]
    ops = {name: YEAR[name] for name in ("hospitals", "patients", "records", "grants", "revokes", "reads")}
    gas = {name: count * single[name] for name, count in ops.items()}
    rounds = YEAR["studies"] * YEAR["rounds"]
    # The measured round is of the bench's hospitals; the model's rounds have YEAR's 50.
    gas["rounds"] = int(rounds * built["round_gas"])
    state = {name: count * (slots.get(name) or 0) for name, count in ops.items()}
    state["rounds"] = rounds * (built["round_slots"] or 0)
    total = sum(gas.values())
    return {
        "year_gas": total,
        "year_gas_by_kind": gas,
        "year_state_slots": sum(state.values()),
        "year_state_slots_by_kind": state,
        "year_gas_per_op": {**single, "round_of_50": int(built["round_gas"])},
        "year_slots_per_op": {**slots, "round_of_50": built["round_slots"]},
        **{f"year_cost_pol_{gwei}gwei": round(total * gwei * 1e-9, 1) for gwei in GWEI},
    }


HISTORY_FOLDER = ROOT / ".cache" / "bench-scale"


def _history_file(project, options) -> Path:
    """Where the history of these contracts (their bytecode), this builder (its source) and these
    options is saved: what it holds is exactly what a build now would make."""
    import hashlib
    import inspect

    key = hashlib.sha256()
    for name in ("MedicalAccess", "RoundRegistry"):
        key.update(bytes.fromhex(str(getattr(project, name).contract_type.deployment_bytecode.bytecode)[2:]))
    for part in (build, Builder, Encoder, _cid, _address, _new_slots):
        key.update(inspect.getsource(part).encode())
    key.update(json.dumps([options.events, options.rounds, options.hospitals, HOSPITALS, DOCTORS]).encode())
    key.update(subprocess.run(["anvil", "--version"], capture_output=True, text=True).stdout.encode())
    return HISTORY_FOLDER / f"{key.hexdigest()[:24]}.json"


def _save_history(chain, path: Path, built: dict) -> None:
    """The built chain (anvil's state dump, gzipped: every block, transaction and log) beside what the
    build measured, so a later run measures the same figures on the same chain without building it."""
    state = chain.provider.make_request("anvil_dumpState", [])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".state.gz").write_bytes(bytes.fromhex(str(state)[2:]))
    path.write_text(json.dumps({**built, "record": built["record"].hex()}))  # last: the pair is complete


def _unpacked(path: Path, folder: Path) -> Path:
    """The saved chain as the JSON file anvil's ``--load-state`` reads."""
    import gzip
    import shutil

    state = folder / "state.json"
    with gzip.open(path.with_suffix(".state.gz")) as packed, open(state, "wb") as unpacked:
        shutil.copyfileobj(packed, unpacked, 1 << 20)
    return state


def _median_ms(call, times: int = 20) -> float:
    call()  # warm
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(samples), 2)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--sync-child":
        _child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(prog="./run bench scale")
    parser.add_argument("--events", type=int, default=200_000, help="MedicalAccess events to build (default 200,000)")
    parser.add_argument("--rounds", type=int, default=100, help="rounds of the study (default 100)")
    parser.add_argument("--hospitals", type=int, default=50, help="hospitals in the study (default 50)")
    parser.add_argument("--rebuild", action="store_true",
                        help="build the history even if one of these contracts and options is saved under .cache/")
    options = parser.parse_args()
    if options.events < 1000 or options.rounds < 1 or not 2 <= options.hospitals <= 256:
        parser.error("--events at least 1,000; --rounds at least 1; --hospitals from 2 to 256")

    from ape import accounts, chain, networks, project
    from ape.logging import logger

    from offchain.chain.access import AccessClient
    from offchain.rounds.client import RoundsClient

    from offchain.chain.localchain import DEFAULT_CHAIN_ID, throwaway

    logger.set_level("WARNING")
    # Our own anvil (as `medshare chain up` runs it): the one Ape starts traces every step, which
    # makes a block of thousands of calls take many seconds.
    saved = _history_file(project, options)
    reuse = saved.exists() and not options.rebuild
    with tempfile.TemporaryDirectory() as work, throwaway(
            DEFAULT_CHAIN_ID, Path(work) / "anvil.log", load_state=_unpacked(saved, Path(work)) if reuse else None
    ) as node, networks.parse_network_choice("ethereum:local:foundry", {"host": node}):
        admin = accounts.test_accounts[0]
        if reuse:
            built = {**json.loads(saved.read_text()), "loaded": True}
            built["record"] = bytes.fromhex(built["record"])
            access = project.MedicalAccess.at(built["access"], fetch_from_explorer=False, detect_proxy=False)
            print(f"history loaded from {saved.relative_to(ROOT)} (built in {built['build_s']:.0f}s)", file=sys.stderr)
        else:
            access = admin.deploy(project.MedicalAccess, admin)
            deploy_block = chain.blocks.height
            started = time.perf_counter()
            print(f"deployed; building the history ({options.events:,} events)...", file=sys.stderr)
            built = build(access, project.RoundRegistry, admin, options.events, options.rounds, options.hospitals)
            built.update(access=access.address, deploy_block=deploy_block, build_s=time.perf_counter() - started)
            _save_history(chain, saved, built)
        deploy_block, build_s = built["deploy_block"], built["build_s"]
        url = chain.provider.web3.provider.endpoint_uri
        child = subprocess.run(
            [sys.executable, __file__, "--sync-child", url, work, str(chain.chain_id),
             f"MedicalAccess:{access.address}:{deploy_block}",
             f"RoundRegistry:{built['registry']}:{built['registry_block']}"],
            capture_output=True, text=True, timeout=3600)
        if child.returncode != 0:
            raise SystemExit(f"the sync process failed:\n{child.stderr}")
        if os.environ.get("BENCH_PROFILE"):
            print(child.stderr, file=sys.stderr)
        synced = json.loads(child.stdout.strip().splitlines()[-1])
        access_events, registry_events = synced["events"]
        database = Path(work) / "events" / str(chain.chain_id) / f"{access.address.lower()}.sqlite"
        index_mib = sum(p.stat().st_size for p in database.parent.glob(database.name + "*")) / 2**20

        folder = Path(work)
        client = AccessClient(access, admin, from_block=deploy_block, cache_folder=folder)
        rounds_client = RoundsClient(project.RoundRegistry.at(built["registry"], fetch_from_explorer=False, detect_proxy=False), admin,
                                     from_block=built["registry_block"], cache_folder=folder)
        hospital, record = built["hospital"], built["record"]
        versions = client.record_versions(hospital)
        if os.environ.get("BENCH_PROFILE"):
            import cProfile
            import pstats
            profile = cProfile.Profile()
            profile.enable()
            for _ in range(5):
                client.record_versions(hospital)
            profile.disable()
            pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
        figures = {
            "events": access_events,
            "registry_events": registry_events,
            "build_s": round(build_s, 1),
            "history_reused": built.get("loaded", False),
            "cold_sync_s": round(synced["cold_sync_s"], 2),
            "cold_sync_events_per_s": round((access_events + registry_events) / synced["cold_sync_s"]),
            "cold_sync_cpu_s": round(synced["cold_sync_cpu_s"], 2),
            "cold_sync_events_per_cpu_s": round((access_events + registry_events) / synced["cold_sync_cpu_s"]),
            "load_avg_1m": round(synced["load_avg_1m"], 2),
            "incremental_sync_ms": round(synced["incremental_sync_ms"], 2),
            "peak_rss_mib": round(synced["peak_rss_mib"], 1),
            "index_mib": round(index_mib, 1),
            "owner_records": len(versions),
            "q_owner_records_ms": _median_ms(lambda: client.record_versions(hospital)),
            "q_record_grants_ms": _median_ms(lambda: client.granted_users(record)),
            "q_audit_trail_ms": _median_ms(lambda: client.audit_trail(record)),
            "q_study_status_ms": _median_ms(
                lambda: (rounds_client.study(1), rounds_client.round(1, options.rounds),
                         rounds_client.__dict__.pop("_final_updates", None),
                         rounds_client.__dict__.pop("_once", None))),
            "enrol_gas_marginal": built["figures"]["enrol_gas_marginal"],
            **year_model(built),
        }
    targets = {"cold_sync_events_per_s": (">=", 20_000), "incremental_sync_ms": ("<=", 50),
               "peak_rss_mib": ("<=", 300), "q_owner_records_ms": ("<=", 50), "q_record_grants_ms": ("<=", 50),
               "q_audit_trail_ms": ("<=", 50), "q_study_status_ms": ("<=", 50), "enrol_gas_marginal": ("<=", 60_000)}
    print(f"history: {access_events:,} MedicalAccess events ({built['units']:,} patients and records), "
          f"{registry_events:,} RoundRegistry events ({options.rounds} rounds of {options.hospitals} hospitals), "
          f"built in {build_s:.0f}s" + (" (saved, loaded into anvil)" if built.get("loaded") else ""))
    for name, (sense, target) in targets.items():
        value = figures[name]
        ok = value is not None and (value >= target if sense == ">=" else value <= target)
        print(f"{name:<24} {value!s:>12} target {sense} {target:,}  {'ok' if ok else 'MISSED'}")
    print(f"year: {figures['year_gas']:,} gas, {figures['year_state_slots']:,} new slots; POL at 25/30/100 gwei: "
          f"{figures['year_cost_pol_25gwei']:,} / {figures['year_cost_pol_30gwei']:,} / "
          f"{figures['year_cost_pol_100gwei']:,}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
