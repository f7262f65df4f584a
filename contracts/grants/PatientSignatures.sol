// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {RecordState} from "../records/RecordState.sol";
import {AccessGrants} from "./AccessGrants.sol";

/// @title PatientSignatures
/// @notice A patient's grants and consents as EIP-712 signatures that anyone may relay. Each signature
/// carries a deadline and the patient's next nonce (OpenZeppelin {Nonces}); the domain binds chain id
/// and contract. The patient may be an EOA or an ERC-1271 contract wallet.
abstract contract PatientSignatures is AccessGrants, EIP712, Nonces {
    /// @notice EIP-712 type of a patient's grant.
    bytes32 public constant GRANT_TYPEHASH =
        keccak256("Grant(bytes32 record,address grantee,uint64 expiry,uint256 nonce,uint256 deadline)");
    /// @notice EIP-712 type of a patient's consent.
    bytes32 public constant CONSENT_TYPEHASH =
        keccak256("Consent(bytes32 record,address researcher,bool given,uint256 nonce,uint256 deadline)");

    /// @notice The signature's deadline has passed.
    error SignatureExpired(uint256 deadline);
    /// @notice The signature is not `patient`'s, the patient of `record`.
    error InvalidPatientSignature(bytes32 record, address patient);

    /// @notice Relay the patient's signed {Grant}: `grantee` may read `record` until `expiry`, with the
    /// patient's consent. Anyone may call.
    /// @param record The record id.
    /// @param grantee The reader (a doctor or researcher).
    /// @param expiry Unix time at which the grant stops passing; must be in the future.
    /// @param nonce The patient's current nonce (`nonces(patient)`).
    /// @param deadline Unix time after which the signature is refused.
    /// @param signature The patient's EIP-712 signature.
    function grantAccessBySig(
        bytes32 record,
        address grantee,
        uint64 expiry,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external whenNotPaused {
        bytes32 structHash = keccak256(abi.encode(GRANT_TYPEHASH, record, grantee, expiry, nonce, deadline));
        address patient = _usePatientSignature(record, structHash, nonce, deadline, signature);
        _requireFuture(expiry);
        _grant(_grants[record], record, grantee, expiry, true, patient);
    }

    /// @notice Relay the patient's signed {Consent}: give or withdraw consent for `researcher` to read
    /// `record`. Anyone may call.
    /// @param record The record id.
    /// @param researcher A holder of the researcher role (any account when withdrawing).
    /// @param given True to consent, false to withdraw.
    /// @param nonce The patient's current nonce (`nonces(patient)`).
    /// @param deadline Unix time after which the signature is refused.
    /// @param signature The patient's EIP-712 signature.
    function setConsentBySig(
        bytes32 record,
        address researcher,
        bool given,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external whenNotPaused {
        bytes32 structHash = keccak256(abi.encode(CONSENT_TYPEHASH, record, researcher, given, nonce, deadline));
        address patient = _usePatientSignature(record, structHash, nonce, deadline, signature);
        _setConsent(record, researcher, given, patient);
    }

    /// @dev Checks the deadline, the record, the patient's role, consumes the nonce (a replay fails
    /// with {InvalidAccountNonce}) and verifies the signature. Returns the patient.
    function _usePatientSignature(
        bytes32 record,
        bytes32 structHash,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) private returns (address patient) {
        if (block.timestamp > deadline) revert SignatureExpired(deadline);
        RecordState r = _liveRecord(record);
        patient = r.patient();
        _requireRoleBit(_memberships[patient], _PATIENT_BIT, PATIENT_ROLE, patient);
        _useCheckedNonce(patient, nonce);
        if (!SignatureChecker.isValidSignatureNow(patient, _hashTypedDataV4(structHash), signature)) {
            revert InvalidPatientSignature(record, patient);
        }
    }
}
