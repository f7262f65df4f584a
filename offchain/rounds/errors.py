"""What goes wrong in a study, as domain errors the CLI turns into one line."""

from offchain.errors import MedShareError


class RoundsError(MedShareError):
    """A study or round operation cannot go ahead; the message says why and what to do."""


class ArtifactCheckFailed(RoundsError):
    """A fetched model, update or config does not match what the chain commits to (CID, SHA-256, binding)."""


class TableError(RoundsError):
    """A hospital's table cannot be trained on (missing column, non-numeric value, NaN, wrong width)."""


class StudyConfigError(RoundsError, ValueError):
    """A study config that is malformed, inconsistent, or does not match its on-chain digest."""


class RunSettingsError(RoundsError):
    """The options of a run contradict each other or the study (bad input: nothing was started)."""
