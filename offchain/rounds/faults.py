"""Hospitals that go silent mid-round on purpose: ``medshare fl run --drop HOSPITAL@ROUND[:POINT]``.

A :class:`Dropout` names a hospital, a round and the :class:`DropPoint` after
which it goes silent. ``fl run`` passes it to that hospital's node process in
:data:`SILENT_AFTER_ENV`; the node (:func:`silent_after_from_env`) holds, posting
nothing more, once its message of that point is on chain, and says
:data:`SILENT_MARK` in its log, which is when ``fl run`` kills it.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from offchain.chain.contract import Sent
from offchain.rounds.client import RoundsClient, SecurePhase
from offchain.rounds.errors import RunSettingsError

SILENT_AFTER_ENV = "MEDSHARE_FL_SILENT_AFTER"  # POINT@ROUND: a participant node that goes silent (--drop)
SILENT_MARK = "going silent after"


def hospital_name(index: int) -> str:
    """What a run calls its ``index``-th hospital (from 1), and what ``--drop`` names it by."""
    return f"hospital-{index}"


class DropPoint(str, enum.Enum):
    """Where in a secure round a dropped hospital goes silent: once this message of its is on chain."""

    KEYS = "keys"  # its key advertisement: it sends no shares, so it is not in the round's masks at all
    SHARES = "shares"  # its encrypted shares: its pairwise masks are recovered from the others' shares
    MASKED_INPUT = "masked-input"  # its masked input: a survivor whose self mask the others' shares remove


@dataclass(frozen=True)
class Dropout:
    """Hospital number ``hospital`` (1-based, as in ``hospital-N``) goes silent in ``round`` after ``after``."""

    hospital: int
    round: int
    after: DropPoint = DropPoint.KEYS

    SYNTAX = "HOSPITAL@ROUND[:keys|shares|masked-input], e.g. hospital-2@3"

    @classmethod
    def parse(cls, text: str) -> Dropout:
        match = re.fullmatch(r"(?:hospital-)?(\d+)@(\d+)(?::([a-z-]+))?", text.strip())
        if match is None:
            raise RunSettingsError(f"--drop {text!r}: expected {cls.SYNTAX}")
        hospital, round_number, after = match.groups()
        try:
            point = DropPoint(after or DropPoint.KEYS.value)
        except ValueError:
            raise RunSettingsError(f"--drop {text!r}: {after!r} is not one of "
                                   f"{', '.join(p.value for p in DropPoint)}") from None
        return cls(int(hospital), int(round_number), point)

    @property
    def name(self) -> str:
        return hospital_name(self.hospital)

    def __str__(self) -> str:
        return f"{self.name}@{self.round}" + ("" if self.after is DropPoint.KEYS else f":{self.after.value}")


# The transactions that carry each point's message: (method, secure phase or None for any).
_POINT_SENDS: dict[DropPoint, tuple[tuple[str, SecurePhase | None], ...]] = {
    DropPoint.KEYS: (("postSecureMessage", SecurePhase.KEYS),),
    DropPoint.SHARES: (("postSecureMessage", SecurePhase.SHARES),),
    DropPoint.MASKED_INPUT: (("submitUpdate", None), ("submitPrivateUpdate", None)),
}


def go_silent_after(rounds: RoundsClient, point: DropPoint, round_number: int, hold: Callable[[str], None]) -> None:
    """Make a participant's ``rounds`` client call ``hold`` (which never returns: the node posts
    nothing more) as soon as its ``point`` message of ``round_number`` is on chain.

    The hook is the client's :attr:`~offchain.chain.contract.ContractClient.on_sent`, which hears of
    every transaction it sends, so it holds whatever path the node takes to post (a plain or a
    budgeted update; a key advertisement or shares). A hook set before still hears of each first.
    """
    wanted = _POINT_SENDS[point]
    before = rounds.on_sent

    def on_sent(sent: Sent) -> None:
        if before is not None:
            before(sent)
        # postSecureMessage(study, round, phase, ...), submit(Private)Update(study, round, ...)
        if any(sent.method == method and int(sent.args[1]) == round_number
               and (phase is None or int(sent.args[2]) == phase) for method, phase in wanted):
            hold(f"{SILENT_MARK} its {point.value} of round {round_number}")

    rounds.on_sent = on_sent


def silent_after_from_env(rounds: RoundsClient, hold: Callable[[str], None]) -> None:
    """Apply ``MEDSHARE_FL_SILENT_AFTER=POINT@ROUND`` (set by ``fl run --drop``) to a participant node."""
    value = os.environ.get(SILENT_AFTER_ENV)
    if not value:
        return
    point, _, number = value.partition("@")
    go_silent_after(rounds, DropPoint(point), int(number), hold)


def silent_after_env(drop: Dropout) -> dict[str, str]:
    """The environment that makes a node go silent as ``drop`` says (what :func:`silent_after_from_env` reads)."""
    return {SILENT_AFTER_ENV: f"{drop.after.value}@{drop.round}"}
