"""Stateful property test: random policy changes on anvil against a plain Python model of the policy.

Transactions go into blocks as on a public chain: anvil's automine is off, each step queues its
transaction into the pending block, and a block is mined when the machine says so (or holds
``MAX_BLOCK_TXS``), so a role's loss, a revocation, a grant and a held-back signature can share one
block. The readers hold several reading roles and gain and lose any of them. Steps: grants (single,
batch, or the patient's EIP-712 signature relayed by anyone, at once or held back), cancelled
signatures, revocation, consent, break-glass, key shares, rotation, retirement, registration, pause,
and ``multicall`` of several steps by one sender, which lands whole or not at all.

After every block each transaction must have succeeded, or failed with the custom error the model
predicts (read from the transaction's trace), and ``checkAccess`` for every (user, record) pair must
equal the model's answer.

The model states the policy in its own terms: every grant, consent and break-glass opening remembers
the block it was made in, and is void when the user lost a reading role in that block or later. Each
block's timestamp is set when it is mined, so the model knows the time of every transaction.

Steps talk JSON-RPC to the session's anvil directly (anvil signs for its dev accounts): Ape's
transaction path costs ~150 ms and its revert path ~1 s (it renders a call trace).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

from eth_utils import keccak
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from conftest import make_cid, record_id

DOCTOR, RESEARCHER, EMERGENCY = "DOCTOR_ROLE", "RESEARCHER_ROLE", "EMERGENCY_ROLE"
READING_ROLES = (DOCTOR, RESEARCHER, EMERGENCY)
# The readers' roles at the start: the last reader starts with none (a stranger).
INITIAL_ROLES = ({DOCTOR}, {RESEARCHER}, {EMERGENCY}, set())
# Three records at the start; a fourth id names no record until the `register` step registers it.
MAX_RECORDS = 4
MAX_BLOCK_TXS = 5
REASON = b"\x07" * 32
GAS = 1_000_000
MAX_EMERGENCY_OPENINGS = 3
EMERGENCY_COOLDOWN = 24 * 3600
FAR_DEADLINE = 2**40
WRAPPED_KEY = b"\x5a" * 95

users = st.integers(0, len(INITIAL_ROLES) - 1)
records = st.sampled_from([0, 0, 1, 1, 2, 2, 3])
durations = st.integers(60, 3 * 24 * 3600)
emergency_durations = st.integers(60, 12 * 3600)
# 0 withdraws consent; otherwise the consent lasts this many seconds.
consent_durations = st.one_of(st.just(0), durations)
# Who receives a key share: a reader (by index), or the record's owner or patient.
share_targets = st.lists(st.one_of(users, st.sampled_from(["owner", "patient"])), min_size=1, max_size=3)
# Most blocks follow each other by a second; some after hours or days, so that grants expire.
block_gaps = st.one_of(st.just(1), st.integers(1, 2 * 24 * 3600))
rare = st.integers(0, 3)  # 0: one draw in four
# Pausing and retiring shut pairs off (retiring for good): the search finds more when most steps
# leave the policy open.
rarer = st.integers(0, 7)


# -- the model ---------------------------------------------------------------------------------------


@dataclass
class Pair:
    """One (user, record) pair: each part with the block it was last changed in."""

    expiry: int = 0
    granted_at: int = 0  # block of the last grant or revocation
    for_doctor: bool = False  # granted while the user held the doctor role
    consent_expiry: int = 0
    consent_at: int = 0
    emergency_expiry: int = 0  # the closing time, once closed
    emergency_at: int = 0
    emergency_closed_by_other: bool = False
    emergency_openings: int = 0


@dataclass
class Record:
    version: int = 1
    retired: bool = False


@dataclass
class Model:
    """The policy as the issue states it, as of the pending block ``block`` at time ``now``."""

    roles: list[set[str]]
    lost_at: list[int]  # per user: the block of the last loss of a reading role (0: never)
    block: int
    now: int
    paused: bool = False
    records: list[Record] = field(default_factory=list)
    pairs: dict[tuple[int, int], Pair] = field(default_factory=dict)
    used_nonces: set[int] = field(default_factory=set)

    def pair(self, user: int, record: int) -> Pair:
        return self.pairs.setdefault((user, record), Pair())

    def record_error(self, record: int) -> str | None:
        if record >= len(self.records):
            return "UnknownRecord"
        return "RecordIsRetired" if self.records[record].retired else None

    def may_read(self, user: int, record: int, now: int) -> bool:
        if self.paused or self.record_error(record):
            return False
        roles, pair, lost = self.roles[user], self.pair(user, record), self.lost_at[user]
        if pair.expiry > now and pair.granted_at > lost:
            if pair.for_doctor and DOCTOR in roles:
                return True
            if pair.consent_expiry > now and pair.consent_at > lost and RESEARCHER in roles:
                return True
        return pair.emergency_expiry > now and pair.emergency_at > lost and EMERGENCY in roles

    # Each step returns the custom error it fails with, or None after applying itself. A step that
    # fails may have changed the model half-way: callers apply steps to a copy (see `Machine._queue`).

    def grant(self, record: int, grantees: list[int], expiry: int, by_patient: bool) -> str | None:
        error = "EnforcedPause" if self.paused else self.record_error(record)
        if error:
            return error
        for user in grantees:
            if not self.roles[user] & {DOCTOR, RESEARCHER}:
                return "GranteeCannotRead"
            pair = self.pair(user, record)
            pair.expiry, pair.granted_at, pair.for_doctor = expiry, self.block, DOCTOR in self.roles[user]
            if by_patient:
                pair.consent_expiry, pair.consent_at = expiry, self.block
        return None

    def grant_by_signature(self, record: int, user: int, expiry: int, nonce: int, issued: int) -> str | None:
        if self.paused:
            return "EnforcedPause"
        error = self.record_error(record)
        if error:
            return error
        if nonce in self.used_nonces:
            return "NonceAlreadyUsed"
        pair = self.pair(user, record)
        if issued < pair.granted_at or issued < pair.consent_at or issued < self.lost_at[user]:
            return "SignatureSuperseded"
        if expiry <= self.now:
            return "ExpiryNotInFuture"
        self.used_nonces.add(nonce)
        return self.grant(record, [user], expiry, by_patient=True)

    def cancel_signature(self, nonce: int) -> str | None:
        if nonce in self.used_nonces:
            return "NonceAlreadyUsed"
        self.used_nonces.add(nonce)
        return None

    def revoke(self, record: int, user: int) -> str | None:
        error = self.record_error(record)
        if error is None and self.pair(user, record).expiry == 0:
            error = "NoGrant"  # a grant voided by a role loss is still there to revoke
        if error:
            return error
        pair = self.pair(user, record)
        pair.expiry, pair.for_doctor, pair.consent_expiry = 0, False, 0
        pair.granted_at = pair.consent_at = self.block
        return None

    def consent(self, record: int, user: int, expiry: int, by_patient: bool) -> str | None:
        if expiry and self.paused:
            return "EnforcedPause"
        error = self.record_error(record)
        if error:
            return error
        if not by_patient:
            return "NotRecordPatient"
        if expiry and RESEARCHER not in self.roles[user]:
            return "NotAResearcher"
        pair = self.pair(user, record)
        pair.consent_expiry, pair.consent_at = expiry, self.block
        return None

    def open_emergency(self, record: int, user: int, duration: int) -> str | None:
        error = "EnforcedPause" if self.paused else self.record_error(record)
        if error:
            return error
        pair = self.pair(user, record)
        if EMERGENCY not in self.roles[user]:
            return "AccessControlUnauthorizedAccount"
        if pair.emergency_openings >= MAX_EMERGENCY_OPENINGS:
            return "EmergencyOpeningsExhausted"
        if pair.emergency_closed_by_other and self.now < pair.emergency_expiry + EMERGENCY_COOLDOWN:
            return "EmergencyCooldown"
        pair.emergency_expiry, pair.emergency_at = self.now + duration, self.block
        pair.emergency_openings += 1
        pair.emergency_closed_by_other = False
        return None

    def close_emergency(self, record: int, user: int, by_other: bool) -> str | None:
        error = self.record_error(record)
        if error:
            return error
        pair = self.pair(user, record)
        if pair.emergency_expiry <= self.now or pair.emergency_at <= self.lost_at[user]:
            return "NoEmergencyAccess"
        pair.emergency_expiry, pair.emergency_closed_by_other = self.now, by_other
        return None

    def share(self, record: int, version: int, targets: list, by_patient: bool) -> str | None:
        error = self.record_error(record)
        if error:
            return error
        if version != self.records[record].version:
            return "StaleRecordVersion"
        for target in targets:
            if target == "owner":
                if by_patient:
                    return "MayNotShareWith"
            elif target != "patient" and not self.may_read(target, record, self.now):
                return "NotAReader"
        return None

    def rotate(self, record: int, by_patient: bool) -> str | None:
        error = self.record_error(record) or ("NotRecordOwner" if by_patient else None)
        if error:
            return error
        self.records[record].version += 1
        return None

    def retire(self, record: int) -> str | None:
        error = self.record_error(record)
        if error:
            return error
        self.records[record].retired = True
        return None

    def register(self) -> str | None:
        if self.paused:
            return "EnforcedPause"
        self.records.append(Record())
        return None

    def set_role(self, user: int, role: str, give: bool) -> str | None:
        if give:
            if self.paused:
                return "EnforcedPause"
            self.roles[user].add(role)
        elif role in self.roles[user]:  # allowed while paused; taking a role not held changes nothing
            self.roles[user].discard(role)
            self.lost_at[user] = self.block
        return None


# -- the chain ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One contract call: its encoded data and its effect on the model."""

    data: bytes
    effect: Callable[[Model], str | None]


