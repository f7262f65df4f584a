"""The small JSON files a member keeps (its deployments, its consortium's config, its address book),
read and checked one way: a missing file is no error, a damaged one is one line that names it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from offchain.errors import InvalidInput

T = TypeVar("T")


def read_json_file(path: Path, parse: Callable[[Any], T], what: str, *,
                   error: type[InvalidInput] = InvalidInput) -> T | None:
    """``parse`` of the JSON document in ``path``; None if there is no file.

    A file that is not UTF-8 JSON, or a document ``parse`` refuses with a TypeError, KeyError,
    ValueError or AttributeError, raises ``error`` ("PATH is not WHAT: why; fix or delete it");
    what ``parse`` refuses with an :class:`InvalidInput` of its own passes as it is.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as decode_error:
        raise error(f"{path} is not valid JSON ({decode_error}); fix or delete it") from None
    try:
        document = json.loads(text)
    except ValueError as json_error:
        raise error(f"{path} is not valid JSON ({json_error}); fix or delete it") from None
    try:
        return parse(document)
    except InvalidInput:
        raise
    except (TypeError, KeyError, ValueError, AttributeError) as refusal:
        raise error(f"{path} is not {what}: {refusal}; fix or delete it") from None
