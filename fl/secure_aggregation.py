"""Secure aggregation after Bonawitz et al. (CCS 2017) and Bell et al. (SecAgg+, CCS 2020), over an
authenticated bulletin board.

The aggregator learns the sum of the clients' vectors and nothing else about
any one of them, and the sum survives clients dropping out after they sent
their masked input. The rounds of the protocol:

1. **Advertise keys.** Each client makes a secp256k1 key pair ``c`` (to
   encrypt the shares it sends to peers), an X25519 key pair ``s`` (to agree
   pairwise mask seeds) and a self-mask seed ``b``; it draws the two Shamir
   polynomials of degree ``t - 1`` over Z_q (q: secp256k1's group order)
   whose constant terms are ``s`` and ``b``, and publishes, with its public
   keys, Feldman commitments ``C_j = a_j G`` to each polynomial's
   coefficients. The commitments travel in the key advertisement: no extra
   posting.
2. **Share keys.** Each client sends each neighbour (every roster member on
   the complete graph; its neighbours on a SecAgg+ graph) the pair
   ``(f_s(x), f_b(x))`` where ``x`` is the *recipient's* position in the
   roster (1-based, sorted): an index no one declares, so no one can shadow
   another's share. Each pair is encrypted and authenticated (AES-GCM) under
   the ECDH key of the two clients' ``c`` keys.
3. **Masked input.** Each client checks every share it received against its
   sender's commitments (``g^f(x) = prod C_j^{x^j}``), then sends
   ``y_u = x_u + PRG(b_u) + sum_{v>u} PRG(s_uv) - sum_{v<u} PRG(s_uv)  (mod 2^k)``
   over its neighbours ``v`` that shared keys. A share that fails to decrypt
   or to verify becomes a *complaint* in that message: the channel's ECDH
   point and a Chaum-Pedersen proof that it is the right one, so every
   reader can decrypt that one share and see it is bad. A sender with a
   checked complaint is excluded by every reader alike: its input is not
   counted, and it is recovered as a dropout.
4. **Unmasking.** The survivors are the senders of the valid masked inputs
   on the board, minus the excluded: one set, the same for every reader.
   Each survivor reveals, for every neighbour, either its share of ``b``
   (neighbour survived) or its share of ``s`` (neighbour dropped), never
   both, once, and names the survivor set it answers by its hash (the
   paper's consistency check): readers drop an answer for another set.
   Anyone rebuilds each secret from the first ``t`` revealed shares that
   verify against the commitments: a corrupt share is found and dropped on
   sight, so rebuilding costs O(n) share checks, never a subset search.

Against a server that lies, the guarantees need every client to act on the
same roster and the same survivor set. So every message goes through a
``BulletinBoard``: an authenticated broadcast channel whose phases close
once, after which every reader sees the same postings, each attributed to
the identity that posted it (the round registry implements it on chain;
``InMemoryBulletinBoard`` serves tests and the simulation). A board that
cannot yet hand over a posting's bytes says so
(:class:`PostingUnavailable`): a client then waits and asks again, it never
acts on a partial view. A client refuses to unmask for any set but the
board's, or for fewer than ``max(t, 3)`` survivors (two survivors would each
learn the other's input from the sum). Nothing the aggregator does needs a
secret: anyone who reads the board can derive the sum
(``secure_sum_from_board``).

**SecAgg+.** With ``graph_degree`` k > 0 (even, below n - 1) each client
shares with, and masks against, only its k neighbours on a random Harary
graph: the roster on a ring in an order drawn from ``graph_seed`` (on chain:
the hash of the block that opened the round, unknown when the roster was
fixed), each linked to the k/2 nearest on either side. The threshold ``t``
then applies to each neighbourhood of k + 1 (a client holds a share of its
own secrets). :func:`graph_failure_bounds` states the failure probability
for a choice of n, k, t.
"""
from __future__ import annotations

import base64
import enum
import functools
import hashlib
import json
import math
import os
import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from coincurve import PrivateKey, PublicKey
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MIN_CLIENTS = 3
_DOMAIN = b"medshare/secagg/v2/"
_SECRET_BYTES = 32
_KEY_BYTES = 32
_POINT_BYTES = 33  # a compressed secp256k1 point
_NONCE_BYTES = 12
#: secp256k1's group order: Shamir's field and the exponent group of the Feldman commitments.
GROUP_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class SecureAggregationError(RuntimeError):
    """The protocol cannot complete (too few clients, bad message, tampered share...)."""


class MalformedMessage(SecureAggregationError):
    """A message on the board does not parse, or claims another sender or session."""


class InvalidPublicKey(SecureAggregationError):
    """An advertised key is not a valid point (X25519: 32 bytes, not of low order; secp256k1: on the curve)."""


class SurvivorSetMismatch(SecureAggregationError):
    """An unmasking request names a survivor set other than the board's."""


class BulletinBoardError(SecureAggregationError):
    """The board refuses a post, a close or a read (not on the roster, phase closed or still open...)."""


