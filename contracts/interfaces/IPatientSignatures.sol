// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IPatientSignatures
/// @notice A patient's EIP-712 signed grants and consent, relayed by anyone.
interface IPatientSignatures {
    /// @notice `patient` cancelled its signature with `nonce` before anyone relayed it.
    event SignatureCancelled(address indexed patient, uint256 nonce);

    /// @notice The signature's deadline has passed.
    error SignatureExpired(uint256 deadline);
    /// @notice The signature is not `patient`'s, the patient of `record`.
    error InvalidPatientSignature(bytes32 record, address patient);
    /// @notice `patient`'s signature with `nonce` was used or cancelled already.
    error NonceAlreadyUsed(address patient, uint256 nonce);
    /// @notice The signature claims to be issued at a block not mined before this transaction's.
    error SignatureFromFuture(uint64 issuedBlock);
    /// @notice The signature was issued at `issuedBlock`, before a later block changed the pair's grant
    /// or consent (a revocation, a withdrawal, another grant) or took a reading role from the
    /// grantee: it no longer speaks for the patient.
    error SignatureSuperseded(bytes32 record, address grantee, uint64 issuedBlock);

    /// @notice EIP-712 type of a patient's grant.
    function GRANT_TYPEHASH() external view returns (bytes32);

    /// @notice EIP-712 type of a patient's consent (`expiry` 0 withdraws).
    function CONSENT_TYPEHASH() external view returns (bytes32);

    /// @notice Relay the patient's signed {Grant}: `grantee` may read `record` until `expiry`, with the
    /// patient's consent until then. Anyone may call.
    /// @param record The record id.
    /// @param grantee The reader (a doctor or researcher).
    /// @param expiry Unix time at which the grant stops passing; must be in the future.
    /// @param nonce Any nonce of the patient's not used or cancelled yet (see {nonceUsed}).
    /// @param issuedBlock The latest mined block when the patient signed.
    /// @param deadline Unix time after which the signature is refused.
    /// @param signature The patient's EIP-712 signature.
    function grantAccessBySig(bytes32 record, address grantee, uint64 expiry, uint256 nonce, uint64 issuedBlock, uint256 deadline, bytes calldata signature) external;

    /// @notice Relay the patient's signed {Consent}: consent until `expiry` for `researcher` to read
    /// `record`, or withdraw it (`expiry` 0; runs while paused, and needs no patient role: withdrawing
    /// only narrows access). Anyone may call.
    /// @param record The record id.
    /// @param researcher A holder of the researcher role (any account when withdrawing).
    /// @param expiry Unix time at which the consent ends (in the future), or 0 to withdraw.
    /// @param nonce Any nonce of the patient's not used or cancelled yet (see {nonceUsed}).
    /// @param issuedBlock The latest mined block when the patient signed.
    /// @param deadline Unix time after which the signature is refused.
    /// @param signature The patient's EIP-712 signature.
    function setConsentBySig(bytes32 record, address researcher, uint64 expiry, uint256 nonce, uint64 issuedBlock, uint256 deadline, bytes calldata signature) external;

    /// @notice Cancel the caller's outstanding signature with `nonce`, so that nobody can relay it.
    /// Runs while paused.
    /// @param nonce The nonce the signature carries.
    function cancelSignature(uint256 nonce) external;

    /// @notice Whether `patient`'s `nonce` was used or cancelled.
    /// @param patient The signer.
    /// @param nonce The nonce.
    function nonceUsed(address patient, uint256 nonce) external view returns (bool);
}
