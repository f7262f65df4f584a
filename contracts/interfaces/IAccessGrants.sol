// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IAccessGrants
/// @notice Expiring grants, research consent, break-glass access and the access check and log.
interface IAccessGrants {
    /// @notice `grantedBy` (the owner or the patient) let `grantee` read `record` until `expiry`.
    event AccessGranted(bytes32 indexed record, address indexed grantee, address indexed grantedBy, uint64 expiry);
    /// @notice `revokedBy` ended `grantee`'s grant on `record` (and any consent attached to it).
    event AccessRevoked(bytes32 indexed record, address indexed grantee, address indexed revokedBy);
    /// @notice `patient` consented until `expiry` for `researcher` to read `record` (0: withdrew consent).
    event ConsentSet(bytes32 indexed record, address indexed researcher, address indexed patient, uint64 expiry);
    /// @notice Break-glass: `user` opened access to `patient`'s `record` until `expiry`, for the reason
    /// whose hash is `reasonHash`; `opening` counts this user's openings of this record (at most
    /// {MAX_EMERGENCY_OPENINGS}).
    event EmergencyAccessOpened(
        bytes32 indexed record,
        address indexed user,
        address indexed patient,
        bytes32 reasonHash,
        uint64 expiry,
        uint8 opening
    );
    /// @notice `closedBy` ended `user`'s break-glass access to `record`.
    event EmergencyAccessClosed(bytes32 indexed record, address indexed user, address indexed closedBy);
    /// @notice `reader` read version `version` of `record` at `timestamp`.
    event AccessLogged(bytes32 indexed record, address indexed reader, uint32 version, uint64 timestamp);

    /// @notice The grant's expiry is not after the current block's timestamp.
    error ExpiryNotInFuture(uint64 expiry);
    /// @notice The expiry does not fit the 40-bit times the contract stores.
    error ExpiryTooFar(uint64 expiry);
    /// @notice The zero address cannot be granted access.
    error InvalidGrantee();
    /// @notice `grantee` holds neither the doctor nor the researcher role, so a grant could not pass.
    error GranteeCannotRead(address grantee);
    /// @notice A batch grant named no grantee.
    error NoGrantees();
    /// @notice `grantee` has no grant on `record` to revoke (never granted, or revoked already; an
    /// expired grant, or one voided by the loss of a reading role, can still be revoked).
    error NoGrant(bytes32 record, address grantee);
    /// @notice `caller` is not the patient of `record`.
    error NotRecordPatient(bytes32 record, address caller);
    /// @notice Consent can only be given to a holder of the researcher role.
    error NotAResearcher(address account);
    /// @notice Break-glass access must last between 1 second and `max`.
    error EmergencyDurationOutOfRange(uint64 duration, uint64 max);
    /// @notice Break-glass access needs a reason hash.
    error EmptyEmergencyReason();
    /// @notice `user` has no open break-glass access to `record` (never opened, closed, expired, or voided
    /// by the loss of the emergency role).
    error NoEmergencyAccess(bytes32 record, address user);
    /// @notice `user` opened break-glass access to `record` {MAX_EMERGENCY_OPENINGS} times already;
    /// further access needs a grant.
    error EmergencyOpeningsExhausted(bytes32 record, address user);
    /// @notice The record's owner or patient closed `user`'s break-glass access to `record`; it may
    /// not be reopened before `until`.
    error EmergencyCooldown(bytes32 record, address user, uint64 until);
    /// @notice `user` may not read `record` now.
    error AccessDenied(bytes32 record, address user);

    /// @notice The longest break-glass access one call may open.
    function MAX_EMERGENCY_DURATION() external view returns (uint64);

    /// @notice How many times one user may open (or renew) break-glass access to one record.
    function MAX_EMERGENCY_OPENINGS() external view returns (uint8);

    /// @notice How long after the record's owner or patient closed a user's break-glass access the
    /// user may not reopen it.
    function EMERGENCY_COOLDOWN() external view returns (uint64);

