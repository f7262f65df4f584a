"""The record binding shared by stream encryption and key wrapping.

Both bind a ciphertext to one version of one on-chain record, encoded exactly
as the contract holds them: the record id as ``bytes32`` and the version as a
big-endian ``uint256``.
"""

RECORD_ID_SIZE = 32
_UINT256_SIZE = 32


def record_binding(record_id: bytes, record_version: int) -> bytes:
    """Return ``record_id || uint256(record_version)`` (64 bytes) after checking both."""
    if not isinstance(record_id, (bytes, bytearray, memoryview)):
        raise TypeError(f"record_id must be bytes, not {type(record_id).__name__}")
    if len(record_id) != RECORD_ID_SIZE:
        raise ValueError(f"record_id must be {RECORD_ID_SIZE} bytes (bytes32), got {len(record_id)}")
    if isinstance(record_version, bool) or not isinstance(record_version, int):
        raise TypeError(f"record_version must be an int, not {type(record_version).__name__}")
    if not 0 <= record_version < 2**256:
        raise ValueError(f"record_version must be a uint256, got {record_version}")
    return bytes(record_id) + record_version.to_bytes(_UINT256_SIZE, "big")
