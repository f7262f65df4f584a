// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IConsortium
/// @notice What a contract beside the access policy reads from it (MedicalAccess's {ConsortiumRoles}):
/// members' role bitmaps, whether a learning role was lost since, and the guardian's pause.
interface IConsortium {
    /// @notice The bitmap of consortium roles `account` holds (bit 7 coordinator, bit 8 participant).
    function rolesOf(address account) external view returns (uint256);

    /// @notice {rolesOf} with bit 255 set while the guardian paused the consortium's state changes.
    function rolesAndPauseOf(address account) external view returns (uint256);

    /// @notice Bit i is set when `accounts[i]` holds a role whose bit is set in `bits`.
    function holdersOf(address[] calldata accounts, uint256 bits) external view returns (uint256);

    /// @notice How many times an account lost the coordinator or participant role (only ever grows).
    function learningRoleLosses() external view returns (uint256);

    /// @notice Whether the guardian paused the consortium's state changes.
    function paused() external view returns (bool);
}
