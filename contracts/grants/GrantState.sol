// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice One (record, user) pair's access in one storage slot. Times and blocks are uint40 throughout.
/// Layout (low bits first): grant expiry [0, 40), block of the last change to the grant (granted or
/// revoked) [40, 80), consent expiry [80, 120), block of the last change to the consent (given,
/// withdrawn or revoked with the grant) [120, 160), break-glass expiry [160, 200) (the closing time
/// once closed), block break-glass was opened in [200, 240), flags [240, 248) (grant made to a
/// doctor; break-glass closed by the record's owner or patient), break-glass openings [248, 256).
/// A grant, consent or break-glass is void when its block is not after the user's last loss of a
/// reading role ({Membership.lostAt}), so neither writing nor revoking a grant needs to sweep anything.
type GrantState is uint256;

using GrantStateLib for GrantState global;

/// @notice Accessors of the packed {GrantState} word.
library GrantStateLib {
    uint256 private constant _GRANTED_AT_SHIFT = 40;
    uint256 private constant _CONSENT_EXPIRY_SHIFT = 80;
    uint256 private constant _CONSENT_AT_SHIFT = 120;
    uint256 private constant _EMERGENCY_EXPIRY_SHIFT = 160;
    uint256 private constant _EMERGENCY_AT_SHIFT = 200;
    uint256 private constant _FOR_DOCTOR_BIT = 1 << 240;
    uint256 private constant _EMERGENCY_CLOSED_BIT = 1 << 241;
    uint256 private constant _OPENINGS_SHIFT = 248;
    uint256 private constant _MASK40 = 0xffffffffff;
    uint256 private constant _GRANT_MASK = _MASK40 | (_MASK40 << _GRANTED_AT_SHIFT) | _FOR_DOCTOR_BIT;
    uint256 private constant _CONSENT_MASK = (_MASK40 << _CONSENT_EXPIRY_SHIFT) | (_MASK40 << _CONSENT_AT_SHIFT);
    uint256 private constant _EMERGENCY_MASK =
        (_MASK40 << _EMERGENCY_EXPIRY_SHIFT) | (_MASK40 << _EMERGENCY_AT_SHIFT) | _EMERGENCY_CLOSED_BIT;

    function expiry(GrantState g) internal pure returns (uint40) {
        return uint40(GrantState.unwrap(g));
    }

    /// @notice The block of the last grant or revocation of the pair's grant (0: never).
    function grantedAt(GrantState g) internal pure returns (uint40) {
        return uint40(GrantState.unwrap(g) >> _GRANTED_AT_SHIFT);
    }

    /// @notice Whether the grant was made while the grantee held the doctor role: only then does it
    /// pass without consent, so that a researcher's grant does not turn into a clinician's when the
    /// account later becomes a doctor.
    function forDoctor(GrantState g) internal pure returns (bool) {
        return GrantState.unwrap(g) & _FOR_DOCTOR_BIT != 0;
    }

    function consentExpiry(GrantState g) internal pure returns (uint40) {
        return uint40(GrantState.unwrap(g) >> _CONSENT_EXPIRY_SHIFT);
    }

    /// @notice The block of the last change to the consent (0: never).
    function consentAt(GrantState g) internal pure returns (uint40) {
        return uint40(GrantState.unwrap(g) >> _CONSENT_AT_SHIFT);
    }

    function emergencyExpiry(GrantState g) internal pure returns (uint40) {
        return uint40(GrantState.unwrap(g) >> _EMERGENCY_EXPIRY_SHIFT);
    }

    function emergencyAt(GrantState g) internal pure returns (uint40) {
        return uint40(GrantState.unwrap(g) >> _EMERGENCY_AT_SHIFT);
    }

    /// @notice Whether the record's owner or patient closed the last break-glass access.
    function emergencyClosed(GrantState g) internal pure returns (bool) {
        return GrantState.unwrap(g) & _EMERGENCY_CLOSED_BIT != 0;
    }

    /// @notice How many times break-glass access was opened or renewed for the pair.
    function emergencyOpenings(GrantState g) internal pure returns (uint8) {
        return uint8(GrantState.unwrap(g) >> _OPENINGS_SHIFT);
    }

    /// @notice `g` with a grant until `expiry_` made in the current block, to a doctor (`toDoctor`) or not.
    function withGrant(GrantState g, uint40 expiry_, bool toDoctor) internal view returns (GrantState) {
        uint256 word = (GrantState.unwrap(g) & ~_GRANT_MASK) | expiry_ | (_blockNumber() << _GRANTED_AT_SHIFT);
        return GrantState.wrap(toDoctor ? word | _FOR_DOCTOR_BIT : word);
    }

    /// @notice `g` with the grant and its consent removed, both stamped with the current block (so that
    /// a signature issued before the revocation cannot restore them).
    function withoutGrant(GrantState g) internal view returns (GrantState) {
        uint256 stamp = _blockNumber();
        return GrantState.wrap(
            (GrantState.unwrap(g) & ~(_GRANT_MASK | _CONSENT_MASK)) | (stamp << _GRANTED_AT_SHIFT)
                | (stamp << _CONSENT_AT_SHIFT)
        );
    }

    /// @notice `g` with consent until `expiry_` (0: withdrawn), changed in the current block.
    function withConsent(GrantState g, uint40 expiry_) internal view returns (GrantState) {
        return GrantState.wrap(
            (GrantState.unwrap(g) & ~_CONSENT_MASK) | (uint256(expiry_) << _CONSENT_EXPIRY_SHIFT)
                | (_blockNumber() << _CONSENT_AT_SHIFT)
        );
    }

    /// @notice `g` with break-glass access until `expiry_` opened in the current block, one more opening counted.
    function withEmergencyOpened(GrantState g, uint40 expiry_) internal view returns (GrantState) {
        uint256 word = GrantState.unwrap(g);
        return GrantState.wrap(
            ((word & ~_EMERGENCY_MASK) + (1 << _OPENINGS_SHIFT)) | (uint256(expiry_) << _EMERGENCY_EXPIRY_SHIFT)
                | (_blockNumber() << _EMERGENCY_AT_SHIFT)
        );
    }

    /// @notice `g` with break-glass access closed now; `byOther` (the owner or patient closed it)
    /// starts the reopening cooldown from now.
    function withEmergencyClosed(GrantState g, bool byOther) internal view returns (GrantState) {
        uint256 word = (GrantState.unwrap(g) & ~((_MASK40 << _EMERGENCY_EXPIRY_SHIFT) | _EMERGENCY_CLOSED_BIT))
            | (uint256(uint40(block.timestamp)) << _EMERGENCY_EXPIRY_SHIFT);
        return GrantState.wrap(byOther ? word | _EMERGENCY_CLOSED_BIT : word);
    }

    function _blockNumber() private view returns (uint256) {
        return uint256(uint40(block.number));
    }
}
