"""Secure aggregation after Bonawitz et al. (CCS 2017), for one honest-but-curious server.

The server learns the sum of the clients' vectors and nothing else about any
one of them, and the sum survives up to ``n - threshold`` clients dropping out
after they sent their masked input. The four rounds of the paper:

1. **Advertise keys.** Each client makes two X25519 key pairs: ``c`` to
   encrypt the shares it sends to peers, ``s`` to agree pairwise mask seeds.
2. **Share keys.** Each client draws a self-mask seed ``b`` and splits both
   ``b`` and its ``s`` private key into Shamir shares (threshold ``t``), one per
   peer, each encrypted and authenticated (AES-GCM) under the pair's ``c``
   agreement, relayed by the server, which cannot read them.
3. **Masked input.** Each client sends
   ``y_u = x_u + PRG(b_u) + sum_{v>u} PRG(s_uv) - sum_{v<u} PRG(s_uv)  (mod 2^k)``
   where ``s_uv`` comes from X25519(s_u, s_v) through HKDF. Pairwise masks
   cancel in the sum exactly, because the inputs are integers (fixed point).
4. **Unmasking.** Each survivor reveals, for every peer, either its share of
   ``b`` (peer survived) or its share of ``s`` (peer dropped), never both: a
   client answers once per session. With ``t`` answers the server rebuilds the
   self masks of survivors and the pairwise masks of dropped clients, and
   removes them. Rebuilt secrets are checked against the public key or the
   commitment each client published, so a tampered share is detected.

Requiring ``t > n/2`` keeps a server that splits clients into two groups from
learning both secrets of one client. With two clients the sum would reveal
each input to the other, so at least three take part.

Shamir sharing is pycryptodome's (GF(2^128), 16-byte secrets); the 32-byte
secrets are split as two halves sharing the same indices.
"""
from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

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
_HALF = 16  # pycryptodome's Shamir shares 16-byte secrets
_NONCE_BYTES = 12


class SecureAggregationError(RuntimeError):
    """The protocol cannot complete (too few clients, bad message, tampered share...)."""


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


@dataclass(frozen=True)
class KeyAdvertisement:
    client_id: str
    encryption_public_key: bytes
    masking_public_key: bytes


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


@dataclass(frozen=True)
class MaskedInput:
    client_id: str
    vector: np.ndarray


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


@dataclass(frozen=True)
class SecureSum:
    """What the server learns: the weighted sum, the total weight, who took part."""

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


def _check_unique(ids: Sequence[str], what: str) -> None:
    if len(set(ids)) != len(ids):
        raise SecureAggregationError(f"duplicate client ids among {what}: {sorted(ids)}")


def _check_participants(
    ids: Sequence[str], expected: Iterable[str], what: str, stray_reason: str, threshold: int, shortfall: str
) -> None:
    """No client twice, none that the previous round did not admit, and at least ``threshold``."""
    _check_unique(ids, f"the {what}")
    stray = sorted(set(ids) - set(expected))
    if stray:
        raise SecureAggregationError(f"{what} from clients that {stray_reason}: {stray}")
    if len(ids) < threshold:
        raise SecureAggregationError(shortfall)


def _signed_masks(
    total: np.ndarray, own_id: str, peers: Iterable[tuple[str, bytes]], length: int
) -> np.ndarray:
    """Add ``+PRG(s)`` for peers after ``own_id`` and ``-PRG(s)`` for peers before it (mod 2^64)."""
    for peer_id, seed in peers:
        mask = _expand(seed, length)
        total = total + mask if own_id < peer_id else total - mask
    return total