class PostingUnavailable(BulletinBoardError):
    """The board names a posting whose bytes cannot be had now (a store read failed): ask again later,
    never act as if it were not posted, since other readers may have its bytes."""


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
    """What every party agrees on before a round: its unique id, ``t``, the vector format, and the
    SecAgg+ graph (``graph_degree`` 0: the complete graph; ``graph_seed``: its public randomness)."""

    session_id: bytes
    threshold: int
    vector_length: int
    codec: FixedPointCodec = FixedPointCodec()
    graph_degree: int = 0
    graph_seed: bytes = b""

    def __post_init__(self) -> None:
        if len(self.session_id) < 8:
            raise ValueError("session_id must be at least 8 bytes, unique to the round")
        if self.threshold < 2:
            raise ValueError(f"threshold must be at least 2, got {self.threshold}")
        if self.vector_length < 1:
            raise ValueError(f"vector_length must be at least 1, got {self.vector_length}")
        if isinstance(self.graph_degree, bool) or not isinstance(self.graph_degree, int) or self.graph_degree < 0 \
                or self.graph_degree % 2:
            raise ValueError(f"graph_degree must be 0 (complete graph) or a positive even int, got {self.graph_degree!r}")

    @property
    def min_survivors(self) -> int:
        """``max(t, 3)``: fewer survivors could not unmask, or would each learn the other's input."""
        return max(self.threshold, MIN_CLIENTS)

    def neighbourhood_size(self, num_clients: int) -> int:
        """How many hold shares of each client's secrets (itself included)."""
        sparse = 0 < self.graph_degree < num_clients - 1
        return self.graph_degree + 1 if sparse else num_clients

    def check_roster_size(self, num_clients: int) -> None:
        """``MIN_CLIENTS <= n``, ``t <= m`` and ``t > m/2`` for neighbourhoods of ``m`` (``n`` on the
        complete graph), with a message saying which fails."""
        if num_clients < MIN_CLIENTS:
            raise SecureAggregationError(
                f"secure aggregation needs at least {MIN_CLIENTS} clients, got {num_clients}"
            )
        size = self.neighbourhood_size(num_clients)
        whom = f"the {num_clients} clients" if size == num_clients else \
            f"each neighbourhood of {size} (graph degree {self.graph_degree})"
        if self.threshold > size:
            raise SecureAggregationError(f"threshold {self.threshold} exceeds {whom} taking part")
        if 2 * self.threshold <= size:
            raise SecureAggregationError(f"threshold {self.threshold} must exceed half of {whom}")


def roster_positions(roster: Iterable[str]) -> dict[str, int]:
    """Each roster member's Shamir index: its 1-based place in the sorted roster, fixed before keys."""
    return {member: place for place, member in enumerate(sorted(roster), start=1)}


def neighbourhoods(roster: Iterable[str], degree: int, seed: bytes) -> dict[str, tuple[str, ...]]:
    """Each member's neighbourhood (itself included, sorted): everyone for ``degree`` 0 or at least
    ``n - 1``; else the random Harary graph of Bell et al. (the roster on a ring in an order drawn
    from ``seed``, each member linked to the ``degree / 2`` nearest on either side)."""
    members = sorted(roster)
    count = len(members)
    if degree == 0 or degree >= count - 1:
        return {member: tuple(members) for member in members}
    order = list(members)
    # Fisher-Yates driven by SHA-256 of the public seed: the graph is public, only unpredictable.
    for last in range(count - 1, 0, -1):
        draw = int.from_bytes(hashlib.sha256(_DOMAIN + b"graph/" + seed + last.to_bytes(4, "big")).digest(), "big")
        swap = draw % (last + 1)
        order[last], order[swap] = order[swap], order[last]
    half = degree // 2
    return {member: tuple(sorted(order[(place + step) % count] for step in range(-half, half + 1)))
            for place, member in enumerate(order)}


def _binomial_tail(trials: int, probability: float, at_least: int) -> float:
    return sum(math.comb(trials, k) * probability**k * (1 - probability) ** (trials - k)
               for k in range(max(at_least, 0), trials + 1))


