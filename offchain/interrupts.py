"""Steps that must not be cut in half by Ctrl-C or SIGTERM.

A read is logged on chain and its file published as one step: stopping
between the two would leave an ``AccessLogged`` entry for a read that never
completed. Inside :func:`deferred_interrupts`, SIGINT and SIGTERM are held
and delivered again once the step is done, so the process still stops.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_HELD = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the duration of the block, then deliver them (main thread only;
    elsewhere the block runs as it is, since only the main thread receives Python's signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {number: signal.signal(number, lambda number, _frame: received.append(number)) for number in _HELD}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for number in dict.fromkeys(received):
            os.kill(os.getpid(), number)
