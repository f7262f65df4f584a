"""Names people give accounts ("hospital-1"), kept in the member's own data folder only.

A name never goes on chain or to another member: it is a local label, like
a record's name in the record index. Reports (``medshare fl status``, the
portal's Studies page) show it beside the address where one is known.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from offchain import inputs
from offchain.jsonfile import read_json_file
from offchain.settings import Settings

NAMES_FILE = "names.json"


def known_names(settings: Settings) -> dict[str, str]:
    """Every name in ``$MEDSHARE_HOME/names.json``, by checksummed address (none if there is no file)."""
    path = settings.home / NAMES_FILE

    def parse(document: Any) -> dict[str, str]:
        if not isinstance(document, dict) or not all(isinstance(name, str) for name in document.values()):
            raise TypeError("expected an object of address: name")
        return {inputs.address(address, f"{path}: address"): name for address, name in document.items()}

    return read_json_file(path, parse, "an address book") or {}


def remember_names(settings: Settings, names: Mapping[str, str]) -> None:
    """Add (or rename) ``names`` in the address book."""
    book = known_names(settings) | {inputs.address(address): name for address, name in names.items()}
    path = settings.home / NAMES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(book, indent=2, sort_keys=True) + "\n")
    scratch.replace(path)  # never a half-written book
