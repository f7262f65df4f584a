"""Secure aggregation's bulletin board on chain: the round registry broadcasts, the store holds the bytes.

:class:`ChainBulletinBoard` is :class:`fl.secure_aggregation.BulletinBoard` for
one round of a study declared with secure aggregation. The protocol's
session is the round: its id is derived from (chain id, registry, study,
round), so no message of one round or deployment is valid in another; its
roster is the round's invited hospitals (the ``RoundOpened`` event, or all of
the study's participants when the round invites anyone).

- **post**: the payload (canonical JSON: key advertisements, shares already
  encrypted for their recipient, masked inputs, unmasking responses; public
  by design) goes to the store, durably, and its CID and SHA-256 on chain:
  ``postSecureMessage`` for keys, shares and unmasking responses; the masked
  input is the round's update itself (``submitUpdate``, or
  ``submitPrivateUpdate`` with the DP declaration in a budgeted study), so
  the survivors are the round's submitters.
- **close**: the study's coordinator closes the round's current phase on chain.
- **read**: the postings of a phase the chain says is closed, in chain order,
  roster members only (filtered first, before anything of a posting is
  parsed), each sender's first only. A posting whose CID does not parse,
  whose bytes do not hash to the SHA-256 on chain, are too large, or do not
  parse as that phase's message counts as not posted: every reader sees the
  same bytes for a CID, so every reader decides the same way, and a faulty or
  malicious party is a dropout, never an error that blocks the round. So is,
  in a study with privacy budgets, a masked input whose DP declaration the
  verifier's privacy check refuses (:func:`offchain.rounds.privacy.privacy_faults`,
  read from the chain alone). A
  store read that fails is another matter: another reader may have the
  bytes, so acting as if the posting were absent would split the readers'
  views (and, in the unmasking phase, reveal both secrets of one hospital).
  The read raises :class:`~fl.secure_aggregation.PostingUnavailable` instead;
  nodes and the coordinator ask again at their next step, until the round's
  deadline.

The chain authenticates every sender (the transaction's signer), orders the
postings, and closes each phase once for every reader; so every client acts
on the same roster, the same key holders and the same survivors, and anyone
can derive the sum with no key (:func:`secure_sum`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

from eth_utils import to_checksum_address

from fl.models import ParameterLayout
from fl.secure_aggregation import (
    BulletinBoard,
    BulletinBoardError,
    KeyAdvertisement,
    MaskedInput,
    Phase,
    Posting,
    PostingUnavailable,
    SecureAggregationError,
    SecureSum,
    SessionParameters,
    ShareKeysMessage,
    Topology,
    UnmaskingResponse,
    secure_sum_from_board,
    share_recipients,
)
from offchain.ipfs import StoreError
from offchain.rounds.client import ArtifactRef, SecurePhase
from offchain.rounds.errors import RoundsError
from offchain.rounds.privacy import privacy_faults
from offchain.rounds.study import Study, store_public

#: The board's phases as the registry numbers them.
CHAIN_PHASES: Mapping[Phase, SecurePhase] = {
    Phase.KEYS: SecurePhase.KEYS,
    Phase.SHARES: SecurePhase.SHARES,
    Phase.MASKED_INPUTS: SecurePhase.MASKED_INPUTS,
    Phase.UNMASKING: SecurePhase.UNMASKING,
}
#: The registry's phases as the board names them (FINISHED has no board phase: all are closed).
BOARD_PHASES: Mapping[SecurePhase, Phase] = {chain: board for board, chain in CHAIN_PHASES.items()}
#: The largest payload a reader fetches: a share message carries two 32-byte shares per roster member.
MAX_PAYLOAD_BYTES = 64 << 20
_SESSION_DOMAIN = "medshare/secagg-round/1"

Submit = Callable[[ArtifactRef], None]


def session_id(chain_id: int, registry: str, study: int, round_number: int) -> bytes:
    """The session id of a study's round: unique to the chain, the registry, the study and the round."""
    label = f"{_SESSION_DOMAIN}|{chain_id}|{registry.lower()}|{study}|{round_number}"
    return hashlib.sha256(label.encode()).digest()


