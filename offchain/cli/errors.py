"""How the ``medshare`` commands report expected failures: one clear line and exit status 1."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click


def reported(*kinds: type[BaseException]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a command so that ``kinds`` of errors become one ``Error: ...`` line, never a traceback.

    An ``OSError`` (an unusable data folder, a full disk, an unreadable file)
    is shown as its file name and reason.
    """

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return command(*args, **kwargs)
            except kinds as error:
                if isinstance(error, OSError) and error.strerror:
                    where = f"{error.filename}: " if error.filename else ""
                    raise click.ClickException(f"{where}{error.strerror}") from None
                refusal = click.ClickException(str(error))
                refusal.exit_code = getattr(error, "exit_code", refusal.exit_code)  # an error may carry its status
                raise refusal from None

        return guarded

    return decorate
