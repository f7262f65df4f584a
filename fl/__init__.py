"""Federated learning for MedShare."""

import logging as _logging


def _import_opacus_quietly() -> None:
    """Import opacus without the root log handler its ``logging.basicConfig`` call adds at import.

    That handler makes every library's log line (Ape's transaction lines among
    them) print a second time, timestamped; an application configures logging,
    a library does not.
    """
    root = _logging.getLogger()
    before = list(root.handlers)
    import opacus.utils.module_utils  # noqa: F401 - the module that calls basicConfig

    for handler in root.handlers[:]:
        if handler not in before:
            root.removeHandler(handler)


_import_opacus_quietly()
