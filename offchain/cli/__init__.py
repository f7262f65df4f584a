"""The ``medshare`` command line. The Ape scripts in ``scripts/`` are these same commands."""

import re

import click

from offchain.cli.chain import chain
from offchain.cli.deploy import deploy
from offchain.cli.errors import BadInput
from offchain.cli.fl import fl
from offchain.cli.ipfs import ipfs
from offchain.cli.keys import keys
from offchain.cli.members import members
from offchain.cli.record import record
from offchain.cli.rounds import rounds
from offchain.cli.web import web
from offchain.settings import Settings


@click.group()
@click.version_option(package_name="medshare")
def main() -> None:
    """MedShare: encrypted medical records on IPFS under on-chain access control."""
    try:
        Settings.from_env()  # a bad setting is one line under every command, before any work
    except ValueError as error:
        raise BadInput(str(error)) from None


for command in (chain, deploy, members, keys, record, ipfs, fl, rounds, web):
    main.add_command(command)


def _whole_first_sentences(command: click.Command) -> None:
    """List each subcommand by its whole first sentence: click cuts a long one mid-word with "..."."""
    for sub in getattr(command, "commands", {}).values():
        if sub.short_help is None and sub.help:
            paragraph = sub.help.strip().split("\n\n")[0]
            sentence = re.split(r"(?<=\.)\s+(?=[A-Z])", " ".join(paragraph.split()))[0].rstrip(".")
            sub.short_help = sentence
        _whole_first_sentences(sub)


_whole_first_sentences(main)
