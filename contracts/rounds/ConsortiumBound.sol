// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IConsortium} from "./IConsortium.sol";

/// @title ConsortiumBound
/// @notice A contract that lives beside the consortium's access policy: it takes its members' roles
/// and its guardian's pause from there, so admins appoint and evict in one place.
abstract contract ConsortiumBound {
    /// @dev ConsortiumRoles' role bits (see {IConsortium-rolesOf}).
    uint256 internal constant _COORDINATOR_BIT = 1 << 7;
    uint256 internal constant _PARTICIPANT_BIT = 1 << 8;

    /// @notice The access policy (MedicalAccess) whose roles and pause this contract follows.
    IConsortium public immutable consortium;

    /// @notice `consortium` holds no contract code.
    error ConsortiumNotAContract(address consortium);
    /// @notice The consortium's guardian paused every state change.
    error ConsortiumPaused();

    /// @param consortium_ The deployed access policy (MedicalAccess).
    constructor(address consortium_) {
        if (consortium_.code.length == 0) revert ConsortiumNotAContract(consortium_);
        consortium = IConsortium(consortium_);
    }

    function _requireNotPaused() internal view {
        if (consortium.paused()) revert ConsortiumPaused();
    }

    function _holds(address account, uint256 bit) internal view returns (bool) {
        return consortium.rolesOf(account) & bit != 0;
    }
}
