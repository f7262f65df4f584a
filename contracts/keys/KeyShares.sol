// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {RecordState} from "../records/RecordState.sol";
import {AccessGrants} from "../grants/AccessGrants.sol";
import {IKeyShares} from "../interfaces/IKeyShares.sol";

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
abstract contract KeyShares is AccessGrants, IKeyShares {
    /// @inheritdoc IKeyShares
    uint256 public constant MAX_WRAPPED_KEY_SIZE = 1280;

    /// @inheritdoc IKeyShares
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
