"""A hospital node's privacy ledger on its own disk: the DP-SGD releases it made in a study.

A node restarted between rounds must not forget the privacy it already spent
(its budget would silently reset). Each release is appended once trained,
before the update is published, and the file is replaced atomically (written
beside, flushed, renamed), so a crash leaves the old ledger or the new one,
never half of one. The file is per study and account:
``$MEDSHARE_HOME/fl/privacy/<chain>-<registry>-<study>-<account>.json``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from fl.privacy import DPParameters
from offchain.rounds.errors import RoundsError

FORMAT = 1


def ledger_path(home: Path, chain_id: int, registry: str, study: int, account: str) -> Path:
    return home / "fl" / "privacy" / f"{chain_id}-{registry.lower()}-{study}-{account.lower()}.json"


def load_history(path: Path) -> list[DPParameters]:
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
        return [DPParameters(**entry["release"]) for entry in document["releases"]]
    except (KeyError, TypeError, ValueError) as error:
        raise RoundsError(f"privacy ledger {path} is damaged ({error}); refusing to train as if nothing "
                          "was spent") from None


def save_history(path: Path, rounds: list[int], history: list[DPParameters]) -> None:
    """Replace the ledger at ``path`` atomically with ``history`` (release i made in ``rounds[i]``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"format": FORMAT,
                "releases": [{"round": number, "release": asdict(release)} for number, release in zip(rounds, history)]}
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


def load_rounds(path: Path) -> list[int]:
    try:
        return [int(entry["round"]) for entry in json.loads(path.read_text())["releases"]]
    except FileNotFoundError:
        return []
