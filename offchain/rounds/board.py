"""A study's round on chain as the round steps of :mod:`fl.round` see it: an update board and store.

The in-process simulation keeps updates in memory (:class:`fl.round.InMemoryBoard`,
:class:`fl.round.InMemoryStore`); on the chain path a round's update bytes are sealed for the
study's update readers into the node's store (:meth:`Study.seal_update`, read back by
:meth:`Study.open`), and an update is posted by the node's own submission to the round registry
(with its DP declaration in a budgeted study) and listed from the registry's events. So a hospital
node runs the same :class:`fl.round.HospitalStep` as a simulated hospital.

A reference names the update's author and CID: its bytes are opened bound to the author's place,
and two participants posting the same CID stay two updates. Read back, an update must carry a key
for every update reader the study names (coordinator, auditors), or the coordinator and an auditor
could disagree; one that does not, or cannot be opened, is malformed (:class:`fl.artifacts.ArtifactError`)
for :meth:`fl.round.CoordinatorStep.screen` like one that does not decode. A DP study averages
unweighted (its counts are never published): its updates are listed with weight 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fl.artifacts import ArtifactError
from fl.round import PostedUpdate
from offchain.rounds.client import ArtifactRef, UpdateInfo
from offchain.rounds.errors import ArtifactCheckFailed, RoundsError
from offchain.rounds.sealed import UPDATE, readers_of
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
    is read only. ``listed``: the updates the board lists (a commit's counted ones, or those it
    rejected); None: every update the registry holds for the round."""

    def __init__(self, study: Study, round_number: int, submit: Submit | None = None, *,
                 listed: Sequence[UpdateInfo] | None = None) -> None:
        self.study = study
        self.number = round_number
        self.submit = submit
        self.listed = None if listed is None else list(listed)
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
        place = self.study.place(self.number, UPDATE, self._artifacts[ref][1])
        try:
            data = self.study.open(artifact, place)
            carried = {reader.lower() for reader in readers_of(self.study.member.store, artifact.cid)}
        except ArtifactCheckFailed as error:
            raise ArtifactError(str(error)) from None
        unreadable = [reader for reader in self.study.update_readers() if reader.lower() not in carried]
        if unreadable:
            raise ArtifactError(f"{place.describe()}: carries no key for {', '.join(unreadable)}")
        return data

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
        private = self.study.config.private
        listed = []
        for update in self.listed if self.listed is not None else \
                self.study.member.rounds.updates(self.study.number, round_number):
            ref = self.ref(update.participant, update.artifact)
            self._artifacts[ref] = (update.artifact, update.participant)
            listed.append(PostedUpdate(update.participant, ref, 1 if private else update.samples))
        return listed

    def _check(self, round_number: int) -> None:
        if round_number != self.number:
            raise RoundsError(f"study {self.study.number}: this board is round {self.number}'s, not {round_number}'s")
