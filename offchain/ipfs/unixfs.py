"""UnixFS file nodes in dag-pb, encoded byte-for-byte as Kubo encodes them.

dag-pb ``PBNode``: ``Links`` (field 2, each a ``PBLink``: ``Hash`` 1, ``Name`` 2,
``Tsize`` 3) come before ``Data`` (field 1). ``Data`` holds a UnixFS ``Data``
message: ``Type`` 1, ``Data`` 2, ``filesize`` 3, ``blocksizes`` 4 (repeated,
unpacked, as proto2 encodes it). Kubo always writes the link ``Name``, empty.
"""

from __future__ import annotations

from dataclasses import dataclass

from offchain.ipfs.varint import decode_varint, encode_varint

# UnixFS Data.Type values this store reads; File is the only one it writes.
UNIXFS_RAW = 0
UNIXFS_FILE = 2

_VARINT, _BYTES = 0, 2


def _key(field: int, wire_type: int) -> bytes:
    return encode_varint(field << 3 | wire_type)


def _bytes_field(field: int, value: bytes) -> bytes:
    return _key(field, _BYTES) + encode_varint(len(value)) + value


def _varint_field(field: int, value: int) -> bytes:
    return _key(field, _VARINT) + encode_varint(value)


@dataclass(frozen=True)
class Link:
    """A child of a file node: its CID bytes, its tree size (``Tsize``) and its file bytes."""

    cid: bytes
    tsize: int
    filesize: int


def leaf_node_parts(chunk_length: int) -> tuple[bytes, bytes]:
    """The bytes around a chunk in a dag-pb leaf: ``prefix + chunk + suffix`` is the block.

    Split so that a large chunk is hashed and written without being copied.
    """
    unixfs_head = _varint_field(1, UNIXFS_FILE)
    if chunk_length:
        unixfs_head += _key(2, _BYTES) + encode_varint(chunk_length)
    suffix = _varint_field(3, chunk_length)
    unixfs_length = len(unixfs_head) + chunk_length + len(suffix)
    return _key(1, _BYTES) + encode_varint(unixfs_length) + unixfs_head, suffix


def internal_node(links: list[Link]) -> bytes:
    """A dag-pb file node over ``links`` (no data of its own)."""
    unixfs = _varint_field(1, UNIXFS_FILE) + _varint_field(3, sum(link.filesize for link in links))
    unixfs += b"".join(_varint_field(4, link.filesize) for link in links)
    encoded_links = (
        _bytes_field(2, _bytes_field(1, link.cid) + _bytes_field(2, b"") + _varint_field(3, link.tsize))
        for link in links
    )
    return b"".join(encoded_links) + _bytes_field(1, unixfs)


@dataclass(frozen=True)
class FileNode:
    """A decoded dag-pb UnixFS file node."""

    data: bytes
    filesize: int | None
    blocksizes: list[int]
    links: list[bytes]  # the children's binary CIDs, in order


def _fields(buffer: bytes) -> list[tuple[int, int | bytes]]:
    """The (field, value) pairs of a protobuf message with varint and length-delimited fields only."""
    fields, offset = [], 0
    while offset < len(buffer):
        key, offset = decode_varint(buffer, offset)
        field, wire_type = key >> 3, key & 7
        if wire_type == _VARINT:
            value, offset = decode_varint(buffer, offset)
        elif wire_type == _BYTES:
            length, offset = decode_varint(buffer, offset)
            if offset + length > len(buffer):
                raise ValueError("truncated field")
            value, offset = buffer[offset : offset + length], offset + length
        else:
            raise ValueError(f"unexpected protobuf wire type {wire_type}")
        fields.append((field, value))
    return fields


def decode_file_node(block: bytes) -> FileNode:
    """Decode a dag-pb block holding a UnixFS file; ValueError if it is anything else."""
    links, unixfs = [], None
    for field, value in _fields(block):
        if field == 2 and isinstance(value, bytes):
            hashes = [v for f, v in _fields(value) if f == 1 and isinstance(v, bytes)]
            if len(hashes) != 1:
                raise ValueError("a link without exactly one Hash")
            links.append(hashes[0])
        elif field == 1 and isinstance(value, bytes):
            unixfs = value
    if unixfs is None:
        raise ValueError("a dag-pb node without UnixFS data")
    kind, data, filesize, blocksizes = None, b"", None, []
    for field, value in _fields(unixfs):
        if field == 1:
            kind = value
        elif field == 2 and isinstance(value, bytes):
            data = value
        elif field == 3 and isinstance(value, int):
            filesize = value
        elif field == 4 and isinstance(value, int):
            blocksizes.append(value)
        elif field == 4:  # packed, as some encoders write it
            offset = 0
            while offset < len(value):
                size, offset = decode_varint(value, offset)
                blocksizes.append(size)
    if kind not in (UNIXFS_FILE, UNIXFS_RAW):
        raise ValueError(f"UnixFS node of type {kind}, not a file")
    if len(blocksizes) != len(links):
        raise ValueError(f"{len(links)} links but {len(blocksizes)} block sizes")
    return FileNode(data, filesize, blocksizes, links)
