// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IKeyShares
/// @notice Data keys wrapped for a record's readers, as events.
interface IKeyShares {
    /// @notice `sharedBy` published `wrappedKey`: the data key of `version` of `record`, sealed for
    /// `reader`'s encryption key.
    event DataKeyShared(
        bytes32 indexed record, address indexed reader, uint32 indexed version, address sharedBy, bytes wrappedKey
    );

    /// @notice Keys can only be shared for the record's current version `current`.
    error StaleRecordVersion(bytes32 record, uint32 version, uint32 current);
    /// @notice `readers` and `wrappedKeys` differ in length, or are empty.
    error KeySharesMismatch(uint256 readers, uint256 wrappedKeys);
    /// @notice The wrapped key for `reader` is empty or longer than {MAX_WRAPPED_KEY_SIZE}.
    error InvalidWrappedKey(address reader);
    /// @notice `reader` is neither the record's owner or patient nor someone with access to it now.
    error NotAReader(bytes32 record, address reader);
    /// @notice The caller may not publish keys for `reader` (the owner's slot is the owner's own; the
    /// patient's slot is the owner's and the patient's).
    error MayNotShareWith(bytes32 record, address reader);

    /// @notice The largest wrapped key accepted (the off-chain format's are 95 bytes for an X25519
    /// reader and 1,183 for a hybrid post-quantum MLKEM768-X25519 reader).
    function MAX_WRAPPED_KEY_SIZE() external view returns (uint256);

    /// @notice Publish the data key of the current version of `record`, wrapped for each reader.
    /// Record owner or patient. Each reader must be the record's owner or patient or pass
    /// `checkAccess` now (grant first, or grant and share in one `multicall`); only the owner shares
    /// with the owner, and only the owner or patient with the patient. Runs while paused, when only
    /// the owner and the patient pass (after a rotation, they keep the new key).
    /// @param record The record id.
    /// @param version The record's current version (guards against sharing a key that a concurrent
    /// rotation has just made stale).
    /// @param readers The readers, in the order of `wrappedKeys`.
    /// @param wrappedKeys Each reader's wrapped data key; 1 to {MAX_WRAPPED_KEY_SIZE} bytes.
    function shareDataKeys(bytes32 record, uint32 version, address[] calldata readers, bytes[] calldata wrappedKeys) external;
}
