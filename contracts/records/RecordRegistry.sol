// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ConsortiumRoles} from "../access/ConsortiumRoles.sol";
import {Membership} from "../access/Membership.sol";
import {Cid} from "./Cid.sol";
import {RecordState, RecordStateLib} from "./RecordState.sol";
import {IRecordRegistry} from "../interfaces/IRecordRegistry.sol";

/// @title RecordRegistry
/// @notice Records: encrypted files on IPFS, bound to the data owner that registered them and to the
/// patient they describe. A record's id is `keccak256(owner address, sha2-256 digest of its first
/// CID)`, so the owner knows it before registration and nobody else can claim it: a rival who sees a
/// CID in the mempool or on IPFS can only register it under its own ids. The owner may rotate a record
/// to a new CID (re-encryption): grants follow the record. No CID digest is claimed twice within one
/// owner's records and versions.
abstract contract RecordRegistry is ConsortiumRoles, IRecordRegistry {
    /// @dev Keyed by (owner, digest) key: a record (keyed by its id, its first key) or a rotation's claim.
    mapping(bytes32 key => RecordState) internal _records;
    /// @dev The CID digest of each record's current version (the id does not reveal it).
    mapping(bytes32 record => bytes32 digest) private _digests;
    /// @dev The record a rotation's (owner, digest) key belongs to.
    mapping(bytes32 key => bytes32 record) private _versionRecords;

    /// @inheritdoc IRecordRegistry
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

    /// @inheritdoc IRecordRegistry
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

    /// @inheritdoc IRecordRegistry
    function retireRecord(bytes32 record) external {
        RecordState r = _liveRecord(record);
        _requireNarrower(record, r, false);
        _records[record] = r.retired();
        emit RecordRetired(record, msg.sender);
    }

    /// @inheritdoc IRecordRegistry
    function recordOf(bytes32 record)
        external
        view
        returns (address owner, address patient, uint32 version, bool retired)
    {
        RecordState r = _knownRecord(record);
        return (_ownerAccounts[r.ownerId()], r.patient(), r.version(), r.isRetired());
    }

    /// @inheritdoc IRecordRegistry
    function ownerOf(bytes32 record) external view returns (address) {
        return _ownerAccounts[_knownRecord(record).ownerId()];
    }

    /// @inheritdoc IRecordRegistry
    function currentCid(bytes32 record) external view returns (bytes memory cid, uint32 version) {
        RecordState r = _knownRecord(record);
        return (Cid.encode(r.format(), _digests[record]), r.version());
    }

    /// @inheritdoc IRecordRegistry
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
