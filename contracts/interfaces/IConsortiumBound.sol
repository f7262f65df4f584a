// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IConsortium} from "./IConsortium.sol";

/// @title IConsortiumBound
/// @notice A contract that lives beside the consortium's access policy and follows its roles and pause.
interface IConsortiumBound {
    /// @notice `consortium` holds no contract code.
    error ConsortiumNotAContract(address consortium);
    /// @notice The consortium's guardian paused every state change.
    error ConsortiumPaused();

    /// @notice The access policy (MedicalAccess) whose roles and pause this contract follows.
    function consortium() external view returns (IConsortium);
}
