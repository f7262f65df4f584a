// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ConsortiumRoles} from "./ConsortiumRoles.sol";
import {IAdminHandover} from "../interfaces/IAdminHandover.sol";

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
abstract contract AdminHandover is ConsortiumRoles, IAdminHandover {
    address private _handoverFrom;
    address private _handoverTo;

    /// @inheritdoc IAdminHandover
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

    /// @inheritdoc IAdminHandover
    function acceptAdminHandover() external {
        (address from, address to) = (_handoverFrom, _handoverTo);
        if (to == address(0) || msg.sender != to) revert NotPendingAdmin(msg.sender);
        delete _handoverFrom;
        delete _handoverTo;
        _grantRole(DEFAULT_ADMIN_ROLE, to);
        _revokeRole(DEFAULT_ADMIN_ROLE, from);
        emit AdminHandedOver(from, to);
    }

    /// @inheritdoc IAdminHandover
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
