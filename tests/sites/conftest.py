"""Sites that are apart: each with its own home and its own IPFS node (a js-ipfs daemon on loopback,
tools/ipfs-daemon), peering only with the consortium's listed nodes. Daemons are few and short-lived:
one set per module, stopped when it ends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from offchain.ipfs.sites import Site, separate_sites


@pytest.fixture(scope="module")
def sites(tmp_path_factory) -> Iterator[dict[str, Site]]:
    """Hospital A, hospital B and the consortium's pinning node; every upload is held by 2 nodes."""
    with separate_sites(tmp_path_factory.mktemp("sites"), ["site-a", "site-b", "pin-1"], pinning=["pin-1"],
                        replication=2) as started:
        yield started
