// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ConsortiumRoles} from "./ConsortiumRoles.sol";

/// @title AdminHandover
/// @notice A consortium admin hands its seat to another account in two steps, as OpenZeppelin's
/// `Ownable2Step` hands over ownership: the admin proposes the successor, which accepts from its own
/// key. Until then the admin keeps its seat, so a mistyped address, or one whose key nobody holds,
/// costs nothing: the proposal is replaced or cancelled (proposing the zero address, as in
/// `Ownable2Step`). `grantRole` still appoints further admins in one step (the granting admin keeps
/// its seat); the handover is how an admin leaves its seat to someone else.
/// @dev One handover is pending at a time. It is void once its proposer no longer holds the admin
/// role, so an admin removed by the others cannot hand its seat on later. Three entry points, no
/// more: each external function lengthens the selector dispatch of some others, and these three
/// leave the policy's hot paths (register, grant, revoke, checkAccess) no dearer (bench/gas.py).
abstract contract AdminHandover is ConsortiumRoles {
    address private _handoverFrom;
    address private _handoverTo;

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
    function proposeAdminHandover(address successor) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (successor == address(0)) {
            if (!_cancelAdminHandover()) revert NoAdminHandover();
            return;
        }
        if (hasRole(DEFAULT_ADMIN_ROLE, successor)) revert InvalidNewAdmin(successor);
        _cancelAdminHandover();
        (_handoverFrom, _handoverTo) = (msg.sender, successor);
        emit AdminHandoverProposed(msg.sender, successor);
    }

    /// @notice Take the admin seat proposed to the caller: in this one transaction the caller gains
    /// the admin role and the proposer loses it. Refused while paused, as every new role is
    /// (`EnforcedPause`).
    function acceptAdminHandover() external {
        (address from, address to) = (_handoverFrom, _handoverTo);
        if (to == address(0) || msg.sender != to) revert NotPendingAdmin(msg.sender);
        delete _handoverFrom;
        delete _handoverTo;
        _grantRole(DEFAULT_ADMIN_ROLE, to);
        _revokeRole(DEFAULT_ADMIN_ROLE, from);
        emit AdminHandedOver(from, to);
    }

    /// @notice The pending handover: `admin` hands its seat to `successor`; (0, 0) when none is pending.
    function pendingAdminHandover() external view returns (address admin, address successor) {
        return (_handoverFrom, _handoverTo);
    }

    /// @dev An admin who loses the role (revoked or renounced) can no longer hand its seat on.
    function _revokeRole(bytes32 role, address account) internal virtual override returns (bool revoked) {
        revoked = super._revokeRole(role, account);
        if (revoked && role == DEFAULT_ADMIN_ROLE && account == _handoverFrom) _cancelAdminHandover();
    }

    function _cancelAdminHandover() private returns (bool cancelled) {
        (address from, address to) = (_handoverFrom, _handoverTo);
        if (to == address(0)) return false;
        delete _handoverFrom;
        delete _handoverTo;
        emit AdminHandoverCancelled(from, to);
        return true;
    }
}
