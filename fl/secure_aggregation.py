"""Secure aggregation after Bonawitz et al. (CCS 2017), over an authenticated bulletin board.

The aggregator learns the sum of the clients' vectors and nothing else about
any one of them, and the sum survives up to ``n - threshold`` clients
dropping out after they sent their masked input. The four rounds of the paper:

1. **Advertise keys.** Each client makes two X25519 key pairs: ``c`` to
   encrypt the shares it sends to peers, ``s`` to agree pairwise mask seeds.
2. **Share keys.** Each client draws a self-mask seed ``b`` and splits both
   ``b`` and its ``s`` private key into Shamir shares (threshold ``t``), one per
   peer, each encrypted and authenticated (AES-GCM) under the pair's ``c``
   agreement, so that only the recipient can read it.
3. **Masked input.** Each client sends
   ``y_u = x_u + PRG(b_u) + sum_{v>u} PRG(s_uv) - sum_{v<u} PRG(s_uv)  (mod 2^k)``
   where ``s_uv`` comes from X25519(s_u, s_v) through HKDF. Pairwise masks
   cancel in the sum exactly, because the inputs are integers (fixed point).
4. **Unmasking.** Each survivor reveals, for every peer, either its share of
   ``b`` (peer survived) or its share of ``s`` (peer dropped), never both: a
   client answers once per session. With ``t`` answers anyone rebuilds the
   self masks of survivors and the pairwise masks of dropped clients, and
   removes them. Rebuilt secrets are checked against the public key or the
   commitment each client published, so a tampered share is detected.

Against a server that lies, the paper's guarantee needs every client to act
on the same roster and the same survivor set. So every message goes through
a ``BulletinBoard``: an authenticated broadcast channel whose phases close
once, after which every reader sees the same postings, each attributed to
the identity that posted it (issue 9's round registry implements it on
chain; ``InMemoryBulletinBoard`` serves tests and the simulation). A key
advertisement counts only for the identity that posted it; the survivor set
is the set of clients whose masked input is on the board when that phase
closes; a client refuses to unmask for any other set, or for fewer than
``max(t, 3)`` survivors (two survivors would each learn the other's input
from the sum). Messages are bytes (canonical JSON), so a board may keep
them in the content-addressed store and only their CIDs on chain. Nothing
the aggregator does needs a secret: anyone who reads the board can derive
the sum (``secure_sum_from_board``).

Shamir sharing is pycryptodome's (GF(2^128), 16-byte secrets); the 32-byte
secrets are split as two halves sharing the same indices.
"""
from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import itertools
import json
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from Crypto.Protocol.SecretSharing import Shamir
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MIN_CLIENTS = 3
_DOMAIN = b"medshare/secagg/v1/"
_SECRET_BYTES = 32
_KEY_BYTES = 32
_HALF = 16  # pycryptodome's Shamir shares 16-byte secrets
_NONCE_BYTES = 12
#: How many subsets of ``t`` shares a reader tries when the shares it holds do not rebuild a secret
#: (some survivor revealed a corrupt share): enough for every subset of a 12-client roster at t = 7.
MAX_SHARE_SUBSETS = 1024


class SecureAggregationError(RuntimeError):
    """The protocol cannot complete (too few clients, bad message, tampered share...)."""


class MalformedMessage(SecureAggregationError):
    """A message on the board does not parse, or claims another sender or session."""


class InvalidPublicKey(SecureAggregationError):
    """An advertised X25519 key is not 32 bytes or is a low-order point (all-zero shared secret)."""


class SurvivorSetMismatch(SecureAggregationError):
    """An unmasking request names a survivor set other than the board's."""


class BulletinBoardError(SecureAggregationError):
    """The board refuses a post, a close or a read (not on the roster, phase closed or still open...)."""


