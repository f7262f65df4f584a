"""Federated studies by hand: ``ape run rounds`` is ``medshare rounds``.

    ape run rounds create --participant ADDRESS... [--auditor ADDRESS...] [--aggregator NAME] [--min-updates N]
    ape run rounds open --study S | status --study S | cancel --study S --round N   [--network ...] [--account ALIAS]
"""

from offchain.cli.rounds import rounds as cli

__all__ = ["cli"]
