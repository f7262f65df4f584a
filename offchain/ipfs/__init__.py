"""IPFS storage: CIDs, the Store interface, the embedded store and the Kubo backend.

``open_store()`` gives the store the settings name (``MEDSHARE_IPFS_BACKEND``).
"""

from offchain.ipfs.cid import CID, DAG_PB, RAW, InvalidCID
from offchain.ipfs.embedded import EmbeddedStore
from offchain.ipfs.errors import BlockNotFound, CorruptBlock, NotAFile, NotPinned, StoreError
from offchain.ipfs.importer import FileImporter
from offchain.ipfs.kubo import KuboStore
from offchain.ipfs.store import Store
from offchain.settings import Settings


def open_store(settings: Settings | None = None) -> Store:
    """The configured store: embedded in ``$MEDSHARE_HOME/ipfs`` (default) or Kubo at ``IPFS_API``; a Kubo
    node with a consortium config (:mod:`offchain.ipfs.consortium`) dials its peers and replicates uploads."""
    from offchain.ipfs.consortium import Consortium, SiteStore

    settings = settings or Settings.from_env()
    if settings.ipfs_backend == "kubo":
        node = KuboStore.from_settings(settings)
        consortium = Consortium.load(settings.consortium_file)
        return node if consortium is None else SiteStore(node, consortium)
    return EmbeddedStore.from_settings(settings)


__all__ = [
    "CID",
    "DAG_PB",
    "RAW",
    "BlockNotFound",
    "CorruptBlock",
    "EmbeddedStore",
    "FileImporter",
    "InvalidCID",
    "KuboStore",
    "NotAFile",
    "NotPinned",
    "Settings",
    "Store",
    "StoreError",
    "open_store",
]
