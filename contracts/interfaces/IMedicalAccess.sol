// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IERC5267} from "@openzeppelin/contracts/interfaces/IERC5267.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {IAccessGrants} from "./IAccessGrants.sol";
import {IAdminHandover} from "./IAdminHandover.sol";
import {IConsortiumRoles} from "./IConsortiumRoles.sol";
import {IKeyRegistry} from "./IKeyRegistry.sol";
import {IKeyShares} from "./IKeyShares.sol";
import {IPatientSignatures} from "./IPatientSignatures.sol";
import {IRecordRegistry} from "./IRecordRegistry.sol";

/// @title IMedicalAccess
/// @notice The consortium's access policy as its clients see it: each unit's interface (roles,
/// admin handover, records, grants, patient signatures, keys and key shares) with OpenZeppelin's
/// access control ({IAccessControl}), EIP-712 domain ({IERC5267}) and introspection ({IERC165}), and
/// the guardian's pause (OpenZeppelin's `Pausable`, which has no interface of its own).
/// @dev MedicalAccess's units implement their interfaces; MedicalAccess does not list this aggregate
/// among its bases, as `Pausable` declares the pause's events and errors again. Beside these, its ABI
/// has OpenZeppelin's `multicall(bytes[])` and the errors of the libraries it links (`Cid`'s
/// `InvalidCid`, the `Address` and `ShortStrings` errors): tests/contracts check the two agree.
interface IMedicalAccess is
    IAccessControl,
    IERC5267,
    IERC165,
    IConsortiumRoles,
    IAdminHandover,
    IRecordRegistry,
    IAccessGrants,
    IPatientSignatures,
    IKeyRegistry,
    IKeyShares
{
    /// @notice The guardian paused the consortium's state changes ({IConsortiumRoles-pause}).
    event Paused(address account);
    /// @notice The guardian resumed them ({IConsortiumRoles-unpause}).
    event Unpaused(address account);

    /// @notice The consortium is paused: the call would widen access.
    error EnforcedPause();
    /// @notice The consortium is not paused.
    error ExpectedPause();

    /// @notice The role that administers every other (the consortium admin's).
    function DEFAULT_ADMIN_ROLE() external view returns (bytes32);

    /// @notice Whether the guardian paused the consortium's state changes.
    function paused() external view returns (bool);
}
