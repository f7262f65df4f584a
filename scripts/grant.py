"""Grant access to a record, key share included: ``ape run grant`` is ``medshare record grant``.

    ape run grant RECORD GRANTEE... (--days N | --until TIME) | --csv FILE   [--network ...] [--account ALIAS]
"""

from offchain.cli.record import grant as cli

__all__ = ["cli"]
