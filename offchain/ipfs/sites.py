"""Sites apart on one machine: each party its own home and its own IPFS node on loopback.

What ``medshare fl run --sites separate`` and the multi-site tests stand up: for each named party a
home (``ROOT/NAME``: its keystore, index, ledger) and a js-ipfs daemon (``ROOT/NAME/ipfs-node``), and
one consortium config in every home that lists every node's swarm address as a peer and the pinning
sites' nodes as pinning nodes. Nothing of one site is read from another's folder: the parties meet
only through the chain and the IPFS network.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from offchain.ipfs.consortium import Consortium, PinningNode
from offchain.ipfs.daemon import LocalDaemon, start_all
from offchain.settings import Settings


@dataclass
class Site:
    """One party's machine: its home and its node."""

    name: str
    home: Path
    daemon: LocalDaemon

    @property
    def settings(self) -> Settings:
        return Settings(home=self.home, ipfs_backend="kubo", ipfs_api=self.daemon.api)

    def env(self) -> dict[str, str]:
        """The environment a process of this site runs with (its consortium config is in its home)."""
        return {"MEDSHARE_HOME": str(self.home), "MEDSHARE_IPFS_BACKEND": "kubo", "IPFS_API": self.daemon.api,
                "MEDSHARE_CONSORTIUM": str(self.settings.consortium_file)}


@contextmanager
def separate_sites(root: Path, names: Sequence[str], *, pinning: Sequence[str] = (),
                   replication: int = 1) -> Iterator[dict[str, Site]]:
    """A site for each of ``names`` under ``root``, their daemons started side by side and stopped on
    leaving; uploads held by ``replication`` nodes, the uploader's and ``pinning`` sites' nodes."""
    sites = {name: Site(name, root / name, LocalDaemon(root / name / "ipfs-node")) for name in names}
    with start_all([site.daemon for site in sites.values()]):
        consortium = Consortium(
            peers=tuple(site.daemon.swarm_address for site in sites.values()),
            pinning_nodes=tuple(PinningNode(name, sites[name].daemon.api) for name in pinning),
            replication=replication,
        )
        for site in sites.values():
            consortium.save(site.settings.consortium_file)
        yield sites
