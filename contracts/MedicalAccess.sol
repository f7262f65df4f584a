// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ConsortiumRoles} from "./access/ConsortiumRoles.sol";
import {PatientSignatures} from "./grants/PatientSignatures.sol";
import {KeyRegistry} from "./keys/KeyRegistry.sol";

/// @title MedicalAccess
/// @notice The consortium's access policy for encrypted medical records on IPFS: roles, records and
/// their versions, expiring grants, patient consent and signatures, break-glass access, members'
/// encryption keys, and an audit trail in events.
/// @dev Composed of {ConsortiumRoles}, {RecordRegistry}, {AccessGrants}, {PatientSignatures} and
/// {KeyRegistry}. EIP-712 domain: name "MedicalAccess", version "1".
contract MedicalAccess is PatientSignatures, KeyRegistry {
    /// @param admin The first consortium admin; it appoints every other role.
    constructor(address admin) ConsortiumRoles(admin) EIP712("MedicalAccess", "1") {}
}
