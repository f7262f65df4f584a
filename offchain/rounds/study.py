"""One member's view of a study: its chain state, its config, and its models, fetched and checked.

Everything a coordinator, a hospital node and an auditor must agree on is
read from the chain (the round registry, and MedicalAccess for roles and
keys) and from the store by the CIDs the chain names, checked against the
SHA-256 the chain holds. Nothing is shared between parties but those two.

Who reads what (:mod:`offchain.rounds.sealed`): an update is sealed for the
study's coordinator and auditors; the genesis model and every aggregate for
the coordinator, the study's participants and its auditors. A study under
secure aggregation keeps its models in the clear instead: each aggregate is
the public sum of masked inputs that anyone may re-derive, and the genesis
model holds no data; so anyone, with no key, can verify its rounds.
"""

from __future__ import annotations

import hashlib
import io
import secrets
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import torch

from fl.artifacts import ArtifactError, decode_artifact, encode_artifact
from fl.entry_points import EntryPointError
from fl.models import BUILTIN_MODELS, ModelSpec
from offchain.chain.access import AccessClient, Role
from offchain.crypto import Keystore
from offchain.ipfs import CID, Store, StoreError
from offchain.rounds.client import ArtifactRef, RoundInfo, RoundsClient, StudyTerms, UpdateInfo
from offchain.rounds.config import StudyConfig, StudyConfigError
from offchain.rounds.errors import ArtifactCheckFailed, RoundsError
from offchain.rounds.privacy import ChainBudget
from offchain.rounds.sealed import AGGREGATE, GENESIS, UPDATE, Place, Reader, open_sealed, seal

# The most samples one update may declare unless the study says otherwise: its weight in the
# weighted average is capped on chain, so no hospital can claim the whole aggregate.
DEFAULT_MAX_SAMPLES = 1_000_000


def study_terms(config: StudyConfig, min_updates: int, max_samples: int | None = None) -> StudyTerms:
    """The terms a study of ``config`` is created with on chain: its quorum, its sample cap (at most
    the secure codec's total weight), its secure aggregation and SecAgg+ graph degree, and a privacy
    budget for each participant when the config gives DP-SGD one."""
    secure = config.secure_aggregation
    if max_samples is None:
        max_samples = DEFAULT_MAX_SAMPLES if secure is None else min(DEFAULT_MAX_SAMPLES, secure.codec.max_total_weight)
    if max_samples < 1:
        raise RoundsError(f"the sample cap must be at least 1, got {max_samples}")
    if secure is not None and max_samples > secure.codec.max_total_weight:
        raise RoundsError(f"the sample cap {max_samples} is over the secure codec's total weight "
                          f"{secure.codec.max_total_weight}: one update could overflow the masked sum")
    budget = {}
    if config.privacy_budget is not None:
        chain_budget = ChainBudget.of(config.privacy_budget)
        budget = dict(budget_hospitals=tuple(config.participants), epsilon_units=chain_budget.epsilon_units,
                      delta_units=chain_budget.delta_units)
    # SecAgg+'s degree is the secure settings' once they name one; 0, the complete graph, until then.
    degree = getattr(secure, "graph_degree", 0) if secure is not None else 0
    return StudyTerms(min_updates, max_samples, secure is not None, degree, **budget)