@dataclass(frozen=True)
class Queued:
    tx_hash: bytes
    error: str | None
    what: str


@dataclass(frozen=True)
class HeldSignature:
    """A patient's signed grant not relayed yet."""

    record: int
    user: int
    expiry: int
    nonce: int
    issued: int
    signature: bytes


class Chain:
    """The session's anvil over plain JSON-RPC, with automine off: transactions wait for `mine`."""

    def __init__(self, contract, web3):
        self.contract, self.web3 = contract, web3
        self.error_selectors = {keccak(text=e.selector)[:4]: e.name for e in contract.contract_type.errors}

    def rpc(self, method: str, params: list):
        response = self.web3.provider.make_request(method, params)
        assert "error" not in response, (method, response)
        return response["result"]

    def encode(self, method: str, *args) -> bytes:
        return bytes(getattr(self.contract, method).encode_input(*args))

    def send(self, data: bytes, sender) -> bytes:
        return self.web3.eth.send_transaction(
            {"from": sender.address, "to": self.contract.address, "data": data, "gas": GAS}
        )

    def revert_error(self, tx_hash: bytes) -> str:
        trace = self.rpc("debug_traceTransaction", ["0x" + bytes(tx_hash).hex(), {"tracer": "callTracer"}])
        output = bytes.fromhex(trace.get("output", "0x")[2:])
        return self.error_selectors.get(output[:4], f"unknown revert data 0x{output.hex()}")

    def check_access(self, user, record: bytes, block: int) -> bool:
        data = self.contract.checkAccess.encode_input(user, record)
        return int.from_bytes(self.web3.eth.call({"to": self.contract.address, "data": data}, block), "big") == 1