def graph_failure_bounds(clients: int, degree: int, threshold: int, *, dropout: float = 0.1,
                         corrupt: float = 0.05) -> dict[str, float]:
    """Union bounds on what can go wrong on a SecAgg+ graph when each client drops out with
    probability ``dropout`` and is corrupt with probability ``corrupt``, independently:

    - ``correctness``: some client's neighbourhood (``degree + 1``) keeps fewer than ``t`` live
      members, so its secret cannot be rebuilt (the round is then cancelled, nothing leaks);
    - ``privacy``: some client has ``t`` or more corrupt members in its neighbourhood (they could
      rebuild both its secrets);
    - ``disconnection``: the Harary graph is ``degree``-connected, so removing fewer than ``degree``
      clients cannot split the honest survivors into parts whose partial sums would leak; this is
      the probability that ``degree`` or more are dropped or corrupt.
    """
    size = degree + 1 if 0 < degree < clients - 1 else clients
    return {
        "correctness": min(1.0, clients * (1 - _binomial_tail(size, 1 - dropout, threshold))),
        "privacy": min(1.0, clients * _binomial_tail(size, corrupt, threshold)),
        "disconnection": _binomial_tail(clients, dropout + corrupt - dropout * corrupt, max(degree, 1))
        if size < clients else 0.0,
    }


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
        except (ValueError, UnicodeDecodeError, TypeError, RecursionError):
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
        return self.decode(self.get(name, str, data), name, length)

    def decode(self, text: Any, name: str, length: int | None = None) -> bytes:
        if not isinstance(text, str):
            raise MalformedMessage(f"{self.where}: {name!r} must be a str")
        try:
            value = base64.b64decode(text, validate=True)
        except ValueError:  # binascii.Error, or a str that is not ASCII
            raise MalformedMessage(f"{self.where}: {name!r} is not base64") from None
        if length is not None and len(value) != length:
            raise MalformedMessage(f"{self.where}: {name!r} must be {length} bytes, got {len(value)}")
        return value

    def scalars(self, name: str) -> dict[str, int]:
        """A mapping of peer to a share: 32 big-endian bytes, a residue below the group order."""
        parsed = {}
        for peer, text in self.get(name, dict).items():
            value = int.from_bytes(self.decode(text, f"{name}[{peer}]", _SECRET_BYTES), "big")
            if value >= GROUP_ORDER:
                raise MalformedMessage(f"{self.where}: the share of {peer!r} is not below the group order")
            parsed[peer] = value
        return parsed


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _scalar_bytes(value: int) -> bytes:
    return value.to_bytes(_SECRET_BYTES, "big")


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


@functools.lru_cache(maxsize=4096)
def _point(raw: bytes) -> PublicKey:
    """A compressed secp256k1 point; ValueError if it is not one."""
    if len(raw) != _POINT_BYTES or raw[0] not in (2, 3):
        raise ValueError("not a compressed secp256k1 point")
    return PublicKey(raw)


def _check_point(raw: bytes, owner: str, which: str) -> None:
    try:
        _point(raw)
    except ValueError:
        raise InvalidPublicKey(f"the {which} advertised by {owner!r} is not a compressed secp256k1 point") from None


