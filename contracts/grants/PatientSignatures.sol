// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {RecordState} from "../records/RecordState.sol";
import {GrantState} from "./GrantState.sol";
import {AccessGrants} from "./AccessGrants.sol";
import {IPatientSignatures} from "../interfaces/IPatientSignatures.sol";

/// @title PatientSignatures
/// @notice A patient's grants and consents as EIP-712 signatures that anyone may relay. Each signature
/// carries a deadline, an unordered nonce of the patient's choosing (signatures for different records
/// or grantees never wait for each other; the patient may cancel any outstanding one) and the block
/// it was issued at (the latest mined block the patient saw): it is refused once anything in a later
/// block changed the pair's grant or consent (a revocation, a withdrawal, another grant) or the
/// grantee lost a reading role, so a held-back signature cannot undo them. The domain binds chain id and contract. The patient may be an EOA or
/// an ERC-1271 contract wallet.
abstract contract PatientSignatures is AccessGrants, EIP712, IPatientSignatures {
    /// @inheritdoc IPatientSignatures
    bytes32 public constant GRANT_TYPEHASH = keccak256(
        "Grant(bytes32 record,address grantee,uint64 expiry,uint256 nonce,uint64 issuedBlock,uint256 deadline)"
    );
    /// @inheritdoc IPatientSignatures
    bytes32 public constant CONSENT_TYPEHASH = keccak256(
        "Consent(bytes32 record,address researcher,uint64 expiry,uint256 nonce,uint64 issuedBlock,uint256 deadline)"
    );

    /// @dev Used or cancelled nonces: bit `nonce % 256` of word `nonce / 256`.
    mapping(address patient => mapping(uint256 word => uint256 bits)) private _usedNonces;

    /// @inheritdoc IPatientSignatures
    function grantAccessBySig(
        bytes32 record,
        address grantee,
        uint64 expiry,
        uint256 nonce,
        uint64 issuedBlock,
        uint256 deadline,
        bytes calldata signature
    ) external whenNotPaused {
        bytes32 structHash =
            keccak256(abi.encode(GRANT_TYPEHASH, record, grantee, expiry, nonce, issuedBlock, deadline));
        address patient = _usePatientSignature(record, grantee, structHash, nonce, issuedBlock, deadline, signature);
        _requireRoleBit(_memberships[patient], _PATIENT_BIT, PATIENT_ROLE, patient);
        _grant(_grants[record], record, grantee, _checkExpiry(expiry), true, patient);
    }

    /// @inheritdoc IPatientSignatures
    function setConsentBySig(
        bytes32 record,
        address researcher,
        uint64 expiry,
        uint256 nonce,
        uint64 issuedBlock,
        uint256 deadline,
        bytes calldata signature
    ) external {
        if (expiry != 0) _requireNotPaused();
        bytes32 structHash =
            keccak256(abi.encode(CONSENT_TYPEHASH, record, researcher, expiry, nonce, issuedBlock, deadline));
        address patient =
            _usePatientSignature(record, researcher, structHash, nonce, issuedBlock, deadline, signature);
        if (expiry != 0) _requireRoleBit(_memberships[patient], _PATIENT_BIT, PATIENT_ROLE, patient);
        _setConsent(record, researcher, expiry, patient);
    }

    /// @inheritdoc IPatientSignatures
    function cancelSignature(uint256 nonce) external {
        _useNonce(msg.sender, nonce);
        emit SignatureCancelled(msg.sender, nonce);
    }

    /// @inheritdoc IPatientSignatures
    function nonceUsed(address patient, uint256 nonce) external view returns (bool) {
        return _usedNonces[patient][nonce >> 8] & (1 << (nonce & 0xff)) != 0;
    }

    /// @dev Checks the deadline and the record, consumes the nonce (a replay fails
    /// with {NonceAlreadyUsed}), checks the issue block against the pair's history and verifies the
    /// signature. Returns the patient.
    function _usePatientSignature(
        bytes32 record,
        address grantee,
        bytes32 structHash,
        uint256 nonce,
        uint64 issuedBlock,
        uint256 deadline,
        bytes calldata signature
    ) private returns (address patient) {
        if (block.timestamp > deadline) revert SignatureExpired(deadline);
        RecordState r = _liveRecord(record);
        patient = r.patient();
        _useNonce(patient, nonce);
        if (issuedBlock >= block.number) revert SignatureFromFuture(issuedBlock);
        GrantState g = _grants[record][grantee];
        if (
            issuedBlock < g.grantedAt() || issuedBlock < g.consentAt()
                || issuedBlock < _memberships[grantee].lostAt()
        ) revert SignatureSuperseded(record, grantee, issuedBlock);
        if (!SignatureChecker.isValidSignatureNow(patient, _hashTypedDataV4(structHash), signature)) {
            revert InvalidPatientSignature(record, patient);
        }
    }

    function _useNonce(address patient, uint256 nonce) private {
        uint256 bit = 1 << (nonce & 0xff);
        uint256 bits = _usedNonces[patient][nonce >> 8];
        if (bits & bit != 0) revert NonceAlreadyUsed(patient, nonce);
        _usedNonces[patient][nonce >> 8] = bits | bit;
    }
}