@dataclass(frozen=True)
class FixedPointCodec:
    """Encodes ``weight * value`` as integers modulo ``2^modulus_bits`` (two's complement).

    Each value is rounded to a multiple of ``2^-fractional_bits`` and must satisfy
    ``|value| <= value_bound``; the weights of one session sum to at most
    ``max_total_weight``. The weighted sum of encoded values is then at most
    ``max_total_weight * (value_bound * 2^fractional_bits + 1/2)`` in absolute
    value, and the codec refuses settings where that bound reaches
    ``2^(modulus_bits - 1)``: the sum modulo ``2^k`` then decodes to the true
    integer sum, so masks cancel exactly and nothing wraps. The total weight
    travels as one extra masked element, so the server learns only the sum of
    the weights as well. No party sees the others' weights, so the consortium
    sets ``max_total_weight`` from a public bound (such as the records its
    members registered); each client checks only its own weight against it,
    and the server refuses a sum whose total weight exceeds it.
    """

    fractional_bits: int = 24
    modulus_bits: int = 64
    value_bound: float = 1024.0
    max_total_weight: int = 1 << 20

    def __post_init__(self) -> None:
        if not 2 <= self.modulus_bits <= 64:
            raise ValueError(f"modulus_bits must be between 2 and 64, got {self.modulus_bits}")
        if self.fractional_bits < 0:
            raise ValueError(f"fractional_bits must be non-negative, got {self.fractional_bits}")
        if not (self.value_bound > 0 and math.isfinite(self.value_bound)):
            raise ValueError(f"value_bound must be a positive finite number, got {self.value_bound}")
        if self.max_total_weight < 1:
            raise ValueError(f"max_total_weight must be at least 1, got {self.max_total_weight}")
        # The weight element itself (at most max_total_weight) must fit as well.
        worst = self.max_total_weight * max(self.value_bound * 2.0**self.fractional_bits + 0.5, 1.0)
        if worst >= 2.0 ** (self.modulus_bits - 1):
            raise ValueError(
                f"a weighted sum could reach {worst:.3g}, past 2^{self.modulus_bits - 1}: "
                "lower fractional_bits, value_bound or max_total_weight, or raise modulus_bits"
            )

    @property
    def mask(self) -> np.uint64:
        return np.uint64((1 << self.modulus_bits) - 1)

    def encode(self, values: np.ndarray, weight: int) -> np.ndarray:
        """``weight * values`` in fixed point, then ``weight`` itself, as uint64 residues."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 1:
            raise ValueError(f"values must be a 1-D vector, got shape {values.shape}")
        if not np.isfinite(values).all():
            raise ValueError("values contain NaN or infinity")
        largest = float(np.abs(values).max(initial=0.0))
        if largest > self.value_bound:
            raise ValueError(f"a value of magnitude {largest:.6g} exceeds value_bound {self.value_bound}")
        if isinstance(weight, bool) or int(weight) != weight or not 1 <= weight <= self.max_total_weight:
            raise ValueError(f"weight must be an integer in [1, {self.max_total_weight}], got {weight}")
        scaled = np.rint(values * 2.0**self.fractional_bits).astype(np.int64) * np.int64(weight)
        integers = np.append(scaled, np.int64(weight))
        return integers.view(np.uint64) & self.mask

    def decode_integers(self, residues: np.ndarray) -> tuple[np.ndarray, int]:
        """The signed integer sum of the encoded values, and the total weight."""
        reduced = residues.astype(np.uint64) & self.mask
        if self.modulus_bits == 64:
            signed = reduced.view(np.int64)
        else:
            signed = reduced.astype(np.int64)
            signed[signed >= (1 << (self.modulus_bits - 1))] -= 1 << self.modulus_bits
        return signed[:-1], int(signed[-1])


@dataclass(frozen=True)
class SessionParameters:
    """What every party agrees on before a round: its unique id, ``t`` and the vector format."""

    session_id: bytes
    threshold: int
    vector_length: int
    codec: FixedPointCodec = FixedPointCodec()

    def __post_init__(self) -> None:
        if len(self.session_id) < 8:
            raise ValueError("session_id must be at least 8 bytes, unique to the round")
        if self.threshold < 2:
            raise ValueError(f"threshold must be at least 2, got {self.threshold}")
        if self.vector_length < 1:
            raise ValueError(f"vector_length must be at least 1, got {self.vector_length}")

    @property
    def min_survivors(self) -> int:
        """``max(t, 3)``: fewer survivors could not unmask, or would each learn the other's input."""
        return max(self.threshold, MIN_CLIENTS)

    def check_roster_size(self, num_clients: int) -> None:
        """``MIN_CLIENTS <= n``, ``t <= n`` and ``t > n/2``, with a message saying which fails."""
        if num_clients < MIN_CLIENTS:
            raise SecureAggregationError(
                f"secure aggregation needs at least {MIN_CLIENTS} clients, got {num_clients}"
            )
        if self.threshold > num_clients:
            raise SecureAggregationError(
                f"threshold {self.threshold} exceeds the {num_clients} clients taking part"
            )
        if 2 * self.threshold <= num_clients:
            raise SecureAggregationError(
                f"threshold {self.threshold} must exceed half of the {num_clients} clients"
            )


class Phase(enum.Enum):
    """The board's phases, in the order they open and close."""

    KEYS = "keys"
    SHARES = "shares"
    MASKED_INPUTS = "masked-inputs"
    UNMASKING = "unmasking"

    @property
    def previous(self) -> Phase | None:
        phases = list(Phase)
        index = phases.index(self)
        return phases[index - 1] if index else None


@dataclass(frozen=True)
class Posting:
    """One message on the board: ``sender`` is the identity the board authenticated, not a claim."""

    sender: str
    payload: bytes


class BulletinBoard(ABC):
    """The authenticated broadcast channel every client of a session reads and writes.

    Every implementation guarantees:

    * ``roster``: the identities that may take part, fixed before the session
      and the same for every reader (on chain: the study's hospitals);
    * ``post``: the posting is attributed to ``sender`` only if ``sender``
      authenticated (on chain: the transaction's signer); only roster members
      post, at most once per phase, and only while the phase is open (the
      previous one closed, this one not);
    * ``close``: closes a phase for good, in order (on chain: the
      coordinator's transaction or a deadline);
    * ``read``: the postings of a closed phase, in posting order, the same for
      every reader; an open phase cannot be read, since what it holds is not
      final.

    Payloads are opaque bytes, so an implementation may keep them in the
    store and only their CIDs and digests on chain.
    """

    @abstractmethod
    def roster(self, session_id: bytes) -> tuple[str, ...]:
        """The identities that may take part in the session."""

    @abstractmethod
    def post(self, session_id: bytes, phase: Phase, sender: str, payload: bytes) -> None:
        """Publish ``payload`` as ``sender`` (who must have authenticated) in the open ``phase``."""

    @abstractmethod
    def close(self, session_id: bytes, phase: Phase) -> None:
        """Close ``phase``: nothing more is accepted, and its postings become readable."""

    @abstractmethod
    def read(self, session_id: bytes, phase: Phase) -> tuple[Posting, ...]:
        """The postings of the closed ``phase``, in posting order."""


