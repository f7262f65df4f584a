// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ConsortiumRoles} from "../access/ConsortiumRoles.sol";
import {Membership} from "../access/Membership.sol";
import {Cid} from "./Cid.sol";
import {RecordState, RecordStateLib} from "./RecordState.sol";

/// @title RecordRegistry
/// @notice Records: encrypted files on IPFS, bound to the data owner that registered them and to the
/// patient they describe. A record's id is `keccak256(owner address, sha2-256 digest of its first
/// CID)`, so the owner knows it before registration and nobody else can claim it: a rival who sees a
/// CID in the mempool or on IPFS can only register it under its own ids. The owner may rotate a record
/// to a new CID (re-encryption): grants follow the record. No CID digest is claimed twice within one
/// owner's records and versions.
abstract contract RecordRegistry is ConsortiumRoles {
    /// @dev Keyed by (owner, digest) key: a record (keyed by its id, its first key) or a rotation's claim.
    mapping(bytes32 key => RecordState) internal _records;
    /// @dev The CID digest of each record's current version (the id does not reveal it).
    mapping(bytes32 record => bytes32 digest) private _digests;
    /// @dev The record a rotation's (owner, digest) key belongs to.
    mapping(bytes32 key => bytes32 record) private _versionRecords;

    /// @notice `owner` registered `record` for `patient`; `cid` is its binary CID (version 1).
    event RecordRegistered(bytes32 indexed record, address indexed owner, address indexed patient, bytes cid);
    /// @notice `owner` moved `record` to `cid`, its new `version`; grants are unchanged.
    event RecordRotated(bytes32 indexed record, address indexed owner, uint32 version, bytes cid);
    /// @notice `owner` retired `record`: no access to it passes ever again.
    event RecordRetired(bytes32 indexed record, address indexed owner);

    /// @notice The CID's digest is already held by one of the caller's records or record versions.
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
    /// @return record The record id: `keccak256(abi.encodePacked(caller, digest))`.
    function registerRecord(bytes calldata cid, address patient) external whenNotPaused returns (bytes32 record) {
        Membership caller = _memberships[msg.sender];
        _requireRoleBit(caller, _DATA_OWNER_BIT, DATA_OWNER_ROLE, msg.sender);
        if (!_memberships[patient].holdsAny(_PATIENT_BIT)) revert PatientNotEnrolled(patient);
        (uint8 format, bytes32 digest) = Cid.parse(cid);
        record = _keyOf(msg.sender, digest);
        if (_records[record].isClaimed()) revert CidAlreadyClaimed(digest);
        _records[record] = RecordStateLib.pack(patient, caller.ownerId(), 1, format, 0);
        _digests[record] = digest;
        emit RecordRegistered(record, msg.sender, patient, cid);
    }

    /// @notice Move `record` to a new CID (e.g. after re-encryption); its version goes up by one and
    /// every grant stays. Record owner only; the new CID must never have been claimed by the owner.
    /// Runs while paused (re-encrypting narrows access: readers cut off meanwhile get no new key).
    /// @param record The record id.
    /// @param cid The binary CID of the record's new version.
    /// @return version The record's new version.
    function rotateRecord(bytes32 record, bytes calldata cid) external returns (uint32 version) {
        RecordState r = _liveRecord(record);
        _requireOwner(record, r);
        (uint8 format, bytes32 digest) = Cid.parse(cid);
        bytes32 key = _keyOf(msg.sender, digest);
        if (_records[key].isClaimed()) revert CidAlreadyClaimed(digest);
        version = r.version() + 1;
        _records[key] = RecordStateLib.pack(address(0), 0, 0, 0, RecordStateLib.ALIAS);
        _versionRecords[key] = record;
        _records[record] = r.rotated(version, format);
        _digests[record] = digest;
        emit RecordRotated(record, msg.sender, version, cid);
    }

    /// @notice Retire `record` for good: `checkAccess` is false for it from now on and it can no
    /// longer be changed. Record owner (whether or not it still holds the data-owner role: retiring
    /// only narrows access), or a consortium admin once the owner lost that role. Runs while paused.
    /// @param record The record id.
    function retireRecord(bytes32 record) external {
        RecordState r = _liveRecord(record);
        _requireNarrower(record, r, false);
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

    /// @notice The record's data owner. Reverts {UnknownRecord} for an unknown id.
    /// @param record The record id.
    function ownerOf(bytes32 record) external view returns (address) {
        return _ownerAccounts[_knownRecord(record).ownerId()];
    }

    /// @notice The binary CID of the record's current version, and that version.
    /// Reverts {UnknownRecord} for an unknown id.
    /// @param record The record id.
    function currentCid(bytes32 record) external view returns (bytes memory cid, uint32 version) {
        RecordState r = _knownRecord(record);
        return (Cid.encode(r.format(), _digests[record]), r.version());
    }

    /// @notice The record `cid` belongs to under `owner`: the record a rotation moved to it, else the
    /// id it registers (or registered) as. Reverts {Cid.InvalidCid} for anything but a CIDv0 or a
    /// raw/dag-pb CIDv1 with a sha2-256 digest.
    /// @param owner The data owner's account.
    /// @param cid A binary CID.
    function recordIdOf(address owner, bytes calldata cid) external view returns (bytes32 record) {
        (, bytes32 digest) = Cid.parse(cid);
        bytes32 key = _keyOf(owner, digest);
        record = _versionRecords[key];
        if (record == 0) record = key;
    }

    /// @dev The id of `owner`'s claim on `digest`.
    function _keyOf(address owner, bytes32 digest) private pure returns (bytes32) {
        return keccak256(abi.encodePacked(owner, digest));
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

    /// @dev For what only narrows access (revoke, withdraw, retire, close): the caller must be the
    /// record's owner or (if `patientMay`) its patient, holding its role or not, or a consortium admin
    /// once the owner lost the data-owner role (an evicted hospital's records stay manageable).
    /// Returns whether the caller acts as the patient.
    function _requireNarrower(bytes32 record, RecordState r, bool patientMay) internal view returns (bool isPatient) {
        Membership caller = _memberships[msg.sender];
        if (caller.ownerId() == r.ownerId()) return false;
        if (patientMay && msg.sender == r.patient()) return true;
        if (!caller.holdsAny(_ADMIN_BIT) || _memberships[_ownerAccounts[r.ownerId()]].holdsAny(_DATA_OWNER_BIT)) {
            if (patientMay) revert NotOwnerOrPatient(record, msg.sender);
            revert NotRecordOwner(record, msg.sender);
        }
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