@dataclass
class Member:
    """A consortium member at work on studies: its chain clients, the store, and its keystore."""

    rounds: RoundsClient
    access: AccessClient
    store: Store
    keystore: Keystore | None

    @property
    def address(self) -> str:
        return self.rounds.address

    def require_keystore(self) -> Keystore:
        if self.keystore is None:
            raise RoundsError(
                f"{self.address} has no keystore here: create it and publish its key with `medshare keys publish`"
            )
        return self.keystore

    def require_role(self, role: Role, what: str, account: str | None = None) -> None:
        account = account or self.address
        if not self.access.roles_of(account) & role:
            raise RoundsError(f"{account} does not hold the {what} role in MedicalAccess {self.access.contract.address}")

    def public_keys(self, accounts: Iterable[str]) -> dict[str, Reader]:
        """Each account's published key, version and suite; refuses an account that published none.

        The key registry's commitments are read in one call each time (a key may have been rotated);
        the key bytes only when a commitment is new to this member.
        """
        accounts = list(dict.fromkeys(accounts))
        cache = self.__dict__.setdefault("_keys", {})
        keys = {}
        for account, commitment in zip(accounts, self.access.encryption_keys_of(accounts)):
            if cache.get(account, (None,))[0] != commitment:
                published = self.access.encryption_key(account)
                if not published.published:
                    raise RoundsError(
                        f"{account} has published no encryption key; they must run `medshare keys publish`")
                cache[account] = (commitment, (published.public_key, published.version, published.suite))
            keys[account] = cache[account][1]
        return keys

    def participants_holding_role(self, accounts: Sequence[str]) -> list[str]:
        """Those of ``accounts`` that hold PARTICIPANT now (what commitAggregate counts), in one call."""
        return [account for account, holds in zip(accounts, self.access.holders_of(accounts, Role.PARTICIPANT))
                if holds]

    @property
    def chain_id(self) -> int:
        return self.rounds.chain_id

    def study(self, study: int) -> Study:
        return Study(self, study)

    # Creating a study -------------------------------------------------------

    def create_study(self, config: StudyConfig, min_updates: int, genesis: Mapping[str, torch.Tensor] | None = None,
                     *, max_samples: int | None = None, allowed_models: Collection[str] = BUILTIN_MODELS) -> Study:
        """Register a study run by this member (a coordinator): store its config and sealed genesis model,
        and create it on chain with its terms (:func:`study_terms`) in one transaction. The config
        commits to the genesis model's parameter layout; ``allowed_models``: the model entry points
        this member's node settings let it build (the genesis)."""
        self.require_role(Role.COORDINATOR, "coordinator")
        if not 1 <= min_updates <= len(config.participants):
            raise RoundsError(f"min updates must be 1 to {len(config.participants)} (the participants), got {min_updates}")
        for participant in config.participants:
            self.require_role(Role.PARTICIPANT, "participant", participant)
        terms = study_terms(config, min_updates, max_samples)
        readers = self.public_keys([self.address, *config.members])
        if genesis is None:
            genesis = build_model(config.model, allowed_models, "the study's").state_dict()
        config = config.with_model_layout(genesis)
        plaintext = encode_artifact(genesis, {"kind": GENESIS})
        number = len(self.rounds.studies()) + 1
        secure = config.secure_aggregation is not None
        if secure:
            genesis_ref = store_public(self.store, plaintext)
        else:
            place = Place(self.chain_id, self.rounds.contract.address, number, 0, GENESIS, self.address)
            genesis_ref = ArtifactRef(seal(self.store, plaintext, readers, place), hashlib.sha256(plaintext).digest())
        config_cid = self.store.add(io.BytesIO(config.canonical_bytes()))
        created = self.rounds.create_study(genesis_ref, config.digest(), config_cid, terms)
        if created != number and not secure:
            # Another coordinator created a study meanwhile: our genesis is bound to the wrong number.
            raise RoundsError(f"study {number} was taken while this one was being created (got {created}); create again")
        return self.study(created)