@dataclass
class _BoardSession:
    roster: tuple[str, ...]
    postings: dict[Phase, list[Posting]] = field(default_factory=lambda: {phase: [] for phase in Phase})
    closed: set[Phase] = field(default_factory=set)


class InMemoryBulletinBoard(BulletinBoard):
    """A board in one process, for tests and the simulation.

    It trusts the ``sender`` its callers give: within one process there is no
    one to authenticate against. It enforces every other guarantee above.
    """

    def __init__(self) -> None:
        self._sessions: dict[bytes, _BoardSession] = {}

    def open_session(self, session_id: bytes, roster: Iterable[str]) -> None:
        """Declare a session and who may take part in it."""
        members = tuple(roster)
        if session_id in self._sessions:
            raise BulletinBoardError(f"session {session_id.hex()} is already open")
        if not members or any(not isinstance(m, str) or not m for m in members) or len(set(members)) != len(members):
            raise BulletinBoardError(f"a roster must list distinct non-empty identities, got {list(members)}")
        self._sessions[session_id] = _BoardSession(members)

    def _session(self, session_id: bytes) -> _BoardSession:
        try:
            return self._sessions[session_id]
        except KeyError:
            raise BulletinBoardError(f"no session {session_id.hex()} on the board") from None

    def roster(self, session_id: bytes) -> tuple[str, ...]:
        return self._session(session_id).roster

    def _check_open(self, session: _BoardSession, phase: Phase) -> None:
        if phase.previous is not None and phase.previous not in session.closed:
            raise BulletinBoardError(f"phase {phase.value!r} is not open yet: {phase.previous.value!r} is still open")
        if phase in session.closed:
            raise BulletinBoardError(f"phase {phase.value!r} is closed")

    def post(self, session_id: bytes, phase: Phase, sender: str, payload: bytes) -> None:
        session = self._session(session_id)
        if sender not in session.roster:
            raise BulletinBoardError(f"{sender!r} is not on the roster of session {session_id.hex()}")
        self._check_open(session, phase)
        if any(posting.sender == sender for posting in session.postings[phase]):
            raise BulletinBoardError(f"{sender!r} already posted in phase {phase.value!r}")
        if not isinstance(payload, bytes):
            raise BulletinBoardError(f"payloads are bytes, got {type(payload).__name__}")
        session.postings[phase].append(Posting(sender, payload))

    def close(self, session_id: bytes, phase: Phase) -> None:
        session = self._session(session_id)
        self._check_open(session, phase)
        session.closed.add(phase)

    def read(self, session_id: bytes, phase: Phase) -> tuple[Posting, ...]:
        session = self._session(session_id)
        if phase not in session.closed:
            raise BulletinBoardError(f"phase {phase.value!r} is still open: its postings are not final")
        return tuple(session.postings[phase])


def _encode(kind: str, session_id: bytes, client_id: str, body: Mapping[str, Any]) -> bytes:
    """Canonical JSON: the same message always gives the same bytes (and CID)."""
    return json.dumps(
        {"kind": kind, "session": session_id.hex(), "client": client_id, **body}, sort_keys=True, separators=(",", ":")
    ).encode()


class _Fields:
    """Typed, checked access to a decoded message's fields; any fault is a ``MalformedMessage``."""

    def __init__(self, payload: bytes, kind: str, session_id: bytes, sender: str) -> None:
        self.where = f"{kind} posted by {sender!r}"
        try:
            self.data = json.loads(payload)
        except (ValueError, UnicodeDecodeError, TypeError):
            raise MalformedMessage(f"{self.where} is not JSON") from None
        if not isinstance(self.data, dict) or self.data.get("kind") != kind:
            raise MalformedMessage(f"{self.where} is not a {kind}")
        if self.data.get("session") != session_id.hex():
            raise MalformedMessage(f"{self.where} belongs to another session")
        claimed = self.get("client", str)
        if claimed != sender:
            raise MalformedMessage(f"{self.where} claims to come from {claimed!r}")

    def get(self, name: str, kind: type, data: Mapping[str, Any] | None = None) -> Any:
        value = (self.data if data is None else data).get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise MalformedMessage(f"{self.where}: {name!r} must be a {kind.__name__}")
        return value

    def raw(self, name: str, length: int | None = None, data: Mapping[str, Any] | None = None) -> bytes:
        try:
            value = base64.b64decode(self.get(name, str, data), validate=True)
        except binascii.Error:
            raise MalformedMessage(f"{self.where}: {name!r} is not base64") from None
        if length is not None and len(value) != length:
            raise MalformedMessage(f"{self.where}: {name!r} must be {length} bytes, got {len(value)}")
        return value


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


