// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice One (record, user) pair's access in one storage slot.
/// Layout (low bits first): grant expiry [0, 64), block it was granted in [64, 104), block the patient
/// consented in [104, 144) (0: no consent), break-glass expiry [144, 208), block break-glass was opened
/// in [208, 248). Each part is void when its block is not after the user's last loss of a reading role
/// ({Membership.lostAt}), so neither writing nor revoking a grant needs the user's membership.
type GrantState is uint256;

using GrantStateLib for GrantState global;

/// @notice Accessors of the packed {GrantState} word.
library GrantStateLib {
    uint256 private constant _GRANTED_AT_SHIFT = 64;
    uint256 private constant _CONSENT_AT_SHIFT = 104;
    uint256 private constant _EMERGENCY_EXPIRY_SHIFT = 144;
    uint256 private constant _EMERGENCY_AT_SHIFT = 208;
    uint256 private constant _MASK40 = 0xffffffffff;
    uint256 private constant _MASK64 = 0xffffffffffffffff;
    uint256 private constant _GRANT_MASK = (_MASK64) | (_MASK40 << _GRANTED_AT_SHIFT);
    uint256 private constant _CONSENT_MASK = _MASK40 << _CONSENT_AT_SHIFT;
    uint256 private constant _EMERGENCY_MASK = (_MASK64 << _EMERGENCY_EXPIRY_SHIFT) | (_MASK40 << _EMERGENCY_AT_SHIFT);

    function expiry(GrantState g) internal pure returns (uint64) {
        return uint64(GrantState.unwrap(g));
    }

    function grantedAt(GrantState g) internal pure returns (uint40) {
        return uint40(GrantState.unwrap(g) >> _GRANTED_AT_SHIFT);
    }

    function consentAt(GrantState g) internal pure returns (uint40) {
        return uint40(GrantState.unwrap(g) >> _CONSENT_AT_SHIFT);
    }

    function emergencyExpiry(GrantState g) internal pure returns (uint64) {
        return uint64(GrantState.unwrap(g) >> _EMERGENCY_EXPIRY_SHIFT);
    }

    function emergencyAt(GrantState g) internal pure returns (uint40) {
        return uint40(GrantState.unwrap(g) >> _EMERGENCY_AT_SHIFT);
    }

    /// @notice `g` with a grant until `expiry_` made in the current block.
    function withGrant(GrantState g, uint64 expiry_) internal view returns (GrantState) {
        return GrantState.wrap(
            (GrantState.unwrap(g) & ~_GRANT_MASK) | expiry_ | (block.number << _GRANTED_AT_SHIFT)
        );
    }

    /// @notice `g` with the grant and its consent removed.
    function withoutGrant(GrantState g) internal pure returns (GrantState) {
        return GrantState.wrap(GrantState.unwrap(g) & ~(_GRANT_MASK | _CONSENT_MASK));
    }

    /// @notice `g` with consent given in the current block (`given`) or withdrawn.
    function withConsent(GrantState g, bool given) internal view returns (GrantState) {
        uint256 stamp = given ? block.number << _CONSENT_AT_SHIFT : 0;
        return GrantState.wrap((GrantState.unwrap(g) & ~_CONSENT_MASK) | stamp);
    }

    /// @notice `g` with break-glass access until `expiry_` opened in the current block (0: closed).
    function withEmergency(GrantState g, uint64 expiry_) internal view returns (GrantState) {
        uint256 part = expiry_ == 0
            ? 0
            : (uint256(expiry_) << _EMERGENCY_EXPIRY_SHIFT) | (block.number << _EMERGENCY_AT_SHIFT);
        return GrantState.wrap((GrantState.unwrap(g) & ~_EMERGENCY_MASK) | part);
    }
}
