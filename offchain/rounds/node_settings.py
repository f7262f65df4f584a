"""A hospital node's own settings, ``$MEDSHARE_HOME/node.json``: what it lets a study run here.

    {"allowed_models": ["package.module:build", ...], "validation_seed": 1234}

``allowed_models``: the model entry points whose code this node will import and train (the
built-ins, ``logistic``, ``mlp`` and ``cnn``, always may). A study config only names an entry
point; a coordinator can never make a node run code its operator did not list here.
``validation_seed``: fixes which of the hospital's records it holds back for validation; drawn
once, when first needed, and kept, so the split is the same at every restart.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from fl.entry_points import is_entry_point
from fl.models import BUILTIN_MODELS
from offchain.rounds.errors import RoundsError

NODE_FILE = "node.json"


class NodeSettingsError(RoundsError):
    """The node's settings file is unreadable or malformed."""


@dataclass(frozen=True)
class NodeSettings:
    allowed_models: tuple[str, ...] = ()
    validation_seed: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.allowed_models, str):
            raise NodeSettingsError("allowed_models must be a list of entry points")
        for entry in self.allowed_models:
            if not is_entry_point(entry):
                raise NodeSettingsError(f"allowed_models: {entry!r} is not an entry point package.module:attribute")
        object.__setattr__(self, "allowed_models", tuple(self.allowed_models))
        seed = self.validation_seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
            raise NodeSettingsError(f"validation_seed must be a whole number from 0 to 2^63 - 1, got {seed!r}")

    @property
    def allowlist(self) -> tuple[str, ...]:
        """What this node builds: the built-ins and its allowed entry points."""
        return (*BUILTIN_MODELS, *self.allowed_models)

    @staticmethod
    def path(home: Path) -> Path:
        return Path(home) / NODE_FILE

    @classmethod
    def load(cls, home: Path) -> NodeSettings:
        """The node's settings (the defaults when it has no file)."""
        path = cls.path(home)
        try:
            document = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise NodeSettingsError(f"{path}: not a JSON file ({error})") from None
        if not isinstance(document, dict) or set(document) - {"allowed_models", "validation_seed"}:
            raise NodeSettingsError(f"{path}: expected an object with allowed_models and validation_seed only")
        allowed = document.get("allowed_models", [])
        if not isinstance(allowed, list):
            raise NodeSettingsError(f"{path}: allowed_models must be a list of entry points")
        try:
            return cls(tuple(allowed), document.get("validation_seed"))
        except NodeSettingsError as error:
            raise NodeSettingsError(f"{path}: {error}") from None

    def save(self, home: Path) -> None:
        path = self.path(home)
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {"allowed_models": list(self.allowed_models), "validation_seed": self.validation_seed}
        temporary = path.with_suffix(".partial")
        temporary.write_text(json.dumps(document, indent=2) + "\n")
        os.replace(temporary, path)

    @classmethod
    def seeded(cls, home: Path) -> NodeSettings:
        """The node's settings with a validation seed, drawn and saved now if it had none."""
        settings = cls.load(home)
        if settings.validation_seed is None:
            settings = cls(settings.allowed_models, secrets.randbits(63))
            settings.save(home)
        return settings