_LOW_ORDER_PROBE = X25519PrivateKey.generate()


def _check_public_key(raw: bytes, owner: str, which: str) -> None:
    """Refuse a key whose agreement would be all zeros (a low-order point), whatever the peer's key.

    Clamped X25519 scalars are multiples of the cofactor 8, so a low-order
    point gives the all-zero secret with every private key: one probe decides.
    """
    if len(raw) != _KEY_BYTES:
        raise InvalidPublicKey(f"the {which} key advertised by {owner!r} is {len(raw)} bytes, not {_KEY_BYTES}")
    try:
        _LOW_ORDER_PROBE.exchange(X25519PublicKey.from_public_bytes(raw))
    except ValueError:
        raise InvalidPublicKey(
            f"the {which} key advertised by {owner!r} is a low-order X25519 point: "
            "every key agreement with it would be all zeros"
        ) from None


@dataclass(frozen=True)
class KeyAdvertisement:
    client_id: str
    encryption_public_key: bytes
    masking_public_key: bytes

    def to_bytes(self, session_id: bytes) -> bytes:
        return _encode("key-advertisement", session_id, self.client_id, {
            "encryption_key": _b64(self.encryption_public_key),
            "masking_key": _b64(self.masking_public_key),
        })

    @classmethod
    def from_bytes(cls, payload: bytes, session_id: bytes, sender: str) -> KeyAdvertisement:
        """The advertisement ``sender`` posted: it binds the keys to ``sender`` and to no one else."""
        fields = _Fields(payload, "key-advertisement", session_id, sender)
        advertisement = cls(sender, fields.raw("encryption_key"), fields.raw("masking_key"))
        _check_public_key(advertisement.encryption_public_key, sender, "encryption")
        _check_public_key(advertisement.masking_public_key, sender, "masking")
        return advertisement


@dataclass(frozen=True)
class EncryptedShare:
    sender: str
    recipient: str
    ciphertext: bytes


@dataclass(frozen=True)
class ShareKeysMessage:
    client_id: str
    self_mask_commitment: bytes
    shares: tuple[EncryptedShare, ...]

    def to_bytes(self, session_id: bytes) -> bytes:
        return _encode("share-keys", session_id, self.client_id, {
            "commitment": _b64(self.self_mask_commitment),
            "shares": [{"recipient": s.recipient, "ciphertext": _b64(s.ciphertext)} for s in self.shares],
        })

    @classmethod
    def from_bytes(cls, payload: bytes, session_id: bytes, sender: str) -> ShareKeysMessage:
        fields = _Fields(payload, "share-keys", session_id, sender)
        shares = []
        for entry in fields.get("shares", list):
            if not isinstance(entry, dict):
                raise MalformedMessage(f"{fields.where}: each share must be an object")
            shares.append(EncryptedShare(sender, fields.get("recipient", str, entry), fields.raw("ciphertext", data=entry)))
        return cls(sender, fields.raw("commitment", hashlib.sha256().digest_size), tuple(shares))


@dataclass(frozen=True)
class MaskedInput:
    client_id: str
    vector: np.ndarray

    def to_bytes(self, session_id: bytes) -> bytes:
        return _encode("masked-input", session_id, self.client_id, {"vector": _b64(self.vector.astype("<u8").tobytes())})

    @classmethod
    def from_bytes(cls, payload: bytes, session_id: bytes, sender: str, length: int) -> MaskedInput:
        """``length`` uint64 residues (the vector and the weight) or a ``MalformedMessage``."""
        fields = _Fields(payload, "masked-input", session_id, sender)
        raw = fields.raw("vector", 8 * length)
        return cls(sender, np.frombuffer(raw, dtype="<u8").astype(np.uint64))


@dataclass(frozen=True)
class RevealedShare:
    """One Shamir share (index, 32 bytes as two 16-byte halves) of a peer's secret."""

    index: int
    share: bytes


@dataclass(frozen=True)
class UnmaskingResponse:
    client_id: str
    self_mask_shares: Mapping[str, RevealedShare]
    masking_key_shares: Mapping[str, RevealedShare]

    def to_bytes(self, session_id: bytes) -> bytes:
        def shares(mapping: Mapping[str, RevealedShare]) -> dict[str, Any]:
            return {peer: {"index": s.index, "share": _b64(s.share)} for peer, s in sorted(mapping.items())}

        return _encode("unmasking", session_id, self.client_id, {
            "self_mask_shares": shares(self.self_mask_shares),
            "masking_key_shares": shares(self.masking_key_shares),
        })

    @classmethod
    def from_bytes(cls, payload: bytes, session_id: bytes, sender: str) -> UnmaskingResponse:
        fields = _Fields(payload, "unmasking", session_id, sender)

        def shares(name: str) -> dict[str, RevealedShare]:
            parsed = {}
            for peer, entry in fields.get(name, dict).items():
                if not isinstance(entry, dict):
                    raise MalformedMessage(f"{fields.where}: the share of {peer!r} must be an object")
                index = fields.get("index", int, entry)
                if not 1 <= index < 1 << 16:
                    raise MalformedMessage(f"{fields.where}: share index {index} of {peer!r} is out of range")
                parsed[peer] = RevealedShare(index, fields.raw("share", _SECRET_BYTES, entry))
            return parsed

        return cls(sender, shares("self_mask_shares"), shares("masking_key_shares"))


