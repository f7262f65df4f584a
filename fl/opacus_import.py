"""opacus, imported where DP runs or is accounted (never at ``import fl``), and quietly."""

import importlib
import logging
from types import ModuleType


def import_opacus(module: str = "opacus") -> ModuleType:
    """``module`` of opacus, imported where DP runs or is accounted, never at ``import fl``.

    opacus pulls in scipy.stats and torch.distributed (about 1.6 s), which every process start (each
    ``medshare`` command, each node) would pay for nothing. Its ``logging.basicConfig`` call at import
    adds a root log handler that makes every library's log line (Ape's transaction lines among them)
    print a second time, timestamped; an application configures logging, a library does not: the
    handler is removed.
    """
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        return importlib.import_module(module)
    finally:
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)
