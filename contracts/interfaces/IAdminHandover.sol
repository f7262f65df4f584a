// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IAdminHandover
/// @notice A consortium admin hands its seat to a successor in two steps.
interface IAdminHandover {
    /// @notice `admin` proposed to hand its seat to `successor`, which must accept ({acceptAdminHandover}).
    event AdminHandoverProposed(address indexed admin, address indexed successor);
    /// @notice The handover from `admin` to `successor` was cancelled (by an admin, or because `admin`
    /// lost the admin role): `successor` can no longer accept it.
    event AdminHandoverCancelled(address indexed admin, address indexed successor);
    /// @notice `successor` accepted: it holds the admin role, and `admin` does not any more.
    event AdminHandedOver(address indexed admin, address indexed successor);

    /// @notice `account` holds the admin role already: there is no seat to hand it.
    error InvalidNewAdmin(address account);
    /// @notice `account` is not the successor the pending handover names (or none is pending).
    error NotPendingAdmin(address account);
    /// @notice There is no pending handover to cancel.
    error NoAdminHandover();

    /// @notice Propose `successor` to take the caller's admin seat, effective when it accepts
    /// (replacing any pending proposal); or, with the zero address, cancel the pending handover
    /// (any admin may). Admin only; runs while paused (nothing changes hands until the acceptance).
    /// @param successor The account to take over (not an admin already), or the zero address to cancel.
    function proposeAdminHandover(address successor) external;

    /// @notice Take the admin seat proposed to the caller: in this one transaction the caller gains
    /// the admin role and the proposer loses it. Refused while paused, as every new role is
    /// (`EnforcedPause`).
    function acceptAdminHandover() external;

    /// @notice The pending handover: `admin` hands its seat to `successor`; (0, 0) when none is pending.
    function pendingAdminHandover() external view returns (address admin, address successor);
}
