"""Importable entry points (``package.module:attribute``) and a node's allowlist of them.

A study names a model builder by entry point; a hospital names a data loader. Importing one runs its
code, so a node imports a study's model builder only if its own settings list that entry point
(:class:`NodeSettings`, in ``offchain.rounds.node``): whatever a study config says, the code that
runs on a site is code the site chose.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Collection

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_ENTRY_POINT = re.compile(rf"{_NAME}(?:\.{_NAME})*:{_NAME}(?:\.{_NAME})*")


class EntryPointError(ValueError):
    """An entry point that is malformed, cannot be imported, or is not callable."""


class EntryPointNotAllowed(EntryPointError):
    """An entry point this node's allowlist does not name: its code is not run."""


def is_entry_point(text: str) -> bool:
    return isinstance(text, str) and _ENTRY_POINT.fullmatch(text) is not None


def check_entry_point(text: str) -> str:
    """``text`` if it reads ``package.module:attribute``; EntryPointError otherwise."""
    if not is_entry_point(text):
        raise EntryPointError(f"{text!r} is not an entry point: expected package.module:attribute")
    return text


def load_entry_point(text: str, allowed: Collection[str], what: str = "entry point") -> Callable:
    """The callable ``text`` names, imported only if ``allowed`` lists it exactly."""
    check_entry_point(text)
    if text not in allowed:
        raise EntryPointNotAllowed(f"{what} {text} is not on this node's allowlist (allowed_models in its node "
                                   f"settings); refusing to run its code")
    module_name, _, attribute = text.partition(":")
    try:
        target = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as error:
        raise EntryPointError(f"{what} {text} cannot be imported: {error}") from None
    if not callable(target):
        raise EntryPointError(f"{what} {text} is a {type(target).__name__}, not a callable")
    return target
