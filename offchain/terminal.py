"""Where progress goes: a bar on stderr when stderr is a terminal, nowhere otherwise.

click's progress bar prints its label as a bare line when its stream is not
a terminal; a log file or a pipe gets the results, not the bar.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO


def progress_file(enabled: bool = True) -> TextIO:
    """The stream a progress bar should draw on: stderr on a terminal, else the null device."""
    if enabled and sys.stderr.isatty():
        return sys.stderr
    return open(os.devnull, "w")  # noqa: SIM115 (the bar closes it)
