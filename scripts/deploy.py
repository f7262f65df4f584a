"""Deploy the consortium's contracts and record them: ``ape run deploy`` is ``medshare deploy``.

    ape run deploy [--network polygon:amoy:node] [--account ALIAS] [--admin ADDRESS] [--force]
"""

from offchain.cli.deploy import deploy as cli

__all__ = ["cli"]