@dataclass(frozen=True)
class SecureSum:
    """What the aggregation reveals: the weighted sum, the total weight, who took part."""

    weighted_sum: np.ndarray
    integer_sum: np.ndarray
    total_weight: int
    survivors: tuple[str, ...]
    dropped: tuple[str, ...]

    @property
    def mean(self) -> np.ndarray:
        return self.weighted_sum / self.total_weight


def _kdf(key_material: bytes, label: str, session_id: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=_SECRET_BYTES, salt=None,
        info=_DOMAIN + label.encode() + b"/" + session_id,
    ).derive(key_material)


def _expand(seed: bytes, length: int) -> np.ndarray:
    """``length`` pseudo-random uint64 words: ChaCha20's keystream under ``seed``, read little-endian
    whatever the machine, so that masks made on different machines cancel.

    Every seed is derived for one session and one purpose, so the fixed nonce
    is never reused with the same key.
    """
    encryptor = Cipher(algorithms.ChaCha20(seed, b"\x00" * 16), mode=None).encryptor()
    return np.frombuffer(encryptor.update(bytes(8 * length)), dtype="<u8").astype(np.uint64)


def _pair_label(purpose: str, first: str, second: str) -> str:
    return f"{purpose}/{len(first)}:{first}/{len(second)}:{second}"


def _pairwise_seed(private: X25519PrivateKey, peer_public: bytes, a: str, b: str, session_id: bytes) -> bytes:
    low, high = sorted((a, b))
    shared = private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    return _kdf(shared, _pair_label("mask", low, high), session_id)


def _share_key(private: X25519PrivateKey, peer_public: bytes, sender: str, recipient: str, session_id: bytes) -> bytes:
    shared = private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    return _kdf(shared, _pair_label("share", sender, recipient), session_id)


def _commit(self_mask_seed: bytes, client_id: str, session_id: bytes) -> bytes:
    return hashlib.sha256(_DOMAIN + b"commit/" + session_id + client_id.encode() + self_mask_seed).digest()


def _split(secret: bytes, threshold: int, count: int) -> list[RevealedShare]:
    halves = [Shamir.split(threshold, count, secret[i : i + _HALF]) for i in (0, _HALF)]
    return [
        RevealedShare(index=first[0], share=first[1] + second[1])
        for first, second in zip(*halves)
    ]


def _combine(shares: Iterable[RevealedShare]) -> bytes:
    shares = list(shares)
    return b"".join(
        Shamir.combine([(s.index, s.share[i : i + _HALF]) for s in shares]) for i in (0, _HALF)
    )


def _signed_masks(
    total: np.ndarray, own_id: str, peers: Iterable[tuple[str, bytes]], length: int
) -> np.ndarray:
    """Add ``+PRG(s)`` for peers after ``own_id`` and ``-PRG(s)`` for peers before it (mod 2^64)."""
    for peer_id, seed in peers:
        mask = _expand(seed, length)
        total = total + mask if own_id < peer_id else total - mask
    return total


def _check_participants(count: int, threshold: int, shortfall: str) -> None:
    if count < threshold:
        raise SecureAggregationError(shortfall)


def _postings(
    board: BulletinBoard, session: SessionParameters, phase: Phase, admitted: Iterable[str], stray_reason: str
) -> tuple[Posting, ...]:
    """The closed phase's postings: each sender once, all among ``admitted``."""
    postings = board.read(session.session_id, phase)
    senders = [posting.sender for posting in postings]
    if len(set(senders)) != len(senders):
        raise SecureAggregationError(f"duplicate senders among the {phase.value} postings: {sorted(senders)}")
    stray = sorted(set(senders) - set(admitted))
    if stray:
        raise SecureAggregationError(f"{phase.value} postings from clients that {stray_reason}: {stray}")
    return postings


def board_roster(board: BulletinBoard, session: SessionParameters) -> dict[str, KeyAdvertisement]:
    """The key advertisements of the closed key phase, each bound to the roster member that posted it."""
    postings = _postings(board, session, Phase.KEYS, board.roster(session.session_id), "are not on the roster")
    roster = {p.sender: KeyAdvertisement.from_bytes(p.payload, session.session_id, p.sender) for p in postings}
    session.check_roster_size(len(roster))
    return dict(sorted(roster.items()))


def board_share_messages(
    board: BulletinBoard, session: SessionParameters, roster: Mapping[str, KeyAdvertisement]
) -> dict[str, ShareKeysMessage]:
    """The share messages of the closed share phase; their senders are the clients whose masks can be recovered."""
    postings = _postings(board, session, Phase.SHARES, roster, "did not advertise keys")
    messages = {p.sender: ShareKeysMessage.from_bytes(p.payload, session.session_id, p.sender) for p in postings}
    _check_participants(
        len(messages), session.threshold,
        f"only {len(messages)} of {len(roster)} clients shared keys; threshold {session.threshold} cannot be met",
    )
    for sender, message in messages.items():
        if sorted(share.recipient for share in message.shares) != sorted(roster):
            raise SecureAggregationError(f"client {sender!r} did not send one share to each roster member")
    return dict(sorted(messages.items()))


