// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Multicall} from "@openzeppelin/contracts/utils/Multicall.sol";
import {AdminHandover} from "./access/AdminHandover.sol";
import {ConsortiumRoles} from "./access/ConsortiumRoles.sol";
import {PatientSignatures} from "./grants/PatientSignatures.sol";
import {KeyRegistry} from "./keys/KeyRegistry.sol";
import {KeyShares} from "./keys/KeyShares.sol";

/// @title MedicalAccess
/// @notice The consortium's access policy for encrypted medical records on IPFS: roles, records and
/// their versions, expiring grants, patient consent and signatures, break-glass access, members'
/// encryption keys and the data keys wrapped for them, and an audit trail in events.
/// @dev Composed of {ConsortiumRoles} with its two-step {AdminHandover}, {RecordRegistry},
/// {AccessGrants}, {PatientSignatures}, {KeyRegistry} and {KeyShares}. OpenZeppelin's {Multicall} makes a step and its key shares one
/// transaction (register and share, grant and share, revoke, rotate and re-share), so a failure
/// leaves nothing half done. EIP-712 domain: name "MedicalAccess", version "1".
contract MedicalAccess is AdminHandover, PatientSignatures, KeyRegistry, KeyShares, Multicall {
    /// @param admin The first consortium admin; it appoints every other role.
    constructor(address admin) ConsortiumRoles(admin) EIP712("MedicalAccess", "1") {}

    /// @dev ConsortiumRoles' guards and bookkeeping, then AdminHandover's voiding of its proposer's handover.
    function _revokeRole(bytes32 role, address account)
        internal
        override(ConsortiumRoles, AdminHandover)
        returns (bool)
    {
        return super._revokeRole(role, account);
    }
}
