// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title MedicalAccess
/// @notice Binds IPFS records to their data owners and records who may read them.
contract MedicalAccess {
    /// @notice The record's owner, keyed by the record id (keccak256 of its CID bytes).
    mapping(bytes32 record => address owner) public ownerOf;
    mapping(bytes32 record => mapping(address user => bool)) private _access;

    /// @notice `owner` registered the record whose CID is `cid`.
    event RecordRegistered(bytes32 indexed record, address indexed owner, bytes cid);
    /// @notice `owner` let `grantee` read `record`.
    event AccessGranted(bytes32 indexed record, address indexed grantee, address indexed owner);

    /// @notice The record is already bound to an owner.
    error RecordAlreadyRegistered(bytes32 record);
    /// @notice The CID is empty.
    error EmptyCid();
    /// @notice `caller` does not own `record`.
    error NotRecordOwner(bytes32 record, address caller);

    /// @notice Bind the record identified by `cid` to the caller.
    /// @param cid The binary CID of the encrypted record on IPFS.
    /// @return record The record id, keccak256(cid).
    function registerRecord(bytes calldata cid) external returns (bytes32 record) {
        if (cid.length == 0) revert EmptyCid();
        record = keccak256(cid);
        if (ownerOf[record] != address(0)) revert RecordAlreadyRegistered(record);
        ownerOf[record] = msg.sender;
        emit RecordRegistered(record, msg.sender, cid);
    }

    /// @notice Let `grantee` read `record`. Only the record's owner may call it.
    function grantAccess(bytes32 record, address grantee) external {
        if (ownerOf[record] != msg.sender) revert NotRecordOwner(record, msg.sender);
        _access[record][grantee] = true;
        emit AccessGranted(record, grantee, msg.sender);
    }

    /// @notice Whether `user` may read `record`; a view for off-chain services.
    function checkAccess(address user, bytes32 record) external view returns (bool) {
        return _access[record][user];
    }
}
