// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IConsortium} from "../interfaces/IConsortium.sol";
import {IConsortiumBound} from "../interfaces/IConsortiumBound.sol";

/// @title ConsortiumBound
/// @notice A contract that lives beside the consortium's access policy: it takes its members' roles
/// and its guardian's pause from there, so admins appoint and evict in one place.
abstract contract ConsortiumBound is IConsortiumBound {
    /// @dev ConsortiumRoles' role bits (see {IConsortium-rolesOf}).
    uint256 internal constant _COORDINATOR_BIT = 1 << 7;
    uint256 internal constant _PARTICIPANT_BIT = 1 << 8;

    /// @inheritdoc IConsortiumBound
    IConsortium public immutable consortium;

    /// @param consortium_ The deployed access policy (MedicalAccess).
    constructor(address consortium_) {
        if (consortium_.code.length == 0) revert ConsortiumNotAContract(consortium_);
        consortium = IConsortium(consortium_);
    }

    /// @dev Each secure-round posting pays for this call: made in assembly, it skips the ABI coder's
    /// memory and checks (a few hundred gas a call).
    function _requireNotPaused() internal view {
        if (_read(0x04, IConsortium.paused.selector, address(0)) != 0) {
            revert ConsortiumPaused();
        }
    }

    /// @dev Whether `account` holds the role of `bit`; refuses while the consortium is paused. One call
    /// for both (a second call to the consortium costs some 800 gas).
    function _holdsUnpaused(address account, uint256 bit) internal view returns (bool) {
        uint256 word = _read(0x24, IConsortium.rolesAndPauseOf.selector, account);
        if (word >> 255 != 0) revert ConsortiumPaused();
        return word & bit != 0;
    }

    function _holds(address account, uint256 bit) internal view returns (bool) {
        return _read(0x24, IConsortium.rolesOf.selector, account) & bit != 0;
    }

    /// @dev The word the consortium returns for `selector` called with no argument (`size` 4) or with
    /// `account` (`size` 0x24); bubbles up its revert.
    function _read(uint256 size, bytes4 selector, address account) private view returns (uint256 word) {
        address target = address(consortium);
        assembly ("memory-safe") {
            mstore(0x00, selector)
            mstore(0x04, account)
            if iszero(staticcall(gas(), target, 0x00, size, 0x00, 0x20)) {
                let data := mload(0x40)
                returndatacopy(data, 0, returndatasize())
                revert(data, returndatasize())
            }
            if lt(returndatasize(), 0x20) { revert(0, 0) }
            word := mload(0x00)
        }
    }
}