class SecureAggregationClient:
    """One client's side of a session. Each instance serves exactly one session."""

    def __init__(self, client_id: str, session: SessionParameters) -> None:
        if not client_id:
            raise ValueError("client_id must be non-empty")
        self.client_id = client_id
        self.session = session
        self._encryption_key = X25519PrivateKey.generate()
        self._masking_key = X25519PrivateKey.generate()
        self._self_mask_seed = os.urandom(_SECRET_BYTES)
        self._roster: dict[str, KeyAdvertisement] = {}
        self._received: dict[str, tuple[RevealedShare, RevealedShare]] = {}
        self._share_holders: tuple[str, ...] = ()
        self._unmasked = False

    def advertise_keys(self) -> KeyAdvertisement:
        return KeyAdvertisement(
            client_id=self.client_id,
            encryption_public_key=self._encryption_key.public_key().public_bytes_raw(),
            masking_public_key=self._masking_key.public_key().public_bytes_raw(),
        )

    def share_keys(self, roster: Sequence[KeyAdvertisement]) -> ShareKeysMessage:
        """Shamir-share this client's masking key and self-mask seed with every roster member."""
        ids = [ad.client_id for ad in roster]
        _check_unique(ids, "the roster")
        if self.advertise_keys() not in roster:
            raise SecureAggregationError(f"client {self.client_id!r} is missing from the roster or its keys differ")
        self.session.check_roster_size(len(roster))
        self._roster = {ad.client_id: ad for ad in roster}
        ordered = sorted(ids)
        masking_shares = _split(self._masking_key.private_bytes_raw(), self.session.threshold, len(ordered))
        seed_shares = _split(self._self_mask_seed, self.session.threshold, len(ordered))
        shares = []
        for recipient, masking_share, seed_share in zip(ordered, masking_shares, seed_shares):
            key = _share_key(
                self._encryption_key, self._roster[recipient].encryption_public_key,
                self.client_id, recipient, self.session.session_id,
            )
            nonce = os.urandom(_NONCE_BYTES)
            plaintext = masking_share.index.to_bytes(2, "big") + masking_share.share + seed_share.share
            associated = _DOMAIN + self.session.session_id + _pair_label("share", self.client_id, recipient).encode()
            shares.append(EncryptedShare(self.client_id, recipient, nonce + AESGCM(key).encrypt(nonce, plaintext, associated)))
        return ShareKeysMessage(
            client_id=self.client_id,
            self_mask_commitment=_commit(self._self_mask_seed, self.client_id, self.session.session_id),
            shares=tuple(shares),
        )

    def masked_input(
        self, values: np.ndarray, weight: int, inbox: Sequence[EncryptedShare]
    ) -> MaskedInput:
        """Decrypt the shares peers sent, then mask ``weight * values`` with self and pairwise masks.

        The senders in ``inbox`` are the clients that completed round 2; only
        they get pairwise masks, since only their masks can be recovered.
        """
        if not self._roster:
            raise SecureAggregationError("share_keys must run before masked_input")
        if self._share_holders:
            # Masks are fixed per session: two inputs under the same masks hand the server their difference.
            raise SecureAggregationError(f"client {self.client_id!r} already sent its masked input in this session")
        senders = [share.sender for share in inbox]
        _check_unique(senders, "the senders of shares")
        if self.client_id not in senders:
            raise SecureAggregationError(f"client {self.client_id!r} did not receive its own share")
        if len(senders) < self.session.threshold:
            raise SecureAggregationError(
                f"only {len(senders)} clients shared keys; threshold {self.session.threshold} cannot be met"
            )
        received = {share.sender: self._decrypt(share) for share in inbox}
        holders = tuple(sorted(senders))
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
        masked = _signed_masks(masked, self.client_id, peers, length)
        # Committed only now: a refused input may be retried, a sent one may not.
        self._received, self._share_holders = received, holders
        return MaskedInput(self.client_id, masked & self.session.codec.mask)

    def _decrypt(self, share: EncryptedShare) -> tuple[RevealedShare, RevealedShare]:
        if share.recipient != self.client_id:
            raise SecureAggregationError(
                f"share from {share.sender!r} is addressed to {share.recipient!r}, not {self.client_id!r}"
            )
        if share.sender not in self._roster:
            raise SecureAggregationError(f"share from {share.sender!r}, who is not on the roster")
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
        index = int.from_bytes(plaintext[:2], "big")
        masking = plaintext[2 : 2 + _SECRET_BYTES]
        seed = plaintext[2 + _SECRET_BYTES :]
        return RevealedShare(index, masking), RevealedShare(index, seed)

    def unmask(self, survivors: Sequence[str]) -> UnmaskingResponse:
        """Reveal self-mask shares of ``survivors`` and masking-key shares of the rest.

        Answers once per session: a second request (perhaps with another
        survivor list) would let the server learn both secrets of one client.
        """
        if self._unmasked:
            raise SecureAggregationError(f"client {self.client_id!r} already answered the unmasking request")
        if not self._share_holders:
            raise SecureAggregationError("masked_input must run before unmask")
        survivors = list(survivors)
        _check_unique(survivors, "the survivors")
        unknown = sorted(set(survivors) - set(self._share_holders))
        if unknown:
            raise SecureAggregationError(f"survivors {unknown} never shared keys in this session")
        if self.client_id not in survivors:
            raise SecureAggregationError(f"client {self.client_id!r} is not listed among the survivors")
        if len(survivors) < self.session.threshold:
            raise SecureAggregationError(
                f"only {len(survivors)} survivors; threshold {self.session.threshold} cannot be met"
            )
        self._unmasked = True
        alive = set(survivors)
        return UnmaskingResponse(
            client_id=self.client_id,
            self_mask_shares={peer: self._received[peer][1] for peer in self._share_holders if peer in alive},
            masking_key_shares={peer: self._received[peer][0] for peer in self._share_holders if peer not in alive},
        )


