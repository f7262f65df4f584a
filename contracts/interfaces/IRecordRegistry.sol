// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IRecordRegistry
/// @notice Records by CID: their owner, patient, versions and retirement.
interface IRecordRegistry {
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
    function registerRecord(bytes calldata cid, address patient) external returns (bytes32 record);

    /// @notice Move `record` to a new CID (e.g. after re-encryption); its version goes up by one and
    /// every grant stays. Record owner only; the new CID must never have been claimed by the owner.
    /// Runs while paused (re-encrypting narrows access: readers cut off meanwhile get no new key).
    /// @param record The record id.
    /// @param cid The binary CID of the record's new version.
    /// @return version The record's new version.
    function rotateRecord(bytes32 record, bytes calldata cid) external returns (uint32 version);

    /// @notice Retire `record` for good: `checkAccess` is false for it from now on and it can no
    /// longer be changed. Record owner (whether or not it still holds the data-owner role: retiring
    /// only narrows access), or a consortium admin once the owner lost that role. Runs while paused.
    /// @param record The record id.
    function retireRecord(bytes32 record) external;

    /// @notice The record's data owner, patient, current version and whether it is retired.
    /// Reverts {UnknownRecord} for an unknown id.
    /// @param record The record id.
    function recordOf(bytes32 record) external view returns (address owner, address patient, uint32 version, bool retired);

    /// @notice The record's data owner. Reverts {UnknownRecord} for an unknown id.
    /// @param record The record id.
    function ownerOf(bytes32 record) external view returns (address);

    /// @notice The binary CID of the record's current version, and that version.
    /// Reverts {UnknownRecord} for an unknown id.
    /// @param record The record id.
    function currentCid(bytes32 record) external view returns (bytes memory cid, uint32 version);

    /// @notice The record `cid` belongs to under `owner`: the record a rotation moved to it, else the
    /// id it registers (or registered) as. Reverts {Cid.InvalidCid} for anything but a CIDv0 or a
    /// raw/dag-pb CIDv1 with a sha2-256 digest.
    /// @param owner The data owner's account.
    /// @param cid A binary CID.
    function recordIdOf(address owner, bytes calldata cid) external view returns (bytes32 record);
}
