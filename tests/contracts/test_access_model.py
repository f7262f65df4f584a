"""Stateful property test: random policy changes on anvil against a plain Python model of the policy.

After every step, ``checkAccess`` for every (user, record) pair must equal the model's answer, and
every refused step must fail with the custom error the model predicts.

Steps talk JSON-RPC to the session's anvil directly (anvil signs for its dev accounts): Ape's
transaction path costs ~150 ms and its revert path ~1 s (it renders a call trace), which would
make a few hundred random steps take many minutes.
"""

from dataclasses import dataclass, field

import pytest
from eth_utils import keccak
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from web3.exceptions import ContractCustomError

from conftest import make_cid, record_id

# Reader i holds READING_ROLES[i] at the start.
READING_ROLES = ("DOCTOR_ROLE", "RESEARCHER_ROLE", "EMERGENCY_ROLE")
MAX_RECORDS = 3
REASON = b"\x07" * 32
# Steer clear of expiries within this many seconds of the next block, whose exact timestamp the
# test cannot know in advance.
TIME_MARGIN = 5
GAS = 1_000_000

users = st.integers(0, 2)
records = st.integers(0, MAX_RECORDS - 1)
durations = st.integers(60, 3 * 24 * 3600)
emergency_durations = st.integers(60, 12 * 3600)
# 0 withdraws consent; otherwise the consent lasts this many seconds.
consent_durations = st.one_of(st.just(0), durations)
MAX_EMERGENCY_OPENINGS = 3
EMERGENCY_COOLDOWN = 24 * 3600
GRANTABLE_ROLES = {"DOCTOR_ROLE", "RESEARCHER_ROLE"}
# Pausing and retiring act on one draw in four: each shuts every pair off, and the search finds more
# when most steps leave the policy open.
rare = st.integers(0, 3)


@dataclass
class Access:
    """The model of one (user, record) pair. A part voided by a role loss keeps its stored values."""

    expiry: int = 0
    for_doctor: bool = False
    grant_void: bool = False
    consent_expiry: int = 0
    consent_void: bool = False
    emergency_expiry: int = 0
    emergency_void: bool = False
    emergency_openings: int = 0
    reopen_after: int = 0  # set when the patient closes break-glass access: the cooldown's end


@dataclass
class Model:
    """The policy as the issue states it, without any of the contract's storage tricks."""

    user_roles: list[set[str]]
    paused: bool = False
    retired: list[bool] = field(default_factory=list)
    access: dict[tuple[int, int], Access] = field(default_factory=dict)

    def pair(self, user: int, record: int) -> Access:
        return self.access.setdefault((user, record), Access())

    def record_error(self, record: int, *, widens: bool = True) -> str | None:
        """The error a step on ``record`` fails with first; only steps that widen access stop while paused."""
        if self.paused and widens:
            return "EnforcedPause"
        if record >= len(self.retired):
            return "UnknownRecord"
        if self.retired[record]:
            return "RecordIsRetired"
        return None

    def lose_role(self, user: int, role: str) -> None:
        """Losing a reading role voids everything the user was granted."""
        self.user_roles[user].discard(role)
        for (u, _), pair in self.access.items():
            if u == user:
                pair.grant_void = pair.consent_void = pair.emergency_void = True

    def may_read(self, user: int, record: int, now: int) -> bool:
        if self.paused or record >= len(self.retired) or self.retired[record]:
            return False
        roles, pair = self.user_roles[user], self.pair(user, record)
        if pair.expiry > now and not pair.grant_void:
            if pair.for_doctor and "DOCTOR_ROLE" in roles:
                return True
            if pair.consent_expiry > now and not pair.consent_void and "RESEARCHER_ROLE" in roles:
                return True
        return pair.emergency_expiry > now and not pair.emergency_void and "EMERGENCY_ROLE" in roles


class RawContract:
    """Sends, simulates and calls a deployed contract over plain JSON-RPC."""

    def __init__(self, contract, web3):
        self.contract, self.web3 = contract, web3
        self.error_selectors = {e.name: keccak(text=e.selector)[:4] for e in contract.contract_type.errors}

    def _tx(self, method: str, args: tuple, sender) -> dict:
        data = getattr(self.contract, method).encode_input(*args)
        return {"from": sender.address, "to": self.contract.address, "data": data, "gas": GAS}

    def send(self, method: str, *args, sender):
        receipt = self.web3.eth.wait_for_transaction_receipt(self.web3.eth.send_transaction(self._tx(method, args, sender)))
        assert receipt.status == 1, f"{method}{args} reverted"
        return receipt

    def expect_revert(self, error: str, method: str, *args, sender) -> None:
        try:
            self.web3.eth.call(self._tx(method, args, sender))
        except ContractCustomError as err:
            data = bytes.fromhex(err.data[2:] if isinstance(err.data, str) else err.data.hex())
            assert data[:4] == self.error_selectors[error], f"{method}{args} reverted, but not with {error}"
            return
        pytest.fail(f"{method}{args} did not revert with {error}")

    def check_access(self, user, record: bytes) -> bool:
        data = self.contract.checkAccess.encode_input(user, record)
        return int.from_bytes(self.web3.eth.call({"to": self.contract.address, "data": data}), "big") == 1