class Study:
    """A study as ``member`` sees it: the chain's record, its config (checked), its models."""

    MODELS_KEPT = 2  # the base a round trains on and the aggregate it yields

    def __init__(self, member: Member, number: int) -> None:
        self.member = member
        self.number = number
        self.info = member.rounds.study(number)
        # A committed model never changes (its commitment is on chain): decrypted once, kept by round.
        self._models: dict[int, dict[str, torch.Tensor]] = {}
        # Nor does a closed round (committed or cancelled) or its updates: read from the chain once, so
        # the status, the verifier and the report that share this view read each round once.
        self._rounds: dict[int, RoundInfo] = {}
        self._updates: dict[int, list[UpdateInfo]] = {}

    def refresh(self) -> None:
        self.info = self.member.rounds.study(self.number)

    def round(self, number: int) -> RoundInfo:
        """Round ``number`` as the chain has it (a closed one read once)."""
        info = self._rounds.get(number)
        if info is None:
            info = self.member.rounds.round(self.number, number)
            if info.state != "open":
                self._rounds[number] = info
        return info

    def updates(self, number: int) -> list[UpdateInfo]:
        """Round ``number``'s updates in submission order (a closed round's read once)."""
        updates = self._updates.get(number)
        if updates is None:
            updates = self.member.rounds.updates(self.number, number)
            if self.round(number).state != "open":
                self._updates[number] = updates
        return list(updates)

    def stored_bytes(self, ref: ArtifactRef) -> int:
        """How many bytes the store holds for ``ref`` (sealed: the readers' wrapped keys included)."""
        return self.member.store.cat(ref.cid, _Discard())

    @cached_property
    def config(self) -> StudyConfig:
        """The study's config from the store, refused unless it hashes to the digest on chain."""
        try:
            data = _read_all(self.member.store, self.info.config_cid)
        except StoreError as error:
            raise ArtifactCheckFailed(f"study {self.number}: config {self.info.config_cid} is unreadable: {error}") from None
        try:
            config = StudyConfig.from_bytes(data, self.info.config_digest)
        except StudyConfigError as error:
            raise ArtifactCheckFailed(f"study {self.number}: config {self.info.config_cid}: {error}") from None
        if (config.secure_aggregation is not None) != self.info.secure:
            said, declared = ("sets", "does not declare") if config.secure_aggregation else ("does not set", "declares")
            raise ArtifactCheckFailed(f"study {self.number}: its config {said} secure aggregation, which the chain "
                                      f"{declared}")
        return config

    @property
    def coordinator(self) -> str:
        return self.info.coordinator

    def update_readers(self) -> list[str]:
        return list(dict.fromkeys([self.coordinator, *self.config.auditors]))

    def model_readers(self) -> list[str]:
        return list(dict.fromkeys([self.coordinator, *self.config.members]))

    def place(self, round_number: int, kind: str, author: str | None = None) -> Place:
        return Place(self.member.chain_id, self.member.rounds.contract.address, self.number, round_number, kind,
                     author or self.coordinator)

    # Models ----------------------------------------------------------------

    def model_ref(self, round_number: int) -> ArtifactRef:
        """The model committed by ``round_number`` (0: the genesis model)."""
        if round_number == 0:
            return self.info.genesis
        aggregate = self.round(round_number).aggregate
        if aggregate is None:
            raise RoundsError(f"study {self.number} round {round_number} has no committed aggregate")
        return aggregate

    def model(self, round_number: int) -> dict[str, torch.Tensor]:
        """The tensors of the model committed by ``round_number`` (0: genesis), fetched and checked."""
        cached = self._models.get(round_number)
        if cached is None:
            ref = self.model_ref(round_number)
            kind = GENESIS if round_number == 0 else AGGREGATE
            if self.secure:
                data = read_public(self.member.store, ref, f"study {self.number} round {round_number} {kind}")
            else:
                data = self.open(ref, self.place(round_number, kind))
            cached = self._tensors(data, ref, f"study {self.number} round {round_number} {kind}").tensors
            self.remember_model(round_number, cached)
        return dict(cached)

    def remember_model(self, round_number: int, tensors: Mapping[str, torch.Tensor]) -> None:
        """Keep the model committed by ``round_number`` (whose bytes this member checked or made)."""
        self._models[round_number] = dict(tensors)
        for stale in sorted(self._models)[:-self.MODELS_KEPT]:
            del self._models[stale]

    @property
    def secure(self) -> bool:
        """Whether the study runs secure aggregation (its models are then public)."""
        return self.config.secure_aggregation is not None

    def store_aggregate(self, round_number: int, plaintext: bytes) -> ArtifactRef:
        """Store a round's aggregate (its canonical bytes): in the clear under secure aggregation, else
        sealed for the study's members."""
        if self.secure:
            return store_public(self.member.store, plaintext)
        return self.seal_aggregate(round_number, plaintext)

    def seal_aggregate(self, round_number: int, plaintext: bytes) -> ArtifactRef:
        """Seal a round's aggregate (its canonical bytes) for the study's members."""
        readers = self.member.public_keys(self.model_readers())
        cid = seal(self.member.store, plaintext, readers, self.place(round_number, AGGREGATE))
        return ArtifactRef(cid, hashlib.sha256(plaintext).digest())

    def seal_update(self, round_number: int, plaintext: bytes, kind: str = UPDATE) -> ArtifactRef:
        """Seal ``plaintext`` as this member's ``kind`` of artifact (an update, or an evaluation) of
        round ``round_number`` for the study's update readers."""
        readers = self.member.public_keys(self.update_readers())
        cid = seal(self.member.store, plaintext, readers, self.place(round_number, kind, self.member.address))
        return ArtifactRef(cid, hashlib.sha256(plaintext).digest())

    def open(self, ref: ArtifactRef, place: Place) -> bytes:
        keystore = self.member.require_keystore()
        return open_sealed(self.member.store, ref.cid, ref.sha256, keystore, self.member.address, place)

    @staticmethod
    def _tensors(data: bytes, ref: ArtifactRef, what: str):
        try:
            return decode_artifact(data)  # open() checked its SHA-256
        except ArtifactError as error:
            raise ArtifactCheckFailed(f"{what} ({ref.cid}): {error}") from None


