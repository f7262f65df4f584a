"""A UnixFS file's DAG walked block by block, from any source of blocks: its bytes, and its blocks' hashes.

Both stores read files this way: the embedded one from its blockstore, the
Kubo backend from the daemon's ``block/get``, so a daemon that returns wrong
bytes is caught exactly as a damaged disk is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Iterator

from offchain.ipfs.cid import CID, DAG_PB, RAW, SHA2_256, InvalidCID
from offchain.ipfs.errors import BlockNotFound, CorruptBlock, NotAFile, StoreError
from offchain.ipfs.unixfs import FileNode, decode_file_node

GetBlock = Callable[[CID], bytes]  # the block named by the CID, checked against it (see check_block)
HasBlock = Callable[[CID], bool]


def check_block(cid: CID, block: bytes, where: str) -> bytes:
    """``block`` if it hashes to ``cid``; CorruptBlock naming ``where`` it came from if not."""
    if cid.hash_code != SHA2_256:
        raise StoreError(f"block {cid}: only sha2-256 multihashes are supported")
    if hashlib.sha256(block).digest() != cid.digest:
        raise CorruptBlock(cid, where)
    return block


def file_pieces(get_block: GetBlock, cid: CID, expected_size: int | None = None) -> Generator[bytes, None, int]:
    """Yield the file under ``cid`` depth-first, a block's data at a time; returns its size.

    Every node's declared sizes are checked against what its children hold.
    """
    block = get_block(cid)
    if cid.codec == RAW:
        size = len(block)
        if block:
            yield block
    else:
        node = file_node(cid, block)
        size = len(node.data)
        if node.data:
            yield node.data
        for child, blocksize in zip(node.links, node.blocksizes):
            size += yield from file_pieces(get_block, child_cid(cid, child), blocksize)
        if node.filesize is not None and size != node.filesize:
            raise NotAFile(cid, f"it declares {node.filesize} bytes but holds {size}")
    if expected_size is not None and size != expected_size:
        raise NotAFile(cid, f"its parent declares {expected_size} bytes but it holds {size}")
    return size


def dag_multihashes(get_block: GetBlock, has_block: HasBlock, cid: CID) -> Iterator[bytes]:
    """The multihash of every block in ``cid``'s DAG.

    Raises if a block is missing, or if a node with links is corrupt; raw
    leaves are only checked to be present (they are verified when read).
    """
    yield cid.multihash
    if cid.codec == RAW:
        if not has_block(cid):
            raise BlockNotFound(cid)
        return
    for child in file_node(cid, get_block(cid)).links:
        yield from dag_multihashes(get_block, has_block, child_cid(cid, child))


def file_node(cid: CID, block: bytes) -> FileNode:
    if cid.codec != DAG_PB:
        raise NotAFile(cid, f"unsupported codec 0x{cid.codec:x}")
    try:
        return decode_file_node(block)
    except ValueError as error:
        raise NotAFile(cid, str(error)) from None


def child_cid(parent: CID, child: bytes) -> CID:
    try:
        return CID.from_bytes(child)
    except InvalidCID as error:
        raise NotAFile(parent, f"a link is not a CID ({error})") from None
