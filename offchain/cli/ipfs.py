"""``medshare ipfs``: add, cat and pin files in the configured store; run a local node; see where a CID is pinned.

The store is the embedded one in ``$MEDSHARE_HOME/ipfs`` unless
``MEDSHARE_IPFS_BACKEND=kubo`` selects the Kubo node at ``IPFS_API`` (with the
consortium's peers and pinning nodes from ``$MEDSHARE_HOME/consortium.json``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import BinaryIO

import click

from offchain.cli.errors import reported
from offchain.errors import InvalidInput
from offchain.ipfs import CID, InvalidCID, KuboStore, StoreError, open_store
from offchain.settings import Settings

# ValueError: what the store says of a bad argument; OSError: an unusable data folder or a full disk.
_store_errors_as_messages = reported(StoreError, InvalidInput, ValueError, OSError)


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


@ipfs.command()
@click.option("--repo", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The node's repository (IPFS_PATH). [default: $MEDSHARE_HOME/ipfs-node]")
@click.option("--api-port", type=click.IntRange(1, 65535), default=None, help="Its API's loopback port. [default: 5001, or as before]")
@click.option("--swarm-port", type=click.IntRange(1, 65535), default=None, help="Its swarm's loopback port. [default: 4001, or as before]")
@_store_errors_as_messages
def up(repo: Path | None, api_port: int | None, swarm_port: int | None) -> None:
    """Start a local IPFS node (js-ipfs) on loopback, in the background, for a site with no Kubo.

    It serves Kubo's RPC API and dials nobody: no bootstrap peers, no discovery; it meets the
    consortium's nodes by the peers listed in its config. Prints the settings that select it."""
    from offchain.ipfs.daemon import DEFAULT_API_PORT, DEFAULT_SWARM_PORT, LocalDaemon

    repo = (repo or _node_repo()).resolve()
    daemon = LocalDaemon.detached(repo)
    if daemon is None:
        fresh = not (repo / "config").exists()
        daemon = LocalDaemon(repo, api_port or (DEFAULT_API_PORT if fresh else 0),
                             swarm_port or (DEFAULT_SWARM_PORT if fresh else 0))
        daemon.start()
        daemon.detach()
    elif api_port not in (None, daemon.api_port) or swarm_port not in (None, daemon.swarm_port):
        raise click.UsageError(f"the node in {repo} already runs on API port {daemon.api_port}, swarm port "
                               f"{daemon.swarm_port}; `medshare ipfs down` first to change them")
    click.echo(f"IPFS node up in {repo}")
    click.echo(f"  swarm address (list it in the consortium's peers): {daemon.swarm_address}")
    click.echo(f"  use it: export MEDSHARE_IPFS_BACKEND=kubo IPFS_API={daemon.api}")


@ipfs.command()
@click.option("--repo", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The node's repository. [default: $MEDSHARE_HOME/ipfs-node]")
@_store_errors_as_messages
def down(repo: Path | None) -> None:
    """Stop the local IPFS node `medshare ipfs up` started (its repository and pins stay)."""
    from offchain.ipfs.daemon import LocalDaemon

    repo = (repo or _node_repo()).resolve()
    daemon = LocalDaemon.detached(repo)
    if daemon is None:
        click.echo(f"no IPFS node of `medshare ipfs up` runs in {repo}")
        return
    daemon.stop_detached()
    click.echo(f"IPFS node in {repo} stopped")


def _node_repo() -> Path:
    return Settings.from_env().home / "ipfs-node"


@ipfs.command()
@click.argument("cid", type=CIDParam())
@_store_errors_as_messages
def status(cid: CID) -> None:
    """Where CID is pinned: this site's node and the consortium's pinning nodes and services.

    Exits 1 when fewer of them hold it than the consortium's replication factor."""
    from offchain.ipfs.consortium import Consortium, pin_locations

    settings = Settings.from_env()
    if settings.ipfs_backend != "kubo":
        store = open_store(settings)
        held = cid in store.pins()
        click.echo(f"this site (embedded store in {settings.ipfs_dir}): {'pinned' if held else 'not pinned'}")
        sys.exit(0 if held else 1)
    consortium = Consortium.load(settings.consortium_file) or Consortium()
    locations = pin_locations(cid, KuboStore.from_settings(settings), consortium)
    for place in locations:
        detail = f" ({place.detail})" if place.detail else ""
        click.echo(f"{place.name} ({place.address}): {'pinned' if place.pinned else 'not pinned'}{detail}")
    held = sum(place.pinned for place in locations)
    click.echo(f"{held} of {len(locations)} hold it; the consortium requires {consortium.replication}")
    sys.exit(0 if held >= consortium.replication else 1)