def session_parameters(study: Study, round_number: int) -> SessionParameters:
    """The round's session: its id, the study's threshold and codec, the length of its flattened model,
    and on a SecAgg+ graph its seed: the hash of the block that opened the round (the roster was fixed in
    that block's transaction, so no hospital knew the graph when it was named)."""
    settings = study.config.secure_aggregation
    if settings is None:
        raise RoundsError(f"study {study.number} does not run secure aggregation")
    member = study.member
    layout = ParameterLayout.of(study.config.model.build(seed=0).state_dict())
    seed = b""
    if settings.graph_degree:
        opened = member.rounds.round(study.number, round_number).opened_block
        seed = bytes(member.rounds.contract.provider.web3.eth.get_block(opened)["hash"])
    return settings.session(session_id(member.chain_id, member.rounds.contract.address, study.number, round_number),
                            layout.size, graph_seed=seed)


class ChainBulletinBoard(BulletinBoard):
    """The board of one round of ``study``, posting as the study member that signs for ``study.member``.

    ``submit`` sends this member's masked input as its update (the node sets it: the sample count,
    and the DP declaration in a budgeted study, go with it); a board that only reads (a verifier,
    the coordinator) needs none.
    """

    def __init__(self, study: Study, round_number: int, *, submit: Submit | None = None) -> None:
        self.study = study
        self.round = round_number
        self.session = session_parameters(study, round_number)
        self.submit = submit
        self._roster: tuple[str, ...] | None = None
        self._read: dict[Phase, tuple[Posting, ...]] = {}  # a closed phase's postings never change

    @property
    def rounds(self):
        return self.study.member.rounds

    def _check_session(self, session_id: bytes) -> None:
        if session_id != self.session.session_id:
            raise BulletinBoardError(f"session {session_id.hex()} is not study {self.study.number} "
                                     f"round {self.round}'s ({self.session.session_id.hex()})")

    def chain_phase(self) -> SecurePhase:
        """The round's current phase on chain."""
        phase = self.rounds.round(self.study.number, self.round).secure_phase
        if phase is None:
            raise BulletinBoardError(f"study {self.study.number} round {self.round} is not a secure round")
        return phase

    # BulletinBoard -----------------------------------------------------------------------------

    def roster(self, session_id: bytes) -> tuple[str, ...]:
        """The round's invited hospitals (all of the study's participants when it invites anyone)."""
        self._check_session(session_id)
        if self._roster is None:
            invited = self.rounds.round(self.study.number, self.round).invited or self.study.config.participants
            self._roster = tuple(to_checksum_address(account) for account in invited)
        return self._roster

    def post(self, session_id: bytes, phase: Phase, sender: str, payload: bytes) -> None:
        """Store ``payload`` in the clear and name it on chain, signed by this member (``sender``)."""
        self._check_session(session_id)
        if to_checksum_address(sender) != to_checksum_address(self.study.member.address):
            raise BulletinBoardError(f"this board signs as {self.study.member.address}, not {sender}")
        if not isinstance(payload, bytes):
            raise BulletinBoardError(f"payloads are bytes, got {type(payload).__name__}")
        if phase is Phase.MASKED_INPUTS and self.submit is None:
            raise BulletinBoardError("this board has no way to submit a masked input (no sample count given)")
        message = store_public(self.study.member.store, payload)
        if phase is Phase.MASKED_INPUTS:
            self.submit(message)
        else:
            self.rounds.post_secure_message(self.study.number, self.round, CHAIN_PHASES[phase], message)

    def close(self, session_id: bytes, phase: Phase) -> None:
        """Close ``phase`` on chain (only the study's coordinator may)."""
        self._check_session(session_id)
        self.rounds.close_secure_phase(self.study.number, self.round, CHAIN_PHASES[phase])

    def read(self, session_id: bytes, phase: Phase) -> tuple[Posting, ...]:
        """The valid postings of a phase the chain closed: first per sender, roster members only."""
        self._check_session(session_id)
        if phase not in self._read:
            if self.chain_phase() <= CHAIN_PHASES[phase]:
                raise BulletinBoardError(f"phase {phase.value!r} of study {self.study.number} round {self.round} "
                                         "is still open: its postings are not final")
            self._read[phase] = self._valid(phase, self.postings(phase))
        return self._read[phase]

    # Reading the chain ---------------------------------------------------------------------------

    def senders(self, phase: Phase) -> list[str]:
        """Who has posted in ``phase`` so far (open or closed), as :meth:`postings`, payloads unchecked:
        what the coordinator counts to decide whether to close a phase early."""
        return [sender for sender, _ in self.postings(phase)]

    def postings(self, phase: Phase) -> list[tuple[str, ArtifactRef | None]]:
        """The chain's postings of ``phase``: roster members only, first per sender, in chain order
        (None: a CID that does not parse, which counts as silence)."""
        roster = set(self.roster(self.session.session_id))
        if phase is Phase.MASKED_INPUTS:
            found = self._updates()
        else:
            found = [(m.sender, m.artifact)
                     for m in self.rounds.secure_messages(self.study.number, self.round, CHAIN_PHASES[phase])]
        first: dict[str, ArtifactRef | None] = {}
        for sender, artifact in found:
            sender = to_checksum_address(sender)
            if sender in roster and sender not in first:
                first[sender] = artifact
        return list(first.items())

    def _updates(self) -> list[tuple[str, ArtifactRef]]:
        return [(update.participant, update.artifact) for update in self.rounds.updates(self.study.number, self.round)]

    def _valid(self, phase: Phase, postings: list[tuple[str, ArtifactRef | None]]) -> tuple[Posting, ...]:
        if phase is Phase.MASKED_INPUTS:  # a masked input the privacy check refuses is silence (privacy_faults)
            faulty = privacy_faults(self.rounds, self.study.number, self.round, [s for s, _ in postings],
                                    self.study.config)
            postings = [(sender, artifact) for sender, artifact in postings if sender not in faulty]
        kept = []
        for sender, artifact in postings:
            payload = None if artifact is None else self._fetch(artifact)
            if payload is not None and self._parses(phase, sender, payload):
                kept.append(Posting(sender, payload))
        return tuple(kept)

    def _fetch(self, artifact: ArtifactRef) -> bytes | None:
        """The payload's bytes if they hash to the SHA-256 on chain, else None (the same for every
        reader); PostingUnavailable if the store cannot hand them over now."""
        store = self.study.member.store
        digest, chunks, size = hashlib.sha256(), [], 0
        try:
            for chunk in store.iter_cat(artifact.cid):
                size += len(chunk)
                if size > MAX_PAYLOAD_BYTES:
                    return None
                digest.update(chunk)
                chunks.append(chunk)
        except StoreError as error:
            raise PostingUnavailable(f"the bytes of {artifact.cid} cannot be read from the store now: {error}") \
                from None
        return b"".join(chunks) if digest.digest() == bytes(artifact.sha256) else None

    def _parses(self, phase: Phase, sender: str, payload: bytes) -> bool:
        """Whether ``payload`` is a well-formed message of ``phase`` from ``sender`` for this session."""
        session = self.session.session_id
        try:
            if phase is Phase.KEYS:
                KeyAdvertisement.from_bytes(payload, session, sender, self.session.threshold)
            elif phase is Phase.SHARES:
                message = ShareKeysMessage.from_bytes(payload, session, sender)
                # One share for each neighbour that holds keys, or the share phase could not be read by anyone.
                holders = [posting.sender for posting in self.read(session, Phase.KEYS)]
                wanted = share_recipients(Topology.of(self, self.session), sender, holders)
                if sorted(share.recipient for share in message.shares) != wanted:
                    return False
            elif phase is Phase.MASKED_INPUTS:
                MaskedInput.from_bytes(payload, session, sender, self.session.vector_length + 1)
            else:
                UnmaskingResponse.from_bytes(payload, session, sender)
        except SecureAggregationError:
            return False
        return True


def secure_sum(study: Study, round_number: int) -> SecureSum:
    """The sum of a round whose phases are all closed, from the chain and the store alone, with no key;
    SecureAggregationError if the postings cannot give it (too few survivors or responses, a corrupt share)."""
    board = ChainBulletinBoard(study, round_number)
    return secure_sum_from_board(board, board.session)


def survivors_and_dropped(study: Study, round_number: int) -> tuple[list[str], list[str]]:
    """A secure round's survivors (whose masked input the committed sum holds: the commit's counted
    submitters; before a commit, the submitters so far) and the dropped (the rest of its roster), in
    roster order, from the chain alone."""
    info = study.member.rounds.round(study.number, round_number)
    roster = [to_checksum_address(a) for a in (info.invited or study.config.participants)]
    if info.state == "committed":
        counted = info.counted_submitters
    elif info.state == "open":
        counted = study.member.rounds.submitters(study.number, round_number)
    else:
        counted = ()  # a cancelled round summed nobody's input
    survived = {to_checksum_address(account) for account in counted}
    return [a for a in roster if a in survived], [a for a in roster if a not in survived]