    /// @notice Let `grantee` (a doctor or researcher) read `record` until `expiry`; a researcher also
    /// needs the patient's consent. Replaces any earlier grant's expiry and keeps its consent, which
    /// stays bounded by its own expiry. Record owner or patient; a grant by the patient carries the
    /// patient's consent until `expiry`.
    /// @param record The record id.
    /// @param grantee The reader: holds the doctor or researcher role.
    /// @param expiry Unix time at which the grant stops passing; must be in the future.
    function grantAccess(bytes32 record, address grantee, uint64 expiry) external;

    /// @notice {grantAccess} for several grantees at once, all until `expiry`.
    /// @param record The record id.
    /// @param grantees The readers (at least one; each a doctor or researcher).
    /// @param expiry Unix time at which the grants stop passing; must be in the future.
    function grantAccessBatch(bytes32 record, address[] calldata grantees, uint64 expiry) external;

    /// @notice End `grantee`'s grant on `record` at once, with any consent attached to it, and void
    /// every patient signature for the pair issued before now; open break-glass access is closed
    /// separately. Record owner or patient, holding its role or not (revoking only narrows access), or a
    /// consortium admin once the owner lost the data-owner role. Runs while paused.
    /// @param record The record id.
    /// @param grantee The reader whose grant ends.
    function revokeAccess(bytes32 record, address grantee) external;

    /// @notice Consent until `expiry` for `researcher` to read `record` (a grant is still needed; the
    /// access ends at the earlier of the two expiries), or withdraw consent with `expiry` 0, which also
    /// voids the patient's signatures for the pair issued before now. The record's patient only, holding
    /// the patient role to consent; withdrawing needs no role and runs while paused.
    /// @param record The record id.
    /// @param researcher A holder of the researcher role (any account when withdrawing).
    /// @param expiry Unix time at which the consent ends (in the future), or 0 to withdraw.
    function setConsent(bytes32 record, address researcher, uint64 expiry) external;

    /// @notice Break the glass: open access to `record` for the caller, an emergency-role holder, for
    /// `duration` seconds (at most {MAX_EMERGENCY_DURATION}). Logged with the patient as a topic. A
    /// renewal counts as an opening: at most {MAX_EMERGENCY_OPENINGS} per record and user, and none
    /// within {EMERGENCY_COOLDOWN} after the record's owner or patient closed the user's access.
    /// @param record The record id.
    /// @param reasonHash Hash of the written reason, kept off chain; must not be zero.
    /// @param duration Seconds the access lasts.
    /// @return expiry Unix time at which the access closes by itself.
    function openEmergencyAccess(bytes32 record, bytes32 reasonHash, uint64 duration) external returns (uint64 expiry);

    /// @notice Close `user`'s open break-glass access to `record`. The record's owner or patient, holding
    /// its role or not, or an admin once the owner lost its role (which starts {EMERGENCY_COOLDOWN}), or
    /// `user` itself. Runs while paused.
    /// @param record The record id.
    /// @param user The emergency-role holder whose access closes.
    function closeEmergencyAccess(bytes32 record, address user) external;

    /// @notice Record a read: reverts {AccessDenied} unless `checkAccess(caller, record)` or the caller
    /// is the live record's owner (holding the data-owner role) or its patient (holding the patient
    /// role) reading their own record back; otherwise emits {AccessLogged} so the record's access
    /// history, its owner's and patient's reads included, can be rebuilt from logs.
    /// @param record The record id.
    /// @return version The record version the caller is reading.
    function logAccess(bytes32 record) external returns (uint32 version);

    /// @notice Whether `user` may read `record` now: a live grant made to a doctor who still is one,
    /// or a live grant and live consent for a researcher, or open break-glass access for an
    /// emergency-role holder; the reading role held without a break since; a registered record that
    /// is not retired; and the contract not paused. For off-chain services.
    /// @param user The reader.
    /// @param record The record id.
    function checkAccess(address user, bytes32 record) external view returns (bool);

    /// @notice The (record, user) pair's grant expiry, consent expiry and break-glass expiry (zeros
    /// when none, or when the user lost a reading role since they were set). Expired values are
    /// returned as they are; `checkAccess` tells whether access passes now.
    /// @param record The record id.
    /// @param user The reader.
    function grantOf(bytes32 record, address user) external view returns (uint64 expiry, uint64 consentExpiry, uint64 emergencyExpiry);
}
