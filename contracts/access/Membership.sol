// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice Everything the policy needs to know about one account, packed in one storage slot so that
/// a hot path (grant, checkAccess) learns an account's roles, last loss of a reading role and
/// data-owner id in one SLOAD.
/// Layout (low bits first): roles bitmap [0, 16), block of the last reading-role loss [16, 56),
/// data-owner id [56, 88), encryption-key version [88, 120), encryption-key suite (HPKE KEM id) [120, 136).
type Membership is uint256;

using MembershipLib for Membership global;

/// @notice Accessors of the packed {Membership} word.
library MembershipLib {
    uint256 private constant _LOST_AT_SHIFT = 16;
    uint256 private constant _OWNER_ID_SHIFT = 56;
    uint256 private constant _KEY_VERSION_SHIFT = 88;
    uint256 private constant _KEY_SUITE_SHIFT = 120;
    uint256 private constant _MASK16 = 0xffff;
    uint256 private constant _MASK32 = 0xffffffff;
    uint256 private constant _MASK40 = 0xffffffffff;

    /// @notice The bitmap of roles the account holds (see ConsortiumRoles' role bits).
    function roles(Membership m) internal pure returns (uint256) {
        return Membership.unwrap(m) & _MASK16;
    }

    /// @notice Whether the account holds any role whose bit is set in `bits`.
    function holdsAny(Membership m, uint256 bits) internal pure returns (bool) {
        return Membership.unwrap(m) & bits != 0;
    }

    /// @notice The block in which the account last lost a reading role (0: never). Grants, consents
    /// and break-glass openings stamped in this block or earlier are void.
    function lostAt(Membership m) internal pure returns (uint40) {
        return uint40(Membership.unwrap(m) >> _LOST_AT_SHIFT);
    }

    /// @notice The account's data-owner id (0: never held the data-owner role).
    function ownerId(Membership m) internal pure returns (uint32) {
        return uint32(Membership.unwrap(m) >> _OWNER_ID_SHIFT);
    }

    /// @notice The version of the account's last published encryption key (0: none).
    function keyVersion(Membership m) internal pure returns (uint32) {
        return uint32(Membership.unwrap(m) >> _KEY_VERSION_SHIFT);
    }

    /// @notice The HPKE KEM id of the account's last published encryption key (0: none).
    function keySuite(Membership m) internal pure returns (uint16) {
        return uint16(Membership.unwrap(m) >> _KEY_SUITE_SHIFT);
    }

    function withRoles(Membership m, uint256 bits) internal pure returns (Membership) {
        return Membership.wrap((Membership.unwrap(m) & ~_MASK16) | (bits & _MASK16));
    }

    function withLostAt(Membership m, uint40 block_) internal pure returns (Membership) {
        return Membership.wrap(
            (Membership.unwrap(m) & ~(_MASK40 << _LOST_AT_SHIFT)) | (uint256(block_) << _LOST_AT_SHIFT)
        );
    }

    function withOwnerId(Membership m, uint32 value) internal pure returns (Membership) {
        return _set(m, _OWNER_ID_SHIFT, value);
    }

    /// @notice The word with the encryption key's `version` and `suite` (HPKE KEM id) set.
    function withKey(Membership m, uint32 version, uint16 suite) internal pure returns (Membership) {
        m = _set(m, _KEY_VERSION_SHIFT, version);
        return Membership.wrap(
            (Membership.unwrap(m) & ~(_MASK16 << _KEY_SUITE_SHIFT)) | (uint256(suite) << _KEY_SUITE_SHIFT)
        );
    }

    function _set(Membership m, uint256 shift, uint32 value) private pure returns (Membership) {
        return Membership.wrap((Membership.unwrap(m) & ~(_MASK32 << shift)) | (uint256(value) << shift));
    }
}
