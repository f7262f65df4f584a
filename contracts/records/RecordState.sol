// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice One record (or one claimed CID digest) in one storage slot.
/// Layout (low bits first): patient [0, 160), data-owner id [160, 192), version [192, 224),
/// CID format [224, 232), flags [232, 240). A word with owner id 0 is not a record: it is either
/// unused or, with the ALIAS flag, a digest claimed by another record's rotation.
type RecordState is uint256;

using RecordStateLib for RecordState global;

/// @notice Accessors of the packed {RecordState} word.
library RecordStateLib {
    uint256 internal constant RETIRED = 1;
    uint256 internal constant ALIAS = 2;

    uint256 private constant _OWNER_ID_SHIFT = 160;
    uint256 private constant _VERSION_SHIFT = 192;
    uint256 private constant _FORMAT_SHIFT = 224;
    uint256 private constant _FLAGS_SHIFT = 232;

    function pack(address patient_, uint32 ownerId_, uint32 version_, uint8 format_, uint256 flags_)
        internal
        pure
        returns (RecordState)
    {
        return RecordState.wrap(
            uint256(uint160(patient_)) | (uint256(ownerId_) << _OWNER_ID_SHIFT)
                | (uint256(version_) << _VERSION_SHIFT) | (uint256(format_) << _FORMAT_SHIFT)
                | (flags_ << _FLAGS_SHIFT)
        );
    }

    /// @notice Whether anything (a record or a rotation's claim) holds this digest.
    function isClaimed(RecordState r) internal pure returns (bool) {
        return RecordState.unwrap(r) != 0;
    }

    function patient(RecordState r) internal pure returns (address) {
        return address(uint160(RecordState.unwrap(r)));
    }

    function ownerId(RecordState r) internal pure returns (uint32) {
        return uint32(RecordState.unwrap(r) >> _OWNER_ID_SHIFT);
    }

    function version(RecordState r) internal pure returns (uint32) {
        return uint32(RecordState.unwrap(r) >> _VERSION_SHIFT);
    }

    function format(RecordState r) internal pure returns (uint8) {
        return uint8(RecordState.unwrap(r) >> _FORMAT_SHIFT);
    }

    function isRetired(RecordState r) internal pure returns (bool) {
        return (RecordState.unwrap(r) >> _FLAGS_SHIFT) & RETIRED != 0;
    }

    function retired(RecordState r) internal pure returns (RecordState) {
        return RecordState.wrap(RecordState.unwrap(r) | (RETIRED << _FLAGS_SHIFT));
    }

    function rotated(RecordState r, uint32 version_, uint8 format_) internal pure returns (RecordState) {
        return pack(r.patient(), r.ownerId(), version_, format_, RecordState.unwrap(r) >> _FLAGS_SHIFT);
    }
}