@dataclass(frozen=True)
class KeyAdvertisement:
    """A client's public keys and the Feldman commitments to its two Shamir polynomials (``t`` each)."""

    client_id: str
    encryption_public_key: bytes  # secp256k1, compressed
    masking_public_key: bytes  # X25519
    masking_commitments: tuple[bytes, ...]
    seed_commitments: tuple[bytes, ...]

    def to_bytes(self, session_id: bytes) -> bytes:
        return _encode("key-advertisement", session_id, self.client_id, {
            "encryption_key": _b64(self.encryption_public_key),
            "masking_key": _b64(self.masking_public_key),
            "masking_commitments": [_b64(c) for c in self.masking_commitments],
            "seed_commitments": [_b64(c) for c in self.seed_commitments],
        })

    @classmethod
    def from_bytes(cls, payload: bytes, session_id: bytes, sender: str, threshold: int) -> KeyAdvertisement:
        """The advertisement ``sender`` posted: it binds the keys to ``sender`` and to no one else, and
        commits to two polynomials of degree ``threshold - 1``."""
        fields = _Fields(payload, "key-advertisement", session_id, sender)

        def commitments(name: str) -> tuple[bytes, ...]:
            entries = fields.get(name, list)
            if len(entries) != threshold:
                raise MalformedMessage(f"{fields.where}: {name!r} must list {threshold} commitments, got {len(entries)}")
            points = tuple(fields.decode(entry, name, _POINT_BYTES) for entry in entries)
            for raw in points:
                _check_point(raw, sender, f"{name} entry")
            return points

        advertisement = cls(sender, fields.raw("encryption_key", _POINT_BYTES), fields.raw("masking_key"),
                            commitments("masking_commitments"), commitments("seed_commitments"))
        _check_point(advertisement.encryption_public_key, sender, "encryption key")
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
    shares: tuple[EncryptedShare, ...]

    def to_bytes(self, session_id: bytes) -> bytes:
        return _encode("share-keys", session_id, self.client_id, {
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
        return cls(sender, tuple(shares))

    def share_for(self, recipient: str) -> EncryptedShare | None:
        return next((share for share in self.shares if share.recipient == recipient), None)


@dataclass(frozen=True)
class Complaint:
    """``complainer`` says the share ``accused`` sent it is bad, and shows it: the ECDH point of their
    encryption keys and a Chaum-Pedersen proof that it is the complainer's key times the accused's,
    with which anyone decrypts that one share (and the one sent back) and checks it."""

    accused: str
    channel_point: bytes
    proof: bytes  # A (33) || B (33) || z (32)

    def to_json(self) -> dict[str, str]:
        return {"accused": self.accused, "channel_point": _b64(self.channel_point), "proof": _b64(self.proof)}


@dataclass(frozen=True)
class MaskedInput:
    client_id: str
    vector: np.ndarray
    complaints: tuple[Complaint, ...] = ()

    def to_bytes(self, session_id: bytes) -> bytes:
        return _encode("masked-input", session_id, self.client_id, {
            "vector": _b64(self.vector.astype("<u8").tobytes()),
            "complaints": [complaint.to_json() for complaint in self.complaints],
        })

    @classmethod
    def from_bytes(cls, payload: bytes, session_id: bytes, sender: str, length: int) -> MaskedInput:
        """``length`` uint64 residues (the vector and the weight), and complaints; or a ``MalformedMessage``."""
        fields = _Fields(payload, "masked-input", session_id, sender)
        raw = fields.raw("vector", 8 * length)
        complaints = []
        for entry in fields.get("complaints", list):
            if not isinstance(entry, dict):
                raise MalformedMessage(f"{fields.where}: each complaint must be an object")
            complaints.append(Complaint(fields.get("accused", str, entry), fields.raw("channel_point", _POINT_BYTES, entry),
                                        fields.raw("proof", 2 * _POINT_BYTES + _SECRET_BYTES, entry)))
        return cls(sender, np.frombuffer(raw, dtype="<u8").astype(np.uint64), tuple(complaints))


@dataclass(frozen=True)
class UnmaskingResponse:
    """A survivor's answer: its shares (at its own roster position) of each neighbour's self-mask seed
    (survived) or masking key (dropped), for the survivor set whose digest it names."""

    client_id: str
    survivors_digest: bytes
    self_mask_shares: Mapping[str, int]
    masking_key_shares: Mapping[str, int]

    def to_bytes(self, session_id: bytes) -> bytes:
        def shares(mapping: Mapping[str, int]) -> dict[str, str]:
            return {peer: _b64(_scalar_bytes(value)) for peer, value in sorted(mapping.items())}

        return _encode("unmasking", session_id, self.client_id, {
            "survivors": self.survivors_digest.hex(),
            "self_mask_shares": shares(self.self_mask_shares),
            "masking_key_shares": shares(self.masking_key_shares),
        })

    @classmethod
    def from_bytes(cls, payload: bytes, session_id: bytes, sender: str) -> UnmaskingResponse:
        fields = _Fields(payload, "unmasking", session_id, sender)
        try:
            digest = bytes.fromhex(fields.get("survivors", str))
        except ValueError:
            raise MalformedMessage(f"{fields.where}: 'survivors' is not hex") from None
        if len(digest) != 32:
            raise MalformedMessage(f"{fields.where}: 'survivors' must be a 32-byte digest")
        return cls(sender, digest, fields.scalars("self_mask_shares"), fields.scalars("masking_key_shares"))


@dataclass(frozen=True)
class SecureSum:
    """What the aggregation reveals: the weighted sum, the total weight, who took part."""

    weighted_sum: np.ndarray
    integer_sum: np.ndarray
    total_weight: int
    survivors: tuple[str, ...]
    dropped: tuple[str, ...]
    excluded: tuple[str, ...] = ()  # senders of a bad share (a checked complaint): counted as dropped

    @property
    def mean(self) -> np.ndarray:
        return self.weighted_sum / self.total_weight


def survivors_digest(session_id: bytes, survivors: Iterable[str]) -> bytes:
    """The hash an unmasking response names: the session and the sorted survivor set."""
    body = json.dumps(sorted(survivors), separators=(",", ":")).encode()
    return hashlib.sha256(_DOMAIN + b"survivors/" + session_id + body).digest()


# Cryptography -----------------------------------------------------------------------------------

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


def _self_mask(seed: int, session: SessionParameters) -> np.ndarray:
    return _expand(_kdf(_scalar_bytes(seed), "self-mask", session.session_id), session.vector_length + 1)


def _masking_key(scalar: int) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(_scalar_bytes(scalar))


def _random_scalar() -> int:
    return secrets.randbelow(GROUP_ORDER - 1) + 1


def _times_base(scalar: int) -> PublicKey:
    return PublicKey.from_secret(_scalar_bytes(scalar % GROUP_ORDER))


def _channel_key(point: bytes, sender: str, recipient: str, session_id: bytes) -> bytes:
    """The AES key of the share ``sender`` sends ``recipient``, from the ECDH point of their keys."""
    return _kdf(point, _pair_label("share", sender, recipient), session_id)


def _seal_share(key: bytes, sender: str, recipient: str, session_id: bytes, plaintext: bytes) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    associated = _DOMAIN + session_id + _pair_label("share", sender, recipient).encode()
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated)


def _open_share(key: bytes, share: EncryptedShare, session_id: bytes) -> tuple[int, int] | None:
    """The (masking-key, seed) share pair a ciphertext holds, or None if it fails authentication or form."""
    nonce, body = share.ciphertext[:_NONCE_BYTES], share.ciphertext[_NONCE_BYTES:]
    associated = _DOMAIN + session_id + _pair_label("share", share.sender, share.recipient).encode()
    try:
        plaintext = AESGCM(key).decrypt(nonce, body, associated)
    except (InvalidTag, ValueError):
        return None
    if len(plaintext) != 2 * _SECRET_BYTES:
        return None
    pair = int.from_bytes(plaintext[:_SECRET_BYTES], "big"), int.from_bytes(plaintext[_SECRET_BYTES:], "big")
    return pair if all(value < GROUP_ORDER for value in pair) else None


def _polynomial(secret: int, threshold: int) -> list[int]:
    return [secret] + [_random_scalar() for _ in range(threshold - 1)]


def _evaluate(coefficients: Sequence[int], x: int) -> int:
    value = 0
    for coefficient in reversed(coefficients):
        value = (value * x + coefficient) % GROUP_ORDER
    return value


def share_is_valid(commitments: Sequence[bytes], x: int, value: int) -> bool:
    """Feldman's check: ``value G == sum_j x^j C_j`` (Horner over the commitments)."""
    if not 0 < value < GROUP_ORDER:
        return False
    try:
        points = [_point(raw) for raw in commitments]
        total = points[-1]
        step = _scalar_bytes(x)
        for point in reversed(points[:-1]):
            total = PublicKey.combine_keys([total.multiply(step), point])
        return total.format() == _times_base(value).format()
    except ValueError:  # a sum at infinity: no valid share lies there
        return False


def _interpolate_at_zero(points: Sequence[tuple[int, int]]) -> int:
    secret = 0
    for i, (xi, yi) in enumerate(points):
        numerator, denominator = 1, 1
        for j, (xj, _) in enumerate(points):
            if i != j:
                numerator = numerator * xj % GROUP_ORDER
                denominator = denominator * (xj - xi) % GROUP_ORDER
        secret = (secret + yi * numerator * pow(denominator, -1, GROUP_ORDER)) % GROUP_ORDER
    return secret


def _challenge(session_id: bytes, *points: bytes) -> int:
    return int.from_bytes(hashlib.sha256(_DOMAIN + b"dleq/" + session_id + b"".join(points)).digest(), "big") % GROUP_ORDER


def _prove_channel(private: PrivateKey, peer_public: bytes, session_id: bytes) -> tuple[bytes, bytes]:
    """The channel point ``c P_peer`` and a Chaum-Pedersen proof that it shares its logarithm with ``c G``."""
    peer = _point(peer_public)
    point = peer.multiply(private.secret).format()
    nonce = _random_scalar()
    first, second = _times_base(nonce).format(), peer.multiply(_scalar_bytes(nonce)).format()
    challenge = _challenge(session_id, private.public_key.format(), peer_public, point, first, second)
    response = (nonce + challenge * private.to_int()) % GROUP_ORDER
    return point, first + second + _scalar_bytes(response)


def _channel_is_proven(own_public: bytes, peer_public: bytes, point: bytes, proof: bytes, session_id: bytes) -> bool:
    first, second = proof[:_POINT_BYTES], proof[_POINT_BYTES : 2 * _POINT_BYTES]
    response = int.from_bytes(proof[2 * _POINT_BYTES :], "big")
    challenge = _challenge(session_id, own_public, peer_public, point, first, second)
    try:
        scalar = _scalar_bytes(challenge)
        left = _times_base(response).format()
        right = PublicKey.combine_keys([_point(first), _point(own_public).multiply(scalar)]).format()
        left2 = _point(peer_public).multiply(_scalar_bytes(response)).format()
        right2 = PublicKey.combine_keys([_point(second), _point(point).multiply(scalar)]).format()
    except ValueError:
        return False
    return left == right and left2 == right2


# Reading the board ------------------------------------------------------------------------------

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


@dataclass(frozen=True)
class Topology:
    """Who holds shares of whom: each roster member's Shamir index and neighbourhood, fixed before keys."""

    positions: Mapping[str, int]
    graph: Mapping[str, tuple[str, ...]]

    @classmethod
    def of(cls, board: BulletinBoard, session: SessionParameters) -> Topology:
        roster = board.roster(session.session_id)
        return cls(roster_positions(roster), neighbourhoods(roster, session.graph_degree, session.graph_seed))


def board_roster(board: BulletinBoard, session: SessionParameters) -> dict[str, KeyAdvertisement]:
    """The key advertisements of the closed key phase, each bound to the roster member that posted it."""
    postings = _postings(board, session, Phase.KEYS, board.roster(session.session_id), "are not on the roster")
    roster = {p.sender: KeyAdvertisement.from_bytes(p.payload, session.session_id, p.sender, session.threshold)
              for p in postings}
    session.check_roster_size(len(roster))
    return dict(sorted(roster.items()))


def share_recipients(topology: Topology, sender: str, roster: Iterable[str]) -> list[str]:
    """Whom ``sender`` shares with: its neighbours (itself included) that advertised keys."""
    holders = set(roster)
    return [member for member in topology.graph.get(sender, ()) if member in holders]


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
    topology = Topology.of(board, session)
    for sender, message in messages.items():
        if sorted(share.recipient for share in message.shares) != share_recipients(topology, sender, roster):
            raise SecureAggregationError(f"client {sender!r} did not send one share to each of its neighbours")
    return dict(sorted(messages.items()))


def complaint_holds(session: SessionParameters, topology: Topology, roster: Mapping[str, KeyAdvertisement],
                    messages: Mapping[str, ShareKeysMessage], complainer: str, complaint: Complaint) -> bool:
    """Whether ``complaint`` shows, to anyone, that the share its accused sent ``complainer`` is bad."""
    accused = complaint.accused
    if accused not in messages or complainer not in roster or complainer not in topology.graph.get(accused, ()):
        return False
    own, peer = roster[complainer].encryption_public_key, roster[accused].encryption_public_key
    if not _channel_is_proven(own, peer, complaint.channel_point, complaint.proof, session.session_id):
        return False
    share = messages[accused].share_for(complainer)
    if share is None:
        return True
    pair = _open_share(_channel_key(complaint.channel_point, accused, complainer, session.session_id), share,
                       session.session_id)
    return pair is None or not _pair_is_valid(roster[accused], topology.positions[complainer], pair)


def _pair_is_valid(advertisement: KeyAdvertisement, x: int, pair: tuple[int, int]) -> bool:
    return share_is_valid(advertisement.masking_commitments, x, pair[0]) and \
        share_is_valid(advertisement.seed_commitments, x, pair[1])


@dataclass(frozen=True)
class Outcome:
    """The closed masked-input phase as every reader sees it: the survivors and why the others are not."""

    topology: Topology
    roster: Mapping[str, KeyAdvertisement]
    messages: Mapping[str, ShareKeysMessage]
    masked: Mapping[str, MaskedInput]
    excluded: tuple[str, ...]
    survivors: tuple[str, ...]

    @property
    def dropped(self) -> tuple[str, ...]:
        """Share holders whose input is not in the sum (silent, malformed or excluded): their masking
        keys are rebuilt to remove the pairwise masks the survivors added for them."""
        alive = set(self.survivors)
        return tuple(holder for holder in self.messages if holder not in alive)

    def digest(self, session: SessionParameters) -> bytes:
        return survivors_digest(session.session_id, self.survivors)


def board_outcome(board: BulletinBoard, session: SessionParameters) -> Outcome:
    """The survivors: the share holders whose masked input is on the board, minus the senders of a bad
    share that a complaint in a masked input proves; the same for every reader of the board."""
    topology = Topology.of(board, session)
    roster = board_roster(board, session)
    messages = board_share_messages(board, session, roster)
    postings = _postings(board, session, Phase.MASKED_INPUTS, messages, "did not share keys")
    length = session.vector_length + 1
    masked = {p.sender: MaskedInput.from_bytes(p.payload, session.session_id, p.sender, length) for p in postings}
    excluded = sorted({complaint.accused for complainer, message in masked.items() for complaint in message.complaints
                       if complaint_holds(session, topology, roster, messages, complainer, complaint)})
    survivors = tuple(sorted(sender for sender in masked if sender not in excluded))
    _check_participants(
        len(survivors), session.min_survivors,
        f"{len(messages) - len(survivors)} of {len(messages)} clients dropped out"
        + (f" or were excluded ({', '.join(excluded)})" if excluded else "")
        + f", leaving {len(survivors)}; at least {session.min_survivors} must survive "
        f"(max(threshold {session.threshold}, {MIN_CLIENTS}))",
    )
    return Outcome(topology, roster, messages, dict(sorted(masked.items())), tuple(excluded), survivors)


def board_unmasking_responses(
    board: BulletinBoard, session: SessionParameters, outcome: Outcome
) -> list[UnmaskingResponse]:
    """The survivors' answers for the board's survivor set (an answer naming another set is dropped)."""
    postings = _postings(board, session, Phase.UNMASKING, outcome.survivors, "are not survivors")
    digest = outcome.digest(session)
    responses = [response for response in
                 (UnmaskingResponse.from_bytes(p.payload, session.session_id, p.sender) for p in postings)
                 if response.survivors_digest == digest]
    _check_participants(
        len(responses), session.threshold,
        f"only {len(responses)} unmasking responses for the board's survivor set; "
        f"threshold {session.threshold} needs more",
    )
    return responses


class SecureAggregationClient:
    """One client's side of a session, reading and posting on ``board`` as ``client_id``.

    Each instance serves exactly one session. Everything it acts on (the
    roster, who shared keys, the survivors) it reads from the board, never
    from the aggregator. Its keys, seed and polynomials come from the OS's
    cryptographic generator.
    """

    def __init__(self, client_id: str, session: SessionParameters, board: BulletinBoard) -> None:
        if not client_id:
            raise ValueError("client_id must be non-empty")
        self.client_id = client_id
        self.session = session
        self.board = board
        self._encryption_key = PrivateKey()
        masking, seed = _random_scalar(), _random_scalar()
        self._masking_key = _masking_key(masking)
        self._self_mask_seed = seed
        self._polynomials = (_polynomial(masking, session.threshold), _polynomial(seed, session.threshold))
        self._roster: dict[str, KeyAdvertisement] = {}
        self._topology: Topology | None = None
        self._received: dict[str, tuple[int, int]] = {}
        self._share_holders: tuple[str, ...] = ()
        self._unmasked = False

    @functools.cached_property
    def key_advertisement(self) -> KeyAdvertisement:
        masking, seed = self._polynomials
        return KeyAdvertisement(
            client_id=self.client_id,
            encryption_public_key=self._encryption_key.public_key.format(),
            masking_public_key=self._masking_key.public_key().public_bytes_raw(),
            masking_commitments=tuple(_times_base(a).format() for a in masking),
            seed_commitments=tuple(_times_base(a).format() for a in seed),
        )

    def _post(self, phase: Phase, message: Any) -> None:
        self.board.post(self.session.session_id, phase, self.client_id, message.to_bytes(self.session.session_id))

    def advertise_keys(self) -> KeyAdvertisement:
        """Round 1: post this client's public keys and the commitments to its polynomials."""
        advertisement = self.key_advertisement
        self._post(Phase.KEYS, advertisement)
        return advertisement

    def _channel_point(self, peer: str) -> bytes:
        return _point(self._roster[peer].encryption_public_key).multiply(self._encryption_key.secret).format()

    def share_plaintext(self, recipient: str, x: int) -> bytes:
        """The pair of shares for the recipient at roster position ``x``: ``f_s(x) || f_b(x)``."""
        return b"".join(_scalar_bytes(_evaluate(polynomial, x)) for polynomial in self._polynomials)

    def share_keys(self) -> ShareKeysMessage:
        """Round 2: send each neighbour that advertised keys its shares of the masking key and self-mask seed."""
        roster = board_roster(self.board, self.session)
        if roster.get(self.client_id) != self.key_advertisement:
            raise SecureAggregationError(f"client {self.client_id!r} is missing from the roster or its keys differ")
        self._roster, self._topology = roster, Topology.of(self.board, self.session)
        sid = self.session.session_id
        shares = []
        for recipient in share_recipients(self._topology, self.client_id, roster):
            key = _channel_key(self._channel_point(recipient), self.client_id, recipient, sid)
            plaintext = self.share_plaintext(recipient, self._topology.positions[recipient])
            shares.append(EncryptedShare(self.client_id, recipient,
                                         _seal_share(key, self.client_id, recipient, sid, plaintext)))
        message = ShareKeysMessage(self.client_id, tuple(shares))
        self._post(Phase.SHARES, message)
        return message

    def masked_input(self, values: np.ndarray, weight: int) -> MaskedInput:
        """Round 3: check the shares neighbours sent (a bad one becomes a complaint), then mask
        ``weight * values`` with the self mask and a pairwise mask per neighbour that shared keys."""
        if self._topology is None:
            raise SecureAggregationError("share_keys must run before masked_input")
        if self._share_holders:
            # Masks are fixed per session: two inputs under the same masks hand the aggregator their difference.
            raise SecureAggregationError(f"client {self.client_id!r} already sent its masked input in this session")
        sid = self.session.session_id
        messages = board_share_messages(self.board, self.session, self._roster)
        if self.client_id not in messages:
            raise SecureAggregationError(f"client {self.client_id!r} has no share message on the board")
        holders = tuple(m for m in self._topology.graph[self.client_id] if m in messages)
        received, complaints = {}, []
        x = self._topology.positions[self.client_id]
        for sender in holders:
            point = self._channel_point(sender)
            share = messages[sender].share_for(self.client_id)
            pair = None if share is None else _open_share(_channel_key(point, sender, self.client_id, sid), share, sid)
            if pair is not None and _pair_is_valid(self._roster[sender], x, pair):
                received[sender] = pair
            else:
                point, proof = _prove_channel(self._encryption_key, self._roster[sender].encryption_public_key, sid)
                complaints.append(Complaint(sender, point, proof))
        encoded = self.session.codec.encode(values, weight)
        length = self.session.vector_length + 1
        if encoded.shape != (length,):
            raise ValueError(f"expected {self.session.vector_length} values, got {encoded.shape[0] - 1}")
        masked = encoded + _self_mask(self._self_mask_seed, self.session)
        peers = (
            (peer, _pairwise_seed(self._masking_key, self._roster[peer].masking_public_key, self.client_id, peer, sid))
            for peer in holders if peer != self.client_id
        )
        message = MaskedInput(self.client_id, _signed_masks(masked, self.client_id, peers, length) & self.session.codec.mask,
                              tuple(complaints))
        self._post(Phase.MASKED_INPUTS, message)
        # Committed only once posted: a refused input may be retried, a sent one may not.
        self._received, self._share_holders = received, holders
        return message

    def unmask(self, survivors: Sequence[str] | None = None) -> UnmaskingResponse:
        """Round 4: reveal self-mask shares of the board's survivors and masking-key shares of the
        dropped, naming the survivor set by its hash.

        ``survivors``, if given, is what the aggregator claims; it must be the
        board's set exactly. A masked input whose bytes the board cannot hand
        over yet raises :class:`PostingUnavailable` and reveals nothing: ask
        again later. Answers once per session: a second answer (for another
        set) could hand out both secrets of one client.
        """
        if self._unmasked:
            raise SecureAggregationError(f"client {self.client_id!r} already answered the unmasking request")
        if not self._share_holders:
            raise SecureAggregationError("masked_input must run before unmask")
        outcome = board_outcome(self.board, self.session)
        if survivors is not None and sorted(survivors) != list(outcome.survivors):
            raise SurvivorSetMismatch(
                f"client {self.client_id!r} was asked to unmask for survivors {sorted(survivors)}, "
                f"but the board's survivor set is {list(outcome.survivors)}"
            )
        if self.client_id not in outcome.survivors:
            raise SecureAggregationError(f"client {self.client_id!r} is not among the board's survivors")
        self._unmasked = True
        alive = set(outcome.survivors)
        response = UnmaskingResponse(
            client_id=self.client_id,
            survivors_digest=outcome.digest(self.session),
            self_mask_shares={peer: pair[1] for peer, pair in self._received.items() if peer in alive},
            masking_key_shares={peer: pair[0] for peer, pair in self._received.items() if peer not in alive},
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
        return board_outcome(self.board, self.session).survivors

    def finish(self) -> SecureSum:
        """Close round 4 and remove the masks."""
        self._close(Phase.UNMASKING)
        return secure_sum_from_board(self.board, self.session)


def _signed_masks(
    total: np.ndarray, own_id: str, peers: Iterable[tuple[str, bytes]], length: int
) -> np.ndarray:
    """Add ``+PRG(s)`` for peers after ``own_id`` and ``-PRG(s)`` for peers before it (mod 2^64)."""
    for peer_id, seed in peers:
        mask = _expand(seed, length)
        total = total + mask if own_id < peer_id else total - mask
    return total


def secure_sum_from_board(board: BulletinBoard, session: SessionParameters) -> SecureSum:
    """The sum of a completed session, from the board alone and with no key: what any verifier can recompute."""
    outcome = board_outcome(board, session)
    responses = board_unmasking_responses(board, session, outcome)
    length = session.vector_length + 1
    total = np.zeros(length, dtype=np.uint64)
    for client in outcome.survivors:
        total = total + outcome.masked[client].vector
    for client in outcome.survivors:
        total = total - _self_mask(_rebuild(session, outcome, responses, client, self_mask=True), session)
    alive = set(outcome.survivors)
    for client in outcome.dropped:
        private = _masking_key(_rebuild(session, outcome, responses, client, self_mask=False))
        if private.public_key().public_bytes_raw() != outcome.roster[client].masking_public_key:
            raise SecureAggregationError(
                f"client {client!r} committed to a masking key other than the one it advertised: "
                "its pairwise masks cannot be removed"
            )
        # Each surviving neighbour v added +PRG(s_uv) if v < u, else -PRG(s_uv); undo it.
        for survivor in outcome.topology.graph[client]:
            if survivor in alive and survivor in outcome.messages:
                seed = _pairwise_seed(private, outcome.roster[survivor].masking_public_key, client, survivor,
                                      session.session_id)
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
        survivors=outcome.survivors,
        dropped=outcome.dropped,
        excluded=outcome.excluded,
    )


def _rebuild(session: SessionParameters, outcome: Outcome, responses: Sequence[UnmaskingResponse], client: str,
             self_mask: bool) -> int:
    """``client``'s secret (self-mask seed or masking key) from the first ``t`` revealed shares that verify
    against its commitments, in posting order: each share is checked once (Feldman), a corrupt one is
    dropped on sight, so the cost grows linearly with the responses, and every reader picks the same
    shares and the same secret."""
    kind = "self-mask" if self_mask else "masking-key"
    advertisement = outcome.roster[client]
    commitments = advertisement.seed_commitments if self_mask else advertisement.masking_commitments
    holders = set(outcome.topology.graph[client])
    points, corrupt = [], []
    for response in responses:
        if response.client_id not in holders:
            continue
        value = (response.self_mask_shares if self_mask else response.masking_key_shares).get(client)
        if value is None:
            continue
        x = outcome.topology.positions[response.client_id]
        if share_is_valid(commitments, x, value):
            points.append((x, value))
            if len(points) == session.threshold:
                return _interpolate_at_zero(points)
        else:
            corrupt.append(response.client_id)
    raise SecureAggregationError(
        f"only {len(points)} valid {kind} shares of {client!r}; threshold {session.threshold} needs more"
        + (f" (corrupt shares from {', '.join(corrupt)} were dropped)" if corrupt else "")
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
