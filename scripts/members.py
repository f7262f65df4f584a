"""Give, take and list consortium roles: ``ape run members`` is ``medshare members``.

    ape run members add ROLE ADDRESS | add --csv FILE     [--network ...] [--account ALIAS]
    ape run members remove ROLE ADDRESS | remove --csv FILE
    ape run members list [ROLE]
"""

from offchain.cli.members import members as cli

__all__ = ["cli"]