def board_masked_inputs(
    board: BulletinBoard, session: SessionParameters, holders: Iterable[str]
) -> dict[str, np.ndarray]:
    """The masked inputs of the closed masked-input phase: their senders are the survivors."""
    holders = list(holders)
    postings = _postings(board, session, Phase.MASKED_INPUTS, holders, "did not share keys")
    length = session.vector_length + 1
    inputs = {
        p.sender: MaskedInput.from_bytes(p.payload, session.session_id, p.sender, length).vector for p in postings
    }
    _check_participants(
        len(inputs), session.min_survivors,
        f"{len(holders) - len(inputs)} of {len(holders)} clients dropped out, leaving {len(inputs)}; "
        f"at least {session.min_survivors} must survive (max(threshold {session.threshold}, {MIN_CLIENTS}))",
    )
    return dict(sorted(inputs.items()))


def board_unmasking_responses(
    board: BulletinBoard, session: SessionParameters, survivors: Iterable[str]
) -> list[UnmaskingResponse]:
    postings = _postings(board, session, Phase.UNMASKING, survivors, "are not survivors")
    responses = [UnmaskingResponse.from_bytes(p.payload, session.session_id, p.sender) for p in postings]
    _check_participants(
        len(responses), session.threshold,
        f"only {len(responses)} unmasking responses; threshold {session.threshold} needs more",
    )
    return responses


