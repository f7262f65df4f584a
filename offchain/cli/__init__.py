"""The ``medshare`` command line."""

import click

from offchain.cli.fl import fl
from offchain.cli.ipfs import ipfs
from offchain.cli.keys import keys
from offchain.cli.record import record
from offchain.settings import Settings


@click.group()
@click.version_option(package_name="medshare")
def main() -> None:
    """MedShare: encrypted medical records on IPFS under on-chain access control."""
    try:
        Settings.from_env()  # a bad setting is one line under every command, before any work
    except ValueError as error:
        raise click.ClickException(str(error)) from None


main.add_command(ipfs)
main.add_command(keys)
main.add_command(record)
main.add_command(fl)
