"""How the ``medshare`` commands report expected failures: one clear line and an exit status.

Bad input (:class:`~offchain.errors.InvalidInput`) exits with status 2, as
click's own usage errors do; every other refusal with status 1.
"""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Callable
from typing import Any

import click

from offchain.errors import InvalidInput

BAD_INPUT_STATUS = 2


class BadInput(click.ClickException):
    """A value the user gave is not acceptable: one line, exit status 2."""

    exit_code = BAD_INPUT_STATUS


class Terminated(SystemExit):
    """SIGTERM, raised where the process is, so that every ``finally`` (a child to stop, a temporary
    file to delete) runs as it does for Ctrl-C; the status is the shell's for a SIGTERM death."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


def _terminate(_signal: int, _frame: Any) -> None:
    raise Terminated()


def clean_exit_on_sigterm() -> None:
    """Make SIGTERM unwind the command like Ctrl-C (Python's default dies without running ``finally``)."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate)


def reported(*kinds: type[BaseException]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a command so that ``kinds`` of errors become one ``Error: ...`` line, never a traceback.

    An ``OSError`` (an unusable data folder, a full disk, an unreadable file)
    is shown as its file name and reason. The command also unwinds cleanly on
    SIGTERM (:func:`clean_exit_on_sigterm`).
    """

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            clean_exit_on_sigterm()
            try:
                return command(*args, **kwargs)
            except kinds as error:
                if isinstance(error, OSError) and error.strerror:
                    where = f"{error.filename}: " if error.filename else ""
                    raise click.ClickException(f"{where}{error.strerror}") from None
                if isinstance(error, InvalidInput):
                    raise BadInput(str(error)) from None
                refusal = click.ClickException(str(error))
                refusal.exit_code = getattr(error, "exit_code", refusal.exit_code)  # an error may carry its status
                raise refusal from None

        return guarded

    return decorate