def build_model(spec: ModelSpec, allowed_models: Collection[str], whose: str) -> torch.nn.Module:
    """The model ``spec`` names, freshly initialised, built only from code ``allowed_models`` lists and
    only with the study's parameter layout; refused with one line (RoundsError) otherwise."""
    try:
        return spec.build(seed=secrets.randbits(63), allowed=allowed_models)
    except (EntryPointError, ValueError, TypeError) as error:  # ModelLayoutMismatch is a ValueError
        raise RoundsError(f"refusing {whose} model: {error}") from None


def aggregate_bytes(study: int, round_number: int, tensors: Mapping[str, torch.Tensor]) -> bytes:
    """The canonical safetensors bytes of a round's aggregate (what the chain's SHA-256 names)."""
    return encode_artifact(tensors, {"kind": AGGREGATE, "study": str(study), "round": str(round_number)})


def store_public(store: Store, data: bytes) -> ArtifactRef:
    """Add ``data`` to the store in the clear (a public model or secure-aggregation message)."""
    return ArtifactRef(store.add(io.BytesIO(data)), hashlib.sha256(data).digest())


def read_public(store: Store, ref: ArtifactRef, what: str) -> bytes:
    """The bytes a public artifact's CID names, checked against the SHA-256 the chain holds."""
    try:
        data = _read_all(store, ref.cid)
    except StoreError as error:
        raise ArtifactCheckFailed(f"{what} ({ref.cid}) cannot be read from the store: {error}") from None
    if hashlib.sha256(data).digest() != bytes(ref.sha256):
        raise ArtifactCheckFailed(f"{what} ({ref.cid}) does not hash to the SHA-256 on chain 0x{bytes(ref.sha256).hex()}")
    return data


def _read_all(store: Store, cid: CID) -> bytes:
    out = io.BytesIO()
    store.cat(cid, out)
    return out.getvalue()


class _Discard(io.RawIOBase):
    """A sink that counts nothing and keeps nothing (the store's ``cat`` counts the bytes)."""

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        return len(data)