class PolicyMachine(RuleBasedStateMachine):
    # Set by the test before running: the contract over JSON-RPC, the chain and the named accounts.
    raw: RawContract = None
    chain = hospital = patient = guardian = admin = None
    readers: tuple = ()
    initial_roles: tuple = ()

    def __init__(self):
        super().__init__()
        self.snapshot = self.chain.snapshot()
        self.model = Model(user_roles=[set(roles) for roles in self.initial_roles])
        self.record_ids: list[bytes] = []
        self.next_cid = 1000

    def teardown(self):
        self.chain.restore(self.snapshot)

    # -- helpers -------------------------------------------------------------------------------
    def _record_id(self, record: int) -> bytes:
        return self.record_ids[record] if record < len(self.record_ids) else (999).to_bytes(32, "big")

    def _attempt(self, error: str | None, method: str, *args, sender):
        """Send the call if the model expects it to pass, else check it reverts with ``error``."""
        if error is None:
            return self.raw.send(method, *args, sender=sender)
        self.raw.expect_revert(error, method, *args, sender=sender)
        return None

    def _now(self) -> int:
        return self.raw.web3.eth.get_block("latest")["timestamp"]

    # -- rules ---------------------------------------------------------------------------------
    @initialize()
    def two_records(self):
        """Start with records to act on, so that most steps reach the policy rather than UnknownRecord."""
        self.register()
        self.register()

    @rule()
    def register(self):
        if len(self.record_ids) == MAX_RECORDS:
            return
        self.next_cid += 1
        cid = make_cid(self.next_cid)
        error = "EnforcedPause" if self.model.paused else None
        if self._attempt(error, "registerRecord", cid, self.patient, sender=self.hospital):
            self.record_ids.append(record_id(self.hospital, cid))
            self.model.retired.append(False)

    @rule(record=records, user=users, by_patient=st.booleans(), duration=durations)
    def grant(self, record, user, by_patient, duration):
        self.grant_batch(record, [user], by_patient, duration, batch=False)

    @rule(
        record=records,
        batch_users=st.lists(users, min_size=1, max_size=3),
        by_patient=st.booleans(),
        duration=durations,
        batch=st.just(True),
    )
    def grant_batch(self, record, batch_users, by_patient, duration, batch):
        expiry = self._now() + duration
        granter = self.patient if by_patient else self.hospital
        grantees = [self.readers[u] for u in batch_users]
        rid = self._record_id(record)
        error = self.model.record_error(record)
        if error is None:
            error = next((
                "GranteeCannotRead" for user in batch_users if not self.model.user_roles[user] & GRANTABLE_ROLES
            ), None)
        if batch:
            receipt = self._attempt(error, "grantAccessBatch", rid, grantees, expiry, sender=granter)
        else:
            receipt = self._attempt(error, "grantAccess", rid, grantees[0], expiry, sender=granter)
        if receipt:
            for user in batch_users:
                pair = self.model.pair(user, record)
                pair.expiry, pair.grant_void = expiry, False
                pair.for_doctor = "DOCTOR_ROLE" in self.model.user_roles[user]
                if by_patient:
                    pair.consent_expiry, pair.consent_void = expiry, False

    @rule(record=records, user=users, by_patient=st.booleans())
    def revoke(self, record, user, by_patient):
        error = self.model.record_error(record, widens=False)
        if error is None and self.model.pair(user, record).expiry == 0:
            error = "NoGrant"  # a grant voided by a role loss is still there to revoke
        revoker = self.patient if by_patient else self.hospital
        if self._attempt(error, "revokeAccess", self._record_id(record), self.readers[user], sender=revoker):
            pair = self.model.pair(user, record)
            pair.expiry, pair.consent_expiry = 0, 0

    @rule(record=records, user=users, duration=consent_durations)
    def consent(self, record, user, duration):
        expiry = self._now() + duration if duration else 0
        error = self.model.record_error(record, widens=bool(expiry))
        if error is None and expiry and "RESEARCHER_ROLE" not in self.model.user_roles[user]:
            error = "NotAResearcher"
        rid = self._record_id(record)
        if self._attempt(error, "setConsent", rid, self.readers[user], expiry, sender=self.patient):
            pair = self.model.pair(user, record)
            pair.consent_expiry, pair.consent_void = expiry, False

    @rule(record=records, user=users, duration=emergency_durations)
    def open_emergency(self, record, user, duration):
        error = self.model.record_error(record)
        pair = self.model.pair(user, record)
        if error is None and "EMERGENCY_ROLE" not in self.model.user_roles[user]:
            error = "AccessControlUnauthorizedAccount"
        if error is None and pair.emergency_openings >= MAX_EMERGENCY_OPENINGS:
            error = "EmergencyOpeningsExhausted"
        if error is None and pair.reopen_after:
            now = self._now()
            if now < pair.reopen_after <= now + TIME_MARGIN:
                return
            if now < pair.reopen_after:
                error = "EmergencyCooldown"
        rid = self._record_id(record)
        receipt = self._attempt(error, "openEmergencyAccess", rid, REASON, duration, sender=self.readers[user])
        if receipt:
            opened = self.raw.web3.eth.get_block(receipt.blockNumber)["timestamp"]
            pair.emergency_expiry, pair.emergency_void = opened + duration, False
            pair.emergency_openings += 1
            pair.reopen_after = 0

    @rule(record=records, user=users)
    def close_emergency(self, record, user):
        error = self.model.record_error(record, widens=False)
        pair = self.model.pair(user, record)
        if error is None:
            now = self._now()
            if now < pair.emergency_expiry <= now + TIME_MARGIN:
                return
            if pair.emergency_expiry <= now or pair.emergency_void:
                error = "NoEmergencyAccess"
        rid = self._record_id(record)
        receipt = self._attempt(error, "closeEmergencyAccess", rid, self.readers[user], sender=self.patient)
        if receipt:
            closed = self.raw.web3.eth.get_block(receipt.blockNumber)["timestamp"]
            pair.emergency_expiry, pair.reopen_after = closed, closed + EMERGENCY_COOLDOWN

    @rule(user=users)
    def toggle_role(self, user):
        """Take away or give back the user's reading role (the doctor's, researcher's or medic's)."""
        role = READING_ROLES[user]
        role_id = keccak(text=role)
        reader = self.readers[user]
        if role in self.model.user_roles[user]:
            self.raw.send("revokeRole", role_id, reader, sender=self.admin)  # allowed while paused
            self.model.lose_role(user, role)
        else:
            error = "EnforcedPause" if self.model.paused else None
            if self._attempt(error, "grantRole", role_id, reader, sender=self.admin):
                self.model.user_roles[user].add(role)

    @rule(roll=rare)
    def toggle_pause(self, roll):
        if roll:
            return
        self.raw.send("unpause" if self.model.paused else "pause", sender=self.guardian)
        self.model.paused = not self.model.paused

    @rule(record=records)
    def rotate(self, record):
        self.next_cid += 1
        error = self.model.record_error(record, widens=False)
        self._attempt(error, "rotateRecord", self._record_id(record), make_cid(self.next_cid), sender=self.hospital)

    @rule(record=records, roll=rare)
    def retire(self, record, roll):
        if roll:
            return
        error = self.model.record_error(record, widens=False)
        if self._attempt(error, "retireRecord", self._record_id(record), sender=self.hospital):
            self.model.retired[record] = True

    @rule(seconds=st.integers(1, 2 * 24 * 3600))
    def time_travel(self, seconds):
        self.chain.mine(timestamp=self._now() + seconds)

    @invariant()
    def check_access_matches_model(self):
        now = self._now()
        for record, rid in enumerate(self.record_ids):
            for user, reader in enumerate(self.readers):
                expected = self.model.may_read(user, record, now)
                assert self.raw.check_access(reader, rid) == expected, (user, record, self.model)


def test_check_access_matches_the_policy_model(
    access, chain, admin, hospital, patient, guardian, doctor, researcher, medic
):
    PolicyMachine.raw = RawContract(access, chain.provider.web3)
    PolicyMachine.chain = chain
    PolicyMachine.admin, PolicyMachine.hospital, PolicyMachine.patient = admin, hospital, patient
    PolicyMachine.guardian = guardian
    PolicyMachine.readers = (doctor, researcher, medic)
    PolicyMachine.initial_roles = tuple({role} for role in READING_ROLES)
    run_state_machine_as_test(
        PolicyMachine,
        settings=settings(
            max_examples=30,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