class PolicyMachine(RuleBasedStateMachine):
    # Set by the test before running: the chain, the snapshotting Ape chain and the named accounts.
    raw: Chain = None
    ape_chain = hospital = patient = guardian = admin = relayer = signer = None
    readers: tuple = ()

    def __init__(self):
        super().__init__()
        self.snapshot = self.ape_chain.snapshot()
        self.raw.rpc("evm_setAutomine", [False])
        latest = self.raw.web3.eth.get_block("latest")
        self.mined_block, self.mined_time = latest["number"], latest["timestamp"]
        self.model = Model(roles=[set(roles) for roles in INITIAL_ROLES], lost_at=[0] * len(INITIAL_ROLES),
                           block=self.mined_block + 1, now=self.mined_time + 1)
        self.record_ids: list[bytes] = []
        self.pending: list[Queued] = []
        self.held: list[HeldSignature] = []
        self.next_cid = 1000
        self.next_nonce = 1

    def teardown(self):
        try:
            if self.pending:
                self.raw.rpc("evm_mine", [self.model.now])
        finally:
            self.ape_chain.restore(self.snapshot)
            self.raw.rpc("evm_setAutomine", [True])

    # -- helpers ---------------------------------------------------------------------------------
    def _record_id(self, record: int) -> bytes:
        return self.record_ids[record] if record < len(self.record_ids) else (999).to_bytes(32, "big")

    def _queue(self, what: str, calls: list[Call], sender, *, multicall: bool = False) -> None:
        """Send ``calls`` from ``sender`` into the pending block (several as one ``multicall``).

        The model runs them on a copy, as the contract will: kept when all pass, dropped at the first
        failure (the transaction reverts whole with that error)."""
        scratch = copy.deepcopy(self.model)
        error = next((e for e in (call.effect(scratch) for call in calls) if e), None)
        if error is None:
            self.model = scratch
        data = self.raw.encode("multicall", [c.data for c in calls]) if multicall else calls[0].data
        self.pending.append(Queued(self.raw.send(data, sender), error, what))
        if len(self.pending) >= MAX_BLOCK_TXS:
            self._mine(1)

    def _mine(self, gap: int) -> None:
        """Mine the pending block at the model's time; check every transaction and every pair."""
        block, now = self.model.block, self.model.now
        self.raw.rpc("evm_mine", [now])
        mined = self.raw.web3.eth.get_block("latest")
        assert (mined["number"], mined["timestamp"]) == (block, now)
        assert [bytes(h) for h in mined["transactions"]] == [bytes(q.tx_hash) for q in self.pending], \
            "the block holds the transactions in another order than they were sent"
        for queued in self.pending:
            status = self.raw.web3.eth.get_transaction_receipt(queued.tx_hash)["status"]
            actual = None if status == 1 else self.raw.revert_error(queued.tx_hash)
            assert actual == queued.error, f"{queued.what}: expected {queued.error or 'success'}, got {actual or 'success'}"
        self.pending = []
        for record, rid in enumerate(self.record_ids):
            for user, reader in enumerate(self.readers):
                expected = self.model.may_read(user, record, now)
                assert self.raw.check_access(reader, rid, block) == expected, (user, record, self.model)
        self.mined_block, self.mined_time = block, now
        self.model.block, self.model.now = block + 1, now + gap

    def _pick(self, data, roles: set[str]) -> int:
        """A reader, most often one holding one of ``roles`` now (so that most steps reach the policy)."""
        holders = [u for u, held in enumerate(self.model.roles) if held & roles]
        if holders and data.draw(rare):
            return data.draw(st.sampled_from(holders))
        return data.draw(users)

    def _sign(self, record: int, user: int, duration: int) -> HeldSignature:
        """The patient's signed grant, issued seeing the latest mined block; kept to relay now or later."""
        nonce, self.next_nonce = self.next_nonce, self.next_nonce + 1
        expiry = self.model.now + duration
        message = {"record": self._record_id(record), "grantee": self.readers[user].address, "expiry": expiry,
                   "nonce": nonce, "issuedBlock": self.mined_block, "deadline": FAR_DEADLINE}
        held = HeldSignature(record, user, expiry, nonce, self.mined_block,
                             self.signer.sign(self.patient, "Grant", message))
        self.held.append(held)
        return held

    def _set_role(self, user: int, role: str, give: bool) -> Call:
        data = self.raw.encode("grantRole" if give else "revokeRole", keccak(text=role), self.readers[user].address)
        return Call(data, lambda m: m.set_role(user, role, give))

    # -- calls -----------------------------------------------------------------------------------
    def _grant(self, record: int, grantees: list[int], duration: int, by_patient: bool, batch: bool) -> Call:
        expiry = self.model.now + duration
        addresses = [self.readers[u].address for u in grantees]
        rid = self._record_id(record)
        data = (self.raw.encode("grantAccessBatch", rid, addresses, expiry) if batch
                else self.raw.encode("grantAccess", rid, addresses[0], expiry))
        return Call(data, lambda m: m.grant(record, grantees, expiry, by_patient))

    def _revoke(self, record: int, user: int) -> Call:
        data = self.raw.encode("revokeAccess", self._record_id(record), self.readers[user].address)
        return Call(data, lambda m: m.revoke(record, user))

    def _consent(self, record: int, user: int, duration: int, by_patient: bool) -> Call:
        expiry = self.model.now + duration if duration else 0
        data = self.raw.encode("setConsent", self._record_id(record), self.readers[user].address, expiry)
        return Call(data, lambda m: m.consent(record, user, expiry, by_patient))

    def _share(self, record: int, targets: list, by_patient: bool, stale: bool, model: Model) -> Call:
        version = (model.records[record].version if record < len(model.records) else 1) - int(stale)
        addresses = [self.hospital.address if t == "owner" else self.patient.address if t == "patient"
                     else self.readers[t].address for t in targets]
        data = self.raw.encode("shareDataKeys", self._record_id(record), version, addresses,
                               [WRAPPED_KEY] * len(addresses))
        return Call(data, lambda m: m.share(record, version, targets, by_patient))

    def _rotate(self, record: int, by_patient: bool) -> Call:
        self.next_cid += 1
        data = self.raw.encode("rotateRecord", self._record_id(record), make_cid(self.next_cid))
        return Call(data, lambda m: m.rotate(record, by_patient))

    def _relay(self, held: HeldSignature) -> Call:
        data = self.raw.encode("grantAccessBySig", self._record_id(held.record), self.readers[held.user].address,
                               held.expiry, held.nonce, held.issued, FAR_DEADLINE, held.signature)
        return Call(data, lambda m: m.grant_by_signature(held.record, held.user, held.expiry, held.nonce, held.issued))

    # -- rules -----------------------------------------------------------------------------------
    @initialize()
    def three_records(self):
        """Start with records to act on, so that most steps reach the policy rather than UnknownRecord."""
        for _ in range(MAX_RECORDS - 1):
            self.register()
        self._mine(1)

    @rule()
    def register(self):
        if len(self.record_ids) == MAX_RECORDS:
            return
        self.next_cid += 1
        cid = make_cid(self.next_cid)
        if not self.model.paused:  # the record's id is known before its block is mined
            self.record_ids.append(record_id(self.hospital, cid))
        self._queue("register", [Call(self.raw.encode("registerRecord", cid, self.patient.address),
                                      lambda m: m.register())], self.hospital)

    @rule(record=records, by_patient=st.booleans(), duration=durations, data=st.data())
    def grant(self, record, by_patient, duration, data):
        user = self._pick(data, {DOCTOR, RESEARCHER})
        sender = self.patient if by_patient else self.hospital
        self._queue("grant", [self._grant(record, [user], duration, by_patient, batch=False)], sender)

    @rule(record=records, grantees=st.lists(users, min_size=1, max_size=3), by_patient=st.booleans(),
          duration=durations)
    def grant_batch(self, record, grantees, by_patient, duration):
        sender = self.patient if by_patient else self.hospital
        self._queue("grant batch", [self._grant(record, grantees, duration, by_patient, batch=True)], sender)

    @rule(record=records, user=users, by_patient=st.booleans())
    def revoke(self, record, user, by_patient):
        self._queue("revoke", [self._revoke(record, user)], self.patient if by_patient else self.hospital)

    @rule(record=records, duration=consent_durations, data=st.data())
    def consent(self, record, duration, data):
        user = self._pick(data, {RESEARCHER})
        self._queue("consent", [self._consent(record, user, duration, by_patient=True)], self.patient)

    @rule(record=records, duration=emergency_durations, data=st.data())
    def open_emergency(self, record, duration, data):
        self._open_emergency(record, self._pick(data, {EMERGENCY}), duration)

    def _open_emergency(self, record: int, user: int, duration: int) -> None:
        data = self.raw.encode("openEmergencyAccess", self._record_id(record), REASON, duration)
        self._queue("open break-glass", [Call(data, lambda m: m.open_emergency(record, user, duration))],
                    self.readers[user])

    @rule(record=records, by_self=st.booleans(), data=st.data())
    def close_emergency(self, record, by_self, data):
        user = self._pick(data, {EMERGENCY})
        data = self.raw.encode("closeEmergencyAccess", self._record_id(record), self.readers[user].address)
        self._queue("close break-glass", [Call(data, lambda m: m.close_emergency(record, user, not by_self))],
                    self.readers[user] if by_self else self.patient)

    @rule(record=records, readers=share_targets, by_patient=st.booleans(), stale=rare)
    def share_keys(self, record, readers, by_patient, stale):
        call = self._share(record, readers, by_patient, stale == 0, self.model)
        self._queue("share keys", [call], self.patient if by_patient else self.hospital)

    @rule(record=records)
    def rotate(self, record):
        self._queue("rotate", [self._rotate(record, by_patient=False)], self.hospital)

    @rule(record=records, roll=rarer)
    def retire(self, record, roll):
        if roll:
            return
        data = self.raw.encode("retireRecord", self._record_id(record))
        self._queue("retire", [Call(data, lambda m: m.retire(record))], self.hospital)

    @rule(user=users, role=st.sampled_from(READING_ROLES))
    def toggle_role(self, user, role):
        """Give or take one reading role: readers come to hold several, and lose any of them."""
        give = role not in self.model.roles[user]
        self._queue(f"{'give' if give else 'take'} {role}", [self._set_role(user, role, give)], self.admin)

    @rule(user=users, out=st.sampled_from(READING_ROLES), into=st.sampled_from(READING_ROLES))
    def swap_role(self, user, out, into):
        """The admin takes one reading role and gives one (perhaps the same) in one multicall."""
        calls = [self._set_role(user, out, give=False), self._set_role(user, into, give=True)]
        self._queue(f"swap {out} for {into}", calls, self.admin, multicall=True)

    @rule(record=records, data=st.data())
    def one_block_for_one_reader(self, record, data):
        """Steps about one reader and one record in one block, in any order: grants (by the owner, by
        the patient, by a signature issued before the block), revocation, consent, break-glass, and
        the reader's roles taken and given. What a role loss voids stays void in its own block."""
        if self.pending:
            self._mine(1)
        user = data.draw(users)
        steps = st.sampled_from(["grant", "grant by patient", "relay", "revoke", "consent", "open break-glass",
                                 "take role", "give role"])
        for kind in data.draw(st.lists(steps, min_size=2, max_size=MAX_BLOCK_TXS - 1)):
            if kind.startswith("grant"):
                by_patient = kind == "grant by patient"
                self._queue(kind, [self._grant(record, [user], data.draw(durations), by_patient, batch=False)],
                            self.patient if by_patient else self.hospital)
            elif kind == "relay":
                self._queue(kind, [self._relay(self._sign(record, user, data.draw(durations)))], self.relayer)
            elif kind == "revoke":
                self._queue(kind, [self._revoke(record, user)], self.hospital)
            elif kind == "consent":
                self._queue(kind, [self._consent(record, user, data.draw(consent_durations), True)], self.patient)
            elif kind == "open break-glass":
                self._open_emergency(record, user, data.draw(emergency_durations))
            else:
                give = kind == "give role"
                role = data.draw(st.sampled_from(READING_ROLES))
                self._queue(f"{kind} {role}", [self._set_role(user, role, give)], self.admin)
        self._mine(data.draw(block_gaps))

    @rule(roll=rare)
    def toggle_pause(self, roll):
        if roll > (1 if self.model.paused else 0):  # pauses stay short: most steps run unpaused
            return
        method = "unpause" if self.model.paused else "pause"

        def effect(m: Model) -> str | None:
            m.paused = not m.paused
            return None

        self._queue(method, [Call(self.raw.encode(method), effect)], self.guardian)

    @rule(record=records, duration=durations, data=st.data())
    def sign_grant(self, record, duration, data):
        """The patient signs a grant seeing the latest mined block; it is relayed now or held back."""
        self._sign(record, self._pick(data, {DOCTOR, RESEARCHER}), duration)

    @rule(data=st.data())
    def relay_signature(self, data):
        if self.held:
            held = data.draw(st.sampled_from(self.held))
            self._queue("relay signed grant", [self._relay(held)], self.relayer)

    @rule(data=st.data())
    def cancel_signature(self, data):
        if self.held:
            nonce = data.draw(st.sampled_from(self.held)).nonce
            self._queue("cancel signature", [Call(self.raw.encode("cancelSignature", nonce),
                                                  lambda m: m.cancel_signature(nonce))], self.patient)

    @rule(by_patient=st.booleans(), data=st.data())
    def multicall(self, by_patient, data):
        """Several steps by one sender in one transaction: a grant and its key share, a revocation
        and a rotation and the re-share, a relayed signature... Any failure reverts them all."""
        sender = self.patient if by_patient else self.hospital
        kinds = ["grant", "revoke", "share"] + (["consent"] if by_patient else ["rotate"] * 2 + ["relay"] * len(self.held[:1]))
        scratch = copy.deepcopy(self.model)  # to share the version that earlier steps leave
        calls = []
        # One record and reader for most steps, as a front end's multicall has (grant and share, ...).
        record, user = data.draw(records), self._pick(data, {DOCTOR, RESEARCHER})
        for kind in data.draw(st.lists(st.sampled_from(kinds), min_size=2, max_size=4)):
            if not data.draw(rare):
                record, user = data.draw(records), data.draw(users)
            if kind == "grant":
                call = self._grant(record, [user], data.draw(durations), by_patient, batch=False)
            elif kind == "revoke":
                call = self._revoke(record, user)
            elif kind == "share":
                readers = data.draw(st.one_of(st.just([user]), st.just(["owner", "patient", user]), share_targets))
                call = self._share(record, readers, by_patient, data.draw(rare) == 0, scratch)
            elif kind == "rotate":
                call = self._rotate(record, by_patient)
            elif kind == "consent":
                call = self._consent(record, user, data.draw(consent_durations), by_patient)
            else:
                call = self._relay(data.draw(st.sampled_from(self.held)))
            call.effect(scratch)
            calls.append(call)
        self._queue("multicall", calls, sender, multicall=True)

    @rule(gap=block_gaps)
    def mine(self, gap):
        self._mine(gap)


def test_check_access_matches_the_policy_model(
    access, chain, patient_signer, admin, hospital, patient, guardian, other_hospital, doctor, researcher, medic,
    stranger,
):
    PolicyMachine.raw = Chain(access, chain.provider.web3)
    PolicyMachine.ape_chain = chain
    PolicyMachine.admin, PolicyMachine.hospital, PolicyMachine.patient = admin, hospital, patient
    PolicyMachine.guardian, PolicyMachine.relayer, PolicyMachine.signer = guardian, other_hospital, patient_signer
    PolicyMachine.readers = (doctor, researcher, medic, stranger)
    run_state_machine_as_test(
        PolicyMachine,
        settings=settings(
            max_examples=20,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