class SecureAggregationClient:
    """One client's side of a session, reading and posting on ``board`` as ``client_id``.

    Each instance serves exactly one session. Everything it acts on (the
    roster, who shared keys, the survivors) it reads from the board, never
    from the aggregator.
    """

    def __init__(self, client_id: str, session: SessionParameters, board: BulletinBoard) -> None:
        if not client_id:
            raise ValueError("client_id must be non-empty")
        self.client_id = client_id
        self.session = session
        self.board = board
        self._encryption_key = X25519PrivateKey.generate()
        self._masking_key = X25519PrivateKey.generate()
        self._self_mask_seed = os.urandom(_SECRET_BYTES)
        self._roster: dict[str, KeyAdvertisement] = {}
        self._received: dict[str, tuple[RevealedShare, RevealedShare]] = {}
        self._share_holders: tuple[str, ...] = ()
        self._unmasked = False

    @property
    def key_advertisement(self) -> KeyAdvertisement:
        return KeyAdvertisement(
            client_id=self.client_id,
            encryption_public_key=self._encryption_key.public_key().public_bytes_raw(),
            masking_public_key=self._masking_key.public_key().public_bytes_raw(),
        )

    def _post(self, phase: Phase, message: Any) -> None:
        self.board.post(self.session.session_id, phase, self.client_id, message.to_bytes(self.session.session_id))

    def advertise_keys(self) -> KeyAdvertisement:
        """Round 1: post this client's public keys."""
        advertisement = self.key_advertisement
        self._post(Phase.KEYS, advertisement)
        return advertisement

    def share_keys(self) -> ShareKeysMessage:
        """Round 2: Shamir-share the masking key and self-mask seed with every member of the board's roster."""
        roster = board_roster(self.board, self.session)
        if roster.get(self.client_id) != self.key_advertisement:
            raise SecureAggregationError(f"client {self.client_id!r} is missing from the roster or its keys differ")
        self._roster = roster
        ordered = list(roster)
        masking_shares = _split(self._masking_key.private_bytes_raw(), self.session.threshold, len(ordered))
        seed_shares = _split(self._self_mask_seed, self.session.threshold, len(ordered))
        shares = []
        for recipient, masking_share, seed_share in zip(ordered, masking_shares, seed_shares):
            key = _share_key(
                self._encryption_key, roster[recipient].encryption_public_key,
                self.client_id, recipient, self.session.session_id,
            )
            nonce = os.urandom(_NONCE_BYTES)
            plaintext = masking_share.index.to_bytes(2, "big") + masking_share.share + seed_share.share
            associated = _DOMAIN + self.session.session_id + _pair_label("share", self.client_id, recipient).encode()
            shares.append(EncryptedShare(self.client_id, recipient, nonce + AESGCM(key).encrypt(nonce, plaintext, associated)))
        message = ShareKeysMessage(
            client_id=self.client_id,
            self_mask_commitment=_commit(self._self_mask_seed, self.client_id, self.session.session_id),
            shares=tuple(shares),
        )
        self._post(Phase.SHARES, message)
        return message

    def masked_input(self, values: np.ndarray, weight: int) -> MaskedInput:
        """Round 3: decrypt the shares peers posted, then mask ``weight * values`` with self and pairwise masks.

        The senders of share messages on the board are the clients that
        completed round 2; only they get pairwise masks, since only their
        masks can be recovered.
        """
        if not self._roster:
            raise SecureAggregationError("share_keys must run before masked_input")
        if self._share_holders:
            # Masks are fixed per session: two inputs under the same masks hand the aggregator their difference.
            raise SecureAggregationError(f"client {self.client_id!r} already sent its masked input in this session")
        messages = board_share_messages(self.board, self.session, self._roster)
        if self.client_id not in messages:
            raise SecureAggregationError(f"client {self.client_id!r} has no share message on the board")
        received = {
            sender: self._decrypt(next(s for s in message.shares if s.recipient == self.client_id))
            for sender, message in messages.items()
        }
        holders = tuple(messages)
        encoded = self.session.codec.encode(values, weight)
        length = self.session.vector_length + 1
        if encoded.shape != (length,):
            raise ValueError(f"expected {self.session.vector_length} values, got {encoded.shape[0] - 1}")
        masked = encoded + _expand(_kdf(self._self_mask_seed, "self-mask", self.session.session_id), length)
        peers = (
            (peer, _pairwise_seed(self._masking_key, self._roster[peer].masking_public_key,
                                  self.client_id, peer, self.session.session_id))
            for peer in holders if peer != self.client_id
        )
        message = MaskedInput(self.client_id, _signed_masks(masked, self.client_id, peers, length) & self.session.codec.mask)
        self._post(Phase.MASKED_INPUTS, message)
        # Committed only once posted: a refused input may be retried, a sent one may not.
        self._received, self._share_holders = received, holders
        return message

    def _decrypt(self, share: EncryptedShare) -> tuple[RevealedShare, RevealedShare]:
        key = _share_key(
            self._encryption_key, self._roster[share.sender].encryption_public_key,
            share.sender, self.client_id, self.session.session_id,
        )
        nonce, body = share.ciphertext[:_NONCE_BYTES], share.ciphertext[_NONCE_BYTES:]
        associated = _DOMAIN + self.session.session_id + _pair_label("share", share.sender, self.client_id).encode()
        try:
            plaintext = AESGCM(key).decrypt(nonce, body, associated)
        except (InvalidTag, ValueError):
            raise SecureAggregationError(
                f"share from {share.sender!r} to {self.client_id!r} failed authentication (tampered or misrouted)"
            ) from None
        if len(plaintext) != 2 + 2 * _SECRET_BYTES:
            raise SecureAggregationError(f"share from {share.sender!r} to {self.client_id!r} has the wrong length")
        index = int.from_bytes(plaintext[:2], "big")
        masking = plaintext[2 : 2 + _SECRET_BYTES]
        seed = plaintext[2 + _SECRET_BYTES :]
        return RevealedShare(index, masking), RevealedShare(index, seed)

    def unmask(self, survivors: Sequence[str] | None = None) -> UnmaskingResponse:
        """Round 4: reveal self-mask shares of the board's survivors and masking-key shares of the rest.

        ``survivors``, if given, is what the aggregator claims; it must be the
        board's set exactly. Answers once per session: a second answer (for
        another set) could hand out both secrets of one client.
        """
        if self._unmasked:
            raise SecureAggregationError(f"client {self.client_id!r} already answered the unmasking request")
        if not self._share_holders:
            raise SecureAggregationError("masked_input must run before unmask")
        on_board = tuple(board_masked_inputs(self.board, self.session, self._share_holders))
        if survivors is not None and sorted(survivors) != list(on_board):
            raise SurvivorSetMismatch(
                f"client {self.client_id!r} was asked to unmask for survivors {sorted(survivors)}, "
                f"but the board's survivor set is {list(on_board)}"
            )
        if self.client_id not in on_board:
            raise SecureAggregationError(f"client {self.client_id!r} is not among the board's survivors")
        self._unmasked = True
        alive = set(on_board)
        response = UnmaskingResponse(
            client_id=self.client_id,
            self_mask_shares={peer: self._received[peer][1] for peer in self._share_holders if peer in alive},
            masking_key_shares={peer: self._received[peer][0] for peer in self._share_holders if peer not in alive},
        )
        self._post(Phase.UNMASKING, response)
        return response


class SecureAggregationServer:
    """The coordinator of one session: it closes each phase on the board, then derives the sum.

    It holds no secret and sends nothing to any client: on chain a deadline
    may close the phases instead, and anyone may derive the sum.
    """

    def __init__(self, session: SessionParameters, board: BulletinBoard) -> None:
        self.session = session
        self.board = board

    def _close(self, phase: Phase) -> None:
        self.board.close(self.session.session_id, phase)

    def close_keys(self) -> tuple[str, ...]:
        """Close round 1; the roster every client will act on."""
        self._close(Phase.KEYS)
        return tuple(board_roster(self.board, self.session))

    def close_shares(self) -> tuple[str, ...]:
        """Close round 2; the clients whose masks can be recovered."""
        self._close(Phase.SHARES)
        return tuple(board_share_messages(self.board, self.session, board_roster(self.board, self.session)))

    def close_masked_inputs(self) -> tuple[str, ...]:
        """Close round 3; the survivors, the set every client will unmask for."""
        self._close(Phase.MASKED_INPUTS)
        roster = board_roster(self.board, self.session)
        return tuple(board_masked_inputs(self.board, self.session, board_share_messages(self.board, self.session, roster)))

    def finish(self) -> SecureSum:
        """Close round 4 and remove the masks."""
        self._close(Phase.UNMASKING)
        return secure_sum_from_board(self.board, self.session)