class SecureAggregationServer:
    """The server's side of one session: relays shares, sums masked inputs, removes masks."""

    def __init__(self, session: SessionParameters) -> None:
        self.session = session
        self._roster: dict[str, KeyAdvertisement] = {}
        self._commitments: dict[str, bytes] = {}
        self._masked: dict[str, np.ndarray] = {}

    def collect_keys(self, advertisements: Sequence[KeyAdvertisement]) -> tuple[KeyAdvertisement, ...]:
        """The roster (round 1) to broadcast to every client."""
        _check_unique([ad.client_id for ad in advertisements], "the key advertisements")
        self.session.check_roster_size(len(advertisements))
        self._roster = {ad.client_id: ad for ad in advertisements}
        return tuple(sorted(advertisements, key=lambda ad: ad.client_id))

    def route_shares(self, messages: Sequence[ShareKeysMessage]) -> dict[str, tuple[EncryptedShare, ...]]:
        """Each round-2 client's inbox: the shares addressed to it by the other round-2 clients."""
        senders = [message.client_id for message in messages]
        _check_participants(
            senders, self._roster, "share messages", "are not on the roster", self.session.threshold,
            f"only {len(senders)} of {len(self._roster)} clients shared keys; "
            f"threshold {self.session.threshold} cannot be met",
        )
        inboxes: dict[str, list[EncryptedShare]] = {client: [] for client in senders}
        for message in messages:
            recipients = sorted(share.recipient for share in message.shares)
            if recipients != sorted(self._roster):
                raise SecureAggregationError(f"client {message.client_id!r} did not send one share to each roster member")
            if any(share.sender != message.client_id for share in message.shares):
                raise SecureAggregationError(f"client {message.client_id!r} sent shares under another sender's name")
            self._commitments[message.client_id] = message.self_mask_commitment
            for share in message.shares:
                if share.recipient in inboxes:
                    inboxes[share.recipient].append(share)
        return {client: tuple(inbox) for client, inbox in inboxes.items()}

    def collect_masked_inputs(self, inputs: Sequence[MaskedInput]) -> tuple[str, ...]:
        """The survivors, to be sent to each of them with the unmasking request."""
        ids = [masked.client_id for masked in inputs]
        _check_participants(
            ids, self._commitments, "masked inputs", "did not share keys", self.session.threshold,
            f"{len(self._commitments) - len(ids)} of {len(self._commitments)} clients dropped out; "
            f"at most {len(self._commitments) - self.session.threshold} may (threshold {self.session.threshold})",
        )
        length = self.session.vector_length + 1
        for masked in inputs:
            if masked.vector.shape != (length,) or masked.vector.dtype != np.uint64:
                raise SecureAggregationError(
                    f"masked input of {masked.client_id!r} is not {length} uint64 values"
                )
        self._masked = {masked.client_id: masked.vector for masked in inputs}
        return tuple(sorted(ids))

    def unmask(self, responses: Sequence[UnmaskingResponse]) -> SecureSum:
        """Rebuild and remove the masks; needs ``threshold`` responses from survivors."""
        responders = [response.client_id for response in responses]
        _check_participants(
            responders, self._masked, "unmasking responses", "are not survivors", self.session.threshold,
            f"only {len(responders)} unmasking responses; threshold {self.session.threshold} needs more",
        )
        survivors = sorted(self._masked)
        dropped = sorted(set(self._commitments) - set(self._masked))
        length = self.session.vector_length + 1
        total = np.zeros(length, dtype=np.uint64)
        for vector in self._masked.values():
            total = total + vector
        for client in survivors:
            seed = _combine(self._shares_of(responses, client, self_mask=True))
            if _commit(seed, client, self.session.session_id) != self._commitments[client]:
                raise SecureAggregationError(
                    f"the rebuilt self-mask seed of {client!r} does not match its commitment: a share is corrupt"
                )
            total = total - _expand(_kdf(seed, "self-mask", self.session.session_id), length)
        for client in dropped:
            private = X25519PrivateKey.from_private_bytes(_combine(self._shares_of(responses, client, self_mask=False)))
            if private.public_key().public_bytes_raw() != self._roster[client].masking_public_key:
                raise SecureAggregationError(
                    f"the rebuilt masking key of dropped client {client!r} does not match its public key: "
                    "a share is corrupt"
                )
            # Each survivor v added +PRG(s_uv) if v < u, else -PRG(s_uv); undo it.
            for survivor in survivors:
                seed = _pairwise_seed(private, self._roster[survivor].masking_public_key,
                                      client, survivor, self.session.session_id)
                mask = _expand(seed, length)
                total = total - mask if survivor < client else total + mask
        total &= self.session.codec.mask
        integer_sum, total_weight = self.session.codec.decode_integers(total)
        # Each client checked only its own weight; past the codec's total the sum may have wrapped.
        if not 1 <= total_weight <= self.session.codec.max_total_weight:
            raise SecureAggregationError(
                f"the survivors' weights sum to {total_weight}, outside [1, {self.session.codec.max_total_weight}] "
                "(max_total_weight): the sum may have wrapped; raise max_total_weight"
            )
        return SecureSum(
            weighted_sum=integer_sum.astype(np.float64) / 2.0**self.session.codec.fractional_bits,
            integer_sum=integer_sum,
            total_weight=total_weight,
            survivors=tuple(survivors),
            dropped=tuple(dropped),
        )

    def _shares_of(
        self, responses: Sequence[UnmaskingResponse], client: str, self_mask: bool
    ) -> list[RevealedShare]:
        shares = [
            (response.self_mask_shares if self_mask else response.masking_key_shares).get(client)
            for response in responses
        ]
        present = [share for share in shares if share is not None]
        if len(present) < self.session.threshold:
            kind = "self-mask" if self_mask else "masking-key"
            raise SecureAggregationError(
                f"only {len(present)} {kind} shares of {client!r}; threshold {self.session.threshold} needs more"
            )
        indices = [share.index for share in present]
        if len(set(indices)) != len(indices) or any(len(share.share) != _SECRET_BYTES for share in present):
            raise SecureAggregationError(f"malformed or repeated shares of {client!r}")
        return present


def secure_weighted_sum(
    inputs: Mapping[str, tuple[np.ndarray, int]],
    session: SessionParameters,
    dropouts: Iterable[str] = (),
) -> SecureSum:
    """Run all four rounds in one process: ``inputs`` maps client id to (values, weight).

    Clients in ``dropouts`` share keys and then never deliver their masked
    input: the case dropout recovery exists for.
    """
    clients = {client_id: SecureAggregationClient(client_id, session) for client_id in inputs}
    dropping = set(dropouts)
    unknown = sorted(dropping - set(clients))
    if unknown:
        raise ValueError(f"cannot drop unknown clients {unknown}")
    server = SecureAggregationServer(session)
    roster = server.collect_keys([client.advertise_keys() for client in clients.values()])
    inboxes = server.route_shares([client.share_keys(roster) for client in clients.values()])
    survivors = server.collect_masked_inputs(
        [
            clients[client_id].masked_input(values, weight, inboxes[client_id])
            for client_id, (values, weight) in inputs.items()
            if client_id not in dropping
        ]
    )
    return server.unmask([clients[client_id].unmask(survivors) for client_id in survivors])
