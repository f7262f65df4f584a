"""Unsigned LEB128 varints, as used by multiformats and protobuf."""

from __future__ import annotations


def encode_varint(value: int) -> bytes:
    """The minimal unsigned varint of ``value``."""
    if value < 0:
        raise ValueError(f"varints are unsigned, got {value}")
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data: bytes | memoryview, offset: int = 0) -> tuple[int, int]:
    """Decode a varint at ``offset``; returns (value, offset after it).

    Raises ValueError on a truncated, over-long (> 9 bytes, beyond 63 bits) or
    non-minimal encoding.
    """
    if offset < len(data) and data[offset] < 0x80:  # one byte: nearly every varint a CID holds
        return data[offset], offset + 1
    value = shift = 0
    for index in range(offset, min(offset + 9, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and index > offset:
                raise ValueError("non-minimal varint")
            return value, index + 1
        shift += 7
    raise ValueError("truncated or over-long varint")
