"""Revoke access to a record (optionally rotating its key): ``ape run revoke`` is ``medshare record revoke``.

    ape run revoke RECORD GRANTEE [--rotate] | --csv FILE   [--network ...] [--account ALIAS]
"""

from offchain.cli.record import revoke as cli

__all__ = ["cli"]
