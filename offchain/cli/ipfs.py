"""``medshare ipfs``: add, cat and pin files in the configured store.

The store is the embedded one in ``$MEDSHARE_HOME/ipfs`` unless
``MEDSHARE_IPFS_BACKEND=kubo`` selects the Kubo node at ``IPFS_API``.
"""

from __future__ import annotations

import os
import sys
from typing import BinaryIO

import click

from offchain.cli.errors import reported
from offchain.ipfs import CID, InvalidCID, StoreError, open_store

# ValueError: what the store says of a bad argument; OSError: an unusable data folder or a full disk.
_store_errors_as_messages = reported(StoreError, ValueError, OSError)


class CIDParam(click.ParamType):
    """A command-line argument that must be a CID."""

    name = "CID"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> CID:
        if isinstance(value, CID):
            return value
        try:
            return CID.parse(str(value))
        except InvalidCID as error:
            self.fail(str(error), param, ctx)


@click.group()
def ipfs() -> None:
    """Store and fetch files by content (CID)."""


@ipfs.command()
@click.option("--cid-version", type=click.Choice(["0", "1"]), default="1", show_default=True, help="CID version; 1 uses raw leaves.")
@click.option("--only-hash", is_flag=True, help="Only compute the CID; store nothing.")
@click.argument("file", type=click.File("rb"))
@_store_errors_as_messages
def add(cid_version: str, only_hash: bool, file: BinaryIO) -> None:
    """Add FILE ('-' for standard input) as it is and print its CID alone, as `ipfs add -Q`.

    The bytes are stored in plaintext, readable by anyone who has the CID; patient data goes
    through `medshare record upload`, which encrypts it first."""
    click.echo(open_store().add(file, cid_version=int(cid_version), only_hash=only_hash))


@ipfs.command()
@click.argument("cid", type=CIDParam())
@_store_errors_as_messages
def cat(cid: CID) -> None:
    """Write the content of CID to standard output."""
    try:
        open_store().cat(cid, click.get_binary_stream("stdout"))
    except BrokenPipeError:
        # The reader left early (`| head`): stop quietly, as cat(1) does, with
        # stdout pointed away so that the interpreter's final flush cannot fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)  # 128 + SIGPIPE, cat(1)'s status


@ipfs.group()
def pin() -> None:
    """Keep content from garbage collection."""


@pin.command("add")
@click.argument("cid", type=CIDParam())
@_store_errors_as_messages
def pin_add(cid: CID) -> None:
    """Pin CID (its whole DAG must be stored)."""
    open_store().pin(cid)
    click.echo(f"pinned {cid}")


@pin.command("rm")
@click.argument("cid", type=CIDParam())
@_store_errors_as_messages
def pin_rm(cid: CID) -> None:
    """Unpin CID."""
    open_store().unpin(cid)
    click.echo(f"unpinned {cid}")


@pin.command("ls")
@_store_errors_as_messages
def pin_ls() -> None:
    """List pinned CIDs, one a line."""
    for cid in open_store().pins():
        click.echo(cid)
