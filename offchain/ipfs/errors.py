"""What can go wrong in a store. Every message names the CID concerned."""

from __future__ import annotations

from offchain.errors import MedShareError
from offchain.ipfs.cid import CID


class StoreError(MedShareError):
    """A store could not do what was asked."""


class BlockNotFound(StoreError):
    """A block is not in the store."""

    def __init__(self, cid: CID, reason: str = "") -> None:
        super().__init__(f"block {cid} is not in the store" + (f": {reason}" if reason else ""))
        self.cid = cid


class CorruptBlock(StoreError):
    """A stored block does not hash to its CID: it was damaged on disk."""

    def __init__(self, cid: CID, location: str) -> None:
        super().__init__(f"block {cid} is corrupt: its content at {location} does not match its hash")
        self.cid = cid


class NotAFile(StoreError):
    """A CID names something other than a well-formed UnixFS file."""

    def __init__(self, cid: CID, reason: str) -> None:
        super().__init__(f"{cid} is not a UnixFS file: {reason}")
        self.cid = cid


class NotPinned(StoreError):
    """Unpinning a CID that is not pinned."""

    def __init__(self, cid: CID) -> None:
        super().__init__(f"{cid} is not pinned")
        self.cid = cid


class NodeUnreachable(StoreError):
    """The IPFS node's API does not answer (down, or restarting)."""
