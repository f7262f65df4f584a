"""A hospital node's privacy ledger on its own disk: every DP release it made from one data set.

The same records used in k studies spend k studies' epsilon, so a hospital
keeps one ledger per data set across all its studies (and chains), keyed by
the data set's digest, and may set a cap of its own (:class:`PrivacyCap`:
``medshare fl participant --max-epsilon E --delta D``, kept in its home so
that every later study on that home is held to it). Before it trains a round
the node asks :meth:`DatasetLedger.would_exceed`, as Flower's accountant
does, and refuses to train past the cap, whatever the study's budget says.

A node restarted between rounds must not forget the privacy it already spent
(its budget would silently reset). Each release is appended once its update
is published on chain (a training never published released nothing), and the
file is replaced atomically (written
beside, flushed, renamed), so a crash leaves the old ledger or the new one,
never half of one. The file: ``$MEDSHARE_HOME/fl/privacy/<data set digest>.json``;
the cap: ``$MEDSHARE_HOME/fl/privacy/cap.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fl.data import HospitalData
from fl.privacy import DPParameters, PrivacyBudget, epsilon_of
from offchain.rounds.errors import RoundsError

FORMAT = 2
CAP_FILE = "cap.json"


def privacy_dir(home: Path) -> Path:
    return home / "fl" / "privacy"


def dataset_digest(data: HospitalData) -> str:
    """The data set's identity: SHA-256 of its records (features and labels), whatever it is called."""
    digest = hashlib.sha256()
    for tensor in (data.data.features, data.data.labels):
        digest.update(repr(tuple(tensor.shape)).encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


def study_key(chain_id: int, registry: str, study: int) -> str:
    return f"{chain_id}-{registry.lower()}-{study}"


@dataclass(frozen=True)
class PrivacyCap:
    """The hospital's own (epsilon, delta) cap over every release from one data set."""

    max_epsilon: float
    delta: float

    def __post_init__(self) -> None:
        try:
            PrivacyBudget(self.max_epsilon, self.delta)
        except ValueError as error:
            raise RoundsError(f"privacy cap: {error}") from None

    def save(self, home: Path) -> None:
        _replace(privacy_dir(home) / CAP_FILE, asdict(self))

    @classmethod
    def load(cls, home: Path) -> PrivacyCap | None:
        """The cap kept in ``home`` (None if it has none)."""
        path = privacy_dir(home) / CAP_FILE
        try:
            document = json.loads(path.read_text())
            return cls(float(document["max_epsilon"]), float(document["delta"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise RoundsError(f"privacy cap {path} is unreadable ({error}); refusing to train uncapped") from None


@dataclass(frozen=True)
class Release:
    """One round's DP-SGD release from the data set, in one study."""

    study: str
    round: int
    release: DPParameters


@dataclass
class DatasetLedger:
    """Every release made from one data set, across studies, persisted at ``path`` (None: in memory)."""

    path: Path | None
    releases: list[Release] = field(default_factory=list)

    @classmethod
    def open(cls, home: Path | None, data: HospitalData) -> DatasetLedger:
        """The data set's ledger in ``home`` (None: a ledger in memory, starting empty)."""
        if home is None:
            return cls(None)
        path = privacy_dir(home) / f"{dataset_digest(data)}.json"
        return cls(path, load_releases(path))

    def history(self, study: str | None = None) -> list[DPParameters]:
        """The releases (of one ``study``, or all), oldest first."""
        return [entry.release for entry in self.releases if study is None or entry.study == study]

    def spent(self, delta: float) -> float:
        """The epsilon at ``delta`` of every release from the data set together."""
        return epsilon_of(self.history(), delta)

    def would_exceed(self, release: DPParameters, cap: PrivacyCap) -> bool:
        """Whether one more ``release`` would take the data set past ``cap``."""
        return epsilon_of([*self.history(), release], cap.delta) > cap.max_epsilon

    def record(self, study: str, round: int, release: DPParameters) -> None:
        self.releases.append(Release(study, round, release))
        if self.path is not None:
                _replace(self.path, {"format": FORMAT, "releases": [
                {"study": entry.study, "round": entry.round, "release": asdict(entry.release)}
                for entry in self.releases]})


def load_releases(path: Path) -> list[Release]:
    """The releases recorded at ``path`` (none if there is no file yet)."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as error:
        raise RoundsError(f"privacy ledger {path} is unreadable ({error}); refusing to train as if nothing "
                          "was spent") from None
    try:
        if document["format"] != FORMAT:
            raise ValueError(f"format {document['format']}, expected {FORMAT}")
        return [Release(str(entry["study"]), int(entry["round"]), DPParameters(**entry["release"]))
                for entry in document["releases"]]
    except (KeyError, TypeError, ValueError) as error:
        raise RoundsError(f"privacy ledger {path} is damaged ({error}); refusing to train as if nothing "
                          "was spent") from None


def load_history(path: Path) -> list[DPParameters]:
    """Every release recorded at ``path``, oldest first."""
    return [entry.release for entry in load_releases(path)]


def _replace(path: Path, document: dict) -> None:
    """Replace ``path`` atomically with ``document`` as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w") as out:
        out.write(json.dumps(document, indent=1) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
