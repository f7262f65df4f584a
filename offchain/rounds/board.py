"""A study's round on chain as the round steps of :mod:`fl.round` see it: an update board and store.

The in-process simulation keeps updates in memory (:class:`fl.round.InMemoryBoard`,
:class:`fl.round.InMemoryStore`); on the chain path a round's update bytes are sealed for the
study's update readers into the node's store (:meth:`Study.seal_update`, read back by
:meth:`Study.open`), and an update is posted by the node's own submission to the round registry
(with its DP declaration in a budgeted study) and listed from the registry's events. So a hospital
node runs the same :class:`fl.round.HospitalStep` as a simulated hospital.

A reference names the update's author and CID: its bytes are opened bound to the author's place,
and two participants posting the same CID stay two updates.
"""

from __future__ import annotations

from collections.abc import Callable

from fl.artifacts import ArtifactError
from fl.round import PostedUpdate
from offchain.rounds.client import ArtifactRef
from offchain.rounds.errors import RoundsError
from offchain.rounds.sealed import UPDATE
from offchain.rounds.study import Study

Submit = Callable[[ArtifactRef, int], object]


class UpdateNotTaken(Exception):
    """The round refused a posted update; ``outcome``: what the poster reports instead."""

    def __init__(self, outcome: object) -> None:
        super().__init__(str(outcome))
        self.outcome = outcome


class ChainRound:
    """Round ``round_number`` of ``study`` as an :class:`fl.round.UpdateStore` and
    :class:`fl.round.UpdateBoard`. ``submit(artifact, samples)`` posts an update (None: taken;
    anything else: the round refused it, raised as :class:`UpdateNotTaken`); without it the round
    is read only."""

    def __init__(self, study: Study, round_number: int, submit: Submit | None = None) -> None:
        self.study = study
        self.number = round_number
        self.submit = submit
        self._artifacts: dict[str, tuple[ArtifactRef, str]] = {}
        self._sizes: dict[str, int] = {}

    @staticmethod
    def ref(author: str, artifact: ArtifactRef) -> str:
        return f"{author.lower()}/{artifact.cid}"

    def artifact(self, ref: str) -> ArtifactRef:
        """The CID and SHA-256 of the update stored or listed under ``ref``."""
        try:
            return self._artifacts[ref][0]
        except KeyError:
            raise ArtifactError(f"no update {ref} in study {self.study.number} round {self.number}") from None

    def put(self, data: bytes) -> str:
        """Seal ``data`` as this member's update to the round; its size is kept for the node's log."""
        artifact = self.study.seal_update(self.number, data)
        ref = self.ref(self.study.member.address, artifact)
        self._artifacts[ref] = (artifact, self.study.member.address)
        self._sizes[ref] = len(data)
        return ref

    def size(self, ref: str) -> int:
        """The plaintext size of an update this member put."""
        return self._sizes[ref]

    def get(self, ref: str) -> bytes:
        artifact = self.artifact(ref)
        author = self._artifacts[ref][1]
        return self.study.open(artifact, self.study.place(self.number, UPDATE, author))

    def post(self, round_number: int, update: PostedUpdate) -> None:
        self._check(round_number)
        if self.submit is None:
            raise RoundsError(f"study {self.study.number} round {self.number} is read only here")
        outcome = self.submit(self.artifact(update.ref), update.weight)
        if outcome is not None:
            raise UpdateNotTaken(outcome)

    def updates(self, round_number: int) -> list[PostedUpdate]:
        """The round's updates in submission order, as the registry lists them."""
        self._check(round_number)
        listed = []
        for update in self.study.member.rounds.updates(self.study.number, round_number):
            ref = self.ref(update.participant, update.artifact)
            self._artifacts[ref] = (update.artifact, update.participant)
            listed.append(PostedUpdate(update.participant, ref, update.samples))
        return listed

    def _check(self, round_number: int) -> None:
        if round_number != self.number:
            raise RoundsError(f"study {self.study.number}: this board is round {self.number}'s, not {round_number}'s")
