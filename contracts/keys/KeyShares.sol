// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {RecordState} from "../records/RecordState.sol";
import {AccessGrants} from "../grants/AccessGrants.sol";

/// @title KeyShares
/// @notice Where a reader finds a record's data key: the owner or the patient publishes the key of a
/// record version wrapped (sealed) for each reader's registered encryption key, as an event the reader
/// filters by (record, reader, version). A wrapped key opens only with the reader's private key, so
/// publishing it reveals nothing; it is still only shared with those the policy lets read (the
/// record's owner and patient, and readers with access now), so that the key a reader holds always
/// traces back to a grant in the audit trail. Nobody publishes into the owner's slot but the owner,
/// nor into the patient's slot but the owner and the patient, so neither can poison the key the other
/// party rotates and grants from; readers' clients still check every share against the key
/// commitment in the ciphertext's header.
abstract contract KeyShares is AccessGrants {
    /// @notice The largest wrapped key accepted (the off-chain format's are 95 bytes for an X25519
    /// reader and 1,183 for a hybrid post-quantum MLKEM768-X25519 reader).
    uint256 public constant MAX_WRAPPED_KEY_SIZE = 1280;

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
    function shareDataKeys(bytes32 record, uint32 version, address[] calldata readers, bytes[] calldata wrappedKeys)
        external
    {
        RecordState r = _liveRecord(record);
        bool byPatient = _requireOwnerOrPatient(record, r);
        if (version != r.version()) revert StaleRecordVersion(record, version, r.version());
        if (readers.length == 0 || readers.length != wrappedKeys.length) {
            revert KeySharesMismatch(readers.length, wrappedKeys.length);
        }
        address patient = r.patient();
        // The owner's account is a cold slot: read only when the patient shares.
        address owner = byPatient ? _ownerAccounts[r.ownerId()] : msg.sender;
        for (uint256 i = 0; i < readers.length; ++i) {
            address reader = readers[i];
            uint256 size = wrappedKeys[i].length;
            if (size == 0 || size > MAX_WRAPPED_KEY_SIZE) revert InvalidWrappedKey(reader);
            if (reader == owner) {
                if (byPatient) revert MayNotShareWith(record, reader);
            } else if (reader != patient && !checkAccess(reader, record)) {
                revert NotAReader(record, reader);
            }
            emit DataKeyShared(record, reader, version, msg.sender, wrappedKeys[i]);
        }
    }
}
