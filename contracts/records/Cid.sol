// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Cid
/// @notice Binary IPFS CIDs with a sha2-256 multihash, stored as a one-byte format plus the 32-byte digest.
/// Accepted: CIDv0 (`0x12 0x20 <digest>`) and CIDv1 with codec raw (`0x01 0x55 0x12 0x20 <digest>`)
/// or dag-pb (`0x01 0x70 0x12 0x20 <digest>`). {encode} rebuilds the exact bytes from (format, digest).
library Cid {
    /// @notice CIDv0, implicitly dag-pb.
    uint8 internal constant V0 = 1;
    /// @notice CIDv1, codec raw (0x55).
    uint8 internal constant V1_RAW = 2;
    /// @notice CIDv1, codec dag-pb (0x70).
    uint8 internal constant V1_DAG_PB = 3;

    /// @notice `cid` is not a binary CIDv0 or CIDv1 (raw or dag-pb) with a sha2-256 digest.
    error InvalidCid(bytes cid);

    /// @notice Split a binary CID into its format and sha2-256 digest; reverts {InvalidCid} otherwise.
    function parse(bytes calldata cid) internal pure returns (uint8 format, bytes32 digest) {
        // One calldata word holds the prefix (bounds are checked by the length first): every secure
        // round posting parses a CID, so this stays a few dozen gas.
        uint256 length = cid.length;
        uint256 head;
        assembly ("memory-safe") {
            head := calldataload(cid.offset)
        }
        if (length == 34 && head >> 240 == 0x1220) {
            assembly ("memory-safe") {
                digest := calldataload(add(cid.offset, 2))
            }
            return (V0, digest);
        }
        if (length == 36 && head >> 248 == 0x01 && (head >> 224) & 0xffff == 0x1220) {
            assembly ("memory-safe") {
                digest := calldataload(add(cid.offset, 4))
            }
            uint256 codec = (head >> 240) & 0xff;
            if (codec == 0x55) return (V1_RAW, digest);
            if (codec == 0x70) return (V1_DAG_PB, digest);
        }
        revert InvalidCid(cid);
    }

    /// @notice The binary CID of `digest` in `format` (one of {V0}, {V1_RAW}, {V1_DAG_PB}).
    function encode(uint8 format, bytes32 digest) internal pure returns (bytes memory) {
        if (format == V0) return abi.encodePacked(hex"1220", digest);
        return abi.encodePacked(hex"01", format == V1_RAW ? bytes1(0x55) : bytes1(0x70), hex"1220", digest);
    }
}
