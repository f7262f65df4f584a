// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ConsortiumRoles} from "../access/ConsortiumRoles.sol";
import {Membership} from "../access/Membership.sol";
import {Cid} from "./Cid.sol";
import {RecordState, RecordStateLib} from "./RecordState.sol";

/// @title RecordRegistry
/// @notice Records: encrypted files on IPFS, bound to the data owner that registered them and to the
/// patient they describe. A record's id is the sha2-256 digest of its first CID, so it is known before
/// registration. The owner may rotate a record to a new CID (re-encryption): grants follow the record.
/// No CID digest is ever claimed twice, across records and across versions.
abstract contract RecordRegistry is ConsortiumRoles {
    /// @dev Keyed by digest: a record (keyed by its id, the first digest) or a rotation's claim.
    mapping(bytes32 digest => RecordState) internal _records;
    /// @dev The current digest of a rotated record (unset while the record is at version 1).
    mapping(bytes32 record => bytes32 digest) private _rotatedDigests;

    /// @notice `owner` registered `record` for `patient`; `cid` is its binary CID (version 1).
    event RecordRegistered(bytes32 indexed record, address indexed owner, address indexed patient, bytes cid);
    /// @notice `owner` moved `record` to `cid`, its new `version`; grants are unchanged.
    event RecordRotated(bytes32 indexed record, address indexed owner, uint32 version, bytes cid);
    /// @notice `owner` retired `record`: no access to it passes ever again.
    event RecordRetired(bytes32 indexed record, address indexed owner);

    /// @notice The CID's digest is already held by a record or a record version.
    error CidAlreadyClaimed(bytes32 digest);
    /// @notice No record has the id `record`.
    error UnknownRecord(bytes32 record);
    /// @notice `record` is retired.
    error RecordIsRetired(bytes32 record);
    /// @notice `caller` is not the data owner of `record`.
    error NotRecordOwner(bytes32 record, address caller);
    /// @notice `caller` is neither the data owner nor the patient of `record`.
    error NotOwnerOrPatient(bytes32 record, address caller);
    /// @notice `patient` does not hold the patient role.
    error PatientNotEnrolled(address patient);

    /// @notice Register the record stored on IPFS under `cid`, owned by the caller, about `patient`.
    /// Data owners only. CIDv0 and CIDv1 (raw or dag-pb), sha2-256.
    /// @param cid The binary CID of the encrypted record.
    /// @param patient The patient the record belongs to; must hold the patient role.
    /// @return record The record id: the CID's sha2-256 digest.
    function registerRecord(bytes calldata cid, address patient) external whenNotPaused returns (bytes32 record) {
        Membership caller = _memberships[msg.sender];
        _requireRoleBit(caller, _DATA_OWNER_BIT, DATA_OWNER_ROLE, msg.sender);
        if (!_memberships[patient].holdsAny(_PATIENT_BIT)) revert PatientNotEnrolled(patient);
        uint8 format;
        (format, record) = Cid.parse(cid);
        if (_records[record].isClaimed()) revert CidAlreadyClaimed(record);
        _records[record] = RecordStateLib.pack(patient, caller.ownerId(), 1, format, 0);
        emit RecordRegistered(record, msg.sender, patient, cid);
    }

    /// @notice Move `record` to a new CID (e.g. after re-encryption); its version goes up by one and
    /// every grant stays. Record owner only; the new CID must never have been claimed.
    /// @param record The record id.
    /// @param cid The binary CID of the record's new version.
    /// @return version The record's new version.
    function rotateRecord(bytes32 record, bytes calldata cid) external whenNotPaused returns (uint32 version) {
        RecordState r = _liveRecord(record);
        _requireOwner(record, r);
        (uint8 format, bytes32 digest) = Cid.parse(cid);
        if (_records[digest].isClaimed()) revert CidAlreadyClaimed(digest);
        version = r.version() + 1;
        _records[digest] = RecordStateLib.pack(address(0), 0, 0, 0, RecordStateLib.ALIAS);
        _records[record] = r.rotated(version, format);
        _rotatedDigests[record] = digest;
        emit RecordRotated(record, msg.sender, version, cid);
    }

    /// @notice Retire `record` for good: `checkAccess` is false for it from now on and it can no
    /// longer be changed. Record owner only.
    /// @param record The record id.
    function retireRecord(bytes32 record) external whenNotPaused {
        RecordState r = _liveRecord(record);
        _requireOwner(record, r);
        _records[record] = r.retired();
        emit RecordRetired(record, msg.sender);
    }

    /// @notice The record's data owner, patient, current version and whether it is retired.
    /// Reverts {UnknownRecord} for an unknown id.
    /// @param record The record id.
    function recordOf(bytes32 record)
        external
        view
        returns (address owner, address patient, uint32 version, bool retired)
    {
        RecordState r = _knownRecord(record);
        return (_ownerAccounts[r.ownerId()], r.patient(), r.version(), r.isRetired());
    }

    /// @notice The record's data owner (the seed's view). Reverts {UnknownRecord} for an unknown id.
    /// @param record The record id.
    function ownerOf(bytes32 record) external view returns (address) {
        return _ownerAccounts[_knownRecord(record).ownerId()];
    }

    /// @notice The binary CID of the record's current version, and that version.
    /// Reverts {UnknownRecord} for an unknown id.
    /// @param record The record id.
    function currentCid(bytes32 record) external view returns (bytes memory cid, uint32 version) {
        RecordState r = _knownRecord(record);
        bytes32 digest = r.version() == 1 ? record : _rotatedDigests[record];
        return (Cid.encode(r.format(), digest), r.version());
    }

    /// @notice The record id a CID registers as (its sha2-256 digest); reverts {Cid.InvalidCid} for
    /// anything but a CIDv0 or a raw/dag-pb CIDv1 with a sha2-256 digest.
    /// @param cid A binary CID.
    function recordIdOf(bytes calldata cid) external pure returns (bytes32 record) {
        (, record) = Cid.parse(cid);
    }

    function _knownRecord(bytes32 record) internal view returns (RecordState r) {
        r = _records[record];
        if (r.ownerId() == 0) revert UnknownRecord(record);
    }

    function _liveRecord(bytes32 record) internal view returns (RecordState r) {
        r = _knownRecord(record);
        if (r.isRetired()) revert RecordIsRetired(record);
    }

    /// @dev The caller must be the record's owner and still hold the data-owner role.
    function _requireOwner(bytes32 record, RecordState r) internal view {
        Membership caller = _memberships[msg.sender];
        if (caller.ownerId() != r.ownerId()) revert NotRecordOwner(record, msg.sender);
        _requireRoleBit(caller, _DATA_OWNER_BIT, DATA_OWNER_ROLE, msg.sender);
    }

    /// @dev The caller must be the record's owner holding the data-owner role, or its patient holding
    /// the patient role. Returns whether the caller acts as the patient.
    function _requireOwnerOrPatient(bytes32 record, RecordState r) internal view returns (bool isPatient) {
        Membership caller = _memberships[msg.sender];
        if (caller.ownerId() == r.ownerId()) {
            _requireRoleBit(caller, _DATA_OWNER_BIT, DATA_OWNER_ROLE, msg.sender);
            return false;
        }
        if (msg.sender != r.patient()) revert NotOwnerOrPatient(record, msg.sender);
        _requireRoleBit(caller, _PATIENT_BIT, PATIENT_ROLE, msg.sender);
        return true;
    }
}