def secure_sum_from_board(board: BulletinBoard, session: SessionParameters) -> SecureSum:
    """The sum of a completed session, from the board alone and with no key: what any verifier can recompute."""
    roster = board_roster(board, session)
    messages = board_share_messages(board, session, roster)
    masked = board_masked_inputs(board, session, messages)
    responses = board_unmasking_responses(board, session, masked)
    survivors = list(masked)
    dropped = [client for client in messages if client not in masked]
    length = session.vector_length + 1
    total = np.zeros(length, dtype=np.uint64)
    for vector in masked.values():
        total = total + vector
    for client in survivors:
        commitment = messages[client].self_mask_commitment
        seed = _rebuild(session, responses, client, self_mask=True,
                        valid=lambda secret, client=client, commitment=commitment:
                        _commit(secret, client, session.session_id) == commitment)
        total = total - _expand(_kdf(seed, "self-mask", session.session_id), length)
    for client in dropped:
        public = roster[client].masking_public_key
        private = X25519PrivateKey.from_private_bytes(_rebuild(
            session, responses, client, self_mask=False,
            valid=lambda secret, public=public:
            X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes_raw() == public))
        # Each survivor v added +PRG(s_uv) if v < u, else -PRG(s_uv); undo it.
        for survivor in survivors:
            seed = _pairwise_seed(private, roster[survivor].masking_public_key, client, survivor, session.session_id)
            mask = _expand(seed, length)
            total = total - mask if survivor < client else total + mask
    total &= session.codec.mask
    integer_sum, total_weight = session.codec.decode_integers(total)
    # Each client checked only its own weight; past the codec's total the sum may have wrapped.
    if not 1 <= total_weight <= session.codec.max_total_weight:
        raise SecureAggregationError(
            f"the survivors' weights sum to {total_weight}, outside [1, {session.codec.max_total_weight}] "
            "(max_total_weight): the sum may have wrapped; raise max_total_weight"
        )
    return SecureSum(
        weighted_sum=integer_sum.astype(np.float64) / 2.0**session.codec.fractional_bits,
        integer_sum=integer_sum,
        total_weight=total_weight,
        survivors=tuple(survivors),
        dropped=tuple(dropped),
    )


def _rebuild(
    session: SessionParameters,
    responses: Sequence[UnmaskingResponse],
    client: str,
    self_mask: bool,
    valid: Callable[[bytes], bool],
) -> bytes:
    """``client``'s secret (self-mask seed or masking key) from the revealed shares, checked by ``valid``
    against what the client published.

    Any ``t`` honest shares give the secret, and ``valid`` recognises it, so a survivor that reveals a
    corrupt share cannot make anyone accept a wrong secret: when all the shares together fail, subsets
    of ``t`` are tried in posting order (at most :data:`MAX_SHARE_SUBSETS`), and the first that passes
    is the secret. The result does not depend on which subset passes, so every reader derives the
    same sum.
    """
    kind = "self-mask" if self_mask else "masking-key"
    shares: dict[int, RevealedShare] = {}
    for response in responses:
        share = (response.self_mask_shares if self_mask else response.masking_key_shares).get(client)
        # A malformed or repeated share is one fewer share, not a reason to give up on the others.
        if share is not None and len(share.share) == _SECRET_BYTES and share.index not in shares:
            shares[share.index] = share
    present = list(shares.values())
    if len(present) < session.threshold:
        raise SecureAggregationError(
            f"only {len(present)} {kind} shares of {client!r}; threshold {session.threshold} needs more"
        )
    candidates = itertools.chain([present], itertools.islice(
        itertools.combinations(present, session.threshold), MAX_SHARE_SUBSETS))
    for subset in candidates:
        try:
            secret = _combine(subset)
        except ValueError:
            continue
        if valid(secret):
            return secret
    raise SecureAggregationError(
        f"no {session.threshold} of the {len(present)} {kind} shares of {client!r} rebuild the secret it "
        f"published: too many shares are corrupt (tried {MAX_SHARE_SUBSETS} subsets)"
    )


def secure_weighted_sum(
    inputs: Mapping[str, tuple[np.ndarray, int]],
    session: SessionParameters,
    dropouts: Iterable[str] = (),
) -> SecureSum:
    """Run all four rounds in one process over an in-memory board: ``inputs`` maps client id to (values, weight).

    Clients in ``dropouts`` share keys and then never deliver their masked
    input: the case dropout recovery exists for.
    """
    dropping = set(dropouts)
    unknown = sorted(dropping - set(inputs))
    if unknown:
        raise ValueError(f"cannot drop unknown clients {unknown}")
    board = InMemoryBulletinBoard()
    board.open_session(session.session_id, inputs)
    clients = {client_id: SecureAggregationClient(client_id, session, board) for client_id in inputs}
    server = SecureAggregationServer(session, board)
    for client in clients.values():
        client.advertise_keys()
    server.close_keys()
    for client in clients.values():
        client.share_keys()
    server.close_shares()
    for client_id, (values, weight) in inputs.items():
        if client_id not in dropping:
            clients[client_id].masked_input(values, weight)
    survivors = server.close_masked_inputs()
    for client_id in survivors:
        clients[client_id].unmask(survivors)
    return server.finish()
