// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Membership} from "../access/Membership.sol";
import {RecordRegistry} from "../records/RecordRegistry.sol";
import {RecordState} from "../records/RecordState.sol";
import {GrantState} from "./GrantState.sol";

/// @title AccessGrants
/// @notice Who may read which record: expiring grants by the record's owner or patient, patient
/// consent for researchers, break-glass access, and an on-chain log of reads.
/// @dev `checkAccess` reads four slots: the pause flag, the record, the (record, user) grant and the
/// user's membership. Writing a grant reads no membership of the grantee (each part of a grant is
/// stamped with its block and checked against the grantee's last reading-role loss when read), so a
/// grant to an account that holds no reading role is dormant: it passes only once the account holds
/// one, and only if it was made after the account's last loss of one.
abstract contract AccessGrants is RecordRegistry {
    /// @notice The longest break-glass access one call may open.
    uint64 public constant MAX_EMERGENCY_DURATION = 12 hours;

    mapping(bytes32 record => mapping(address user => GrantState)) internal _grants;

    /// @notice `grantedBy` (the owner or the patient) let `grantee` read `record` until `expiry`.
    event AccessGranted(bytes32 indexed record, address indexed grantee, address indexed grantedBy, uint64 expiry);
    /// @notice `revokedBy` ended `grantee`'s grant on `record` (and any consent attached to it).
    event AccessRevoked(bytes32 indexed record, address indexed grantee, address indexed revokedBy);
    /// @notice `patient` gave (`given`) or withdrew consent for `researcher` to read `record`.
    event ConsentSet(bytes32 indexed record, address indexed researcher, address indexed patient, bool given);
    /// @notice Break-glass: `user` opened access to `patient`'s `record` until `expiry`, for the reason
    /// whose hash is `reasonHash`.
    event EmergencyAccessOpened(
        bytes32 indexed record, address indexed user, address indexed patient, bytes32 reasonHash, uint64 expiry
    );
    /// @notice `closedBy` ended `user`'s break-glass access to `record`.
    event EmergencyAccessClosed(bytes32 indexed record, address indexed user, address indexed closedBy);
    /// @notice `reader` read version `version` of `record` at `timestamp`.
    event AccessLogged(bytes32 indexed record, address indexed reader, uint32 version, uint64 timestamp);

    /// @notice The grant's expiry is not after the current block's timestamp.
    error ExpiryNotInFuture(uint64 expiry);
    /// @notice The zero address cannot be granted access.
    error InvalidGrantee();
    /// @notice A batch grant named no grantee.
    error NoGrantees();
    /// @notice `grantee` has no grant on `record` to revoke (never granted, revoked, or voided by the
    /// loss of a reading role; an expired grant can still be revoked).
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
    /// @notice `user` may not read `record` now.
    error AccessDenied(bytes32 record, address user);

    /// @notice Let `grantee` (a doctor or researcher) read `record` until `expiry`; a researcher also
    /// needs the patient's consent. Replaces any earlier grant's expiry and keeps its consent.
    /// Record owner or patient; a grant by the patient carries the patient's consent.
    /// @param record The record id.
    /// @param grantee The reader.
    /// @param expiry Unix time at which the grant stops passing; must be in the future.
    function grantAccess(bytes32 record, address grantee, uint64 expiry) external whenNotPaused {
        bool byPatient = _requireOwnerOrPatient(record, _liveRecord(record));
        _requireFuture(expiry);
        _grant(_grants[record], record, grantee, expiry, byPatient, msg.sender);
    }

    /// @notice {grantAccess} for several grantees at once, all until `expiry`.
    /// @param record The record id.
    /// @param grantees The readers (at least one; each a doctor or researcher).
    /// @param expiry Unix time at which the grants stop passing; must be in the future.
    function grantAccessBatch(bytes32 record, address[] calldata grantees, uint64 expiry) external whenNotPaused {
        bool byPatient = _requireOwnerOrPatient(record, _liveRecord(record));
        _requireFuture(expiry);
        if (grantees.length == 0) revert NoGrantees();
        mapping(address => GrantState) storage grants = _grants[record];
        for (uint256 i; i < grantees.length;) {
            _grant(grants, record, grantees[i], expiry, byPatient, msg.sender);
            unchecked {
                ++i;
            }
        }
    }

    /// @notice End `grantee`'s grant on `record` at once, with any consent attached to it; open
    /// break-glass access is closed separately. Record owner or patient.
    /// @param record The record id.
    /// @param grantee The reader whose grant ends.
    function revokeAccess(bytes32 record, address grantee) external whenNotPaused {
        _requireOwnerOrPatient(record, _liveRecord(record));
        GrantState g = _grants[record][grantee];
        if (g.expiry() == 0 || g.grantedAt() <= _memberships[grantee].lostAt()) revert NoGrant(record, grantee);
        _grants[record][grantee] = g.withoutGrant();
        emit AccessRevoked(record, grantee, msg.sender);
    }

    /// @notice Give or withdraw the caller's consent for `researcher` to read `record` (a grant is
    /// still needed). The record's patient only.
    /// @param record The record id.
    /// @param researcher A holder of the researcher role (any account when withdrawing).
    /// @param given True to consent, false to withdraw.
    function setConsent(bytes32 record, address researcher, bool given) external whenNotPaused {
        RecordState r = _liveRecord(record);
        if (msg.sender != r.patient()) revert NotRecordPatient(record, msg.sender);
        _requireRoleBit(_memberships[msg.sender], _PATIENT_BIT, PATIENT_ROLE, msg.sender);
        _setConsent(record, researcher, given, msg.sender);
    }

    /// @notice Break the glass: open access to `record` for the caller, an emergency-role holder, for
    /// `duration` seconds (at most {MAX_EMERGENCY_DURATION}). Logged with the patient as a topic.
    /// @param record The record id.
    /// @param reasonHash Hash of the written reason, kept off chain; must not be zero.
    /// @param duration Seconds the access lasts.
    /// @return expiry Unix time at which the access closes by itself.
    function openEmergencyAccess(bytes32 record, bytes32 reasonHash, uint64 duration)
        external
        whenNotPaused
        returns (uint64 expiry)
    {
        RecordState r = _liveRecord(record);
        Membership m = _memberships[msg.sender];
        _requireRoleBit(m, _EMERGENCY_BIT, EMERGENCY_ROLE, msg.sender);
        if (reasonHash == 0) revert EmptyEmergencyReason();
        if (duration == 0 || duration > MAX_EMERGENCY_DURATION) {
            revert EmergencyDurationOutOfRange(duration, MAX_EMERGENCY_DURATION);
        }
        expiry = uint64(block.timestamp) + duration;
        _grants[record][msg.sender] = _grants[record][msg.sender].withEmergency(expiry);
        emit EmergencyAccessOpened(record, msg.sender, r.patient(), reasonHash, expiry);
    }

    /// @notice Close `user`'s open break-glass access to `record`. The record's owner or patient, or
    /// `user` itself.
    /// @param record The record id.
    /// @param user The emergency-role holder whose access closes.
    function closeEmergencyAccess(bytes32 record, address user) external whenNotPaused {
        RecordState r = _liveRecord(record);
        if (msg.sender != user) _requireOwnerOrPatient(record, r);
        GrantState g = _grants[record][user];
        if (g.emergencyExpiry() <= block.timestamp || g.emergencyAt() <= _memberships[user].lostAt()) {
            revert NoEmergencyAccess(record, user);
        }
        _grants[record][user] = g.withEmergency(0);
        emit EmergencyAccessClosed(record, user, msg.sender);
    }

    /// @notice Record a read: reverts {AccessDenied} unless `checkAccess(caller, record)`, otherwise
    /// emits {AccessLogged} so the record's access history can be rebuilt from logs.
    /// @param record The record id.
    /// @return version The record version the caller is reading.
    function logAccess(bytes32 record) external whenNotPaused returns (uint32 version) {
        if (!checkAccess(msg.sender, record)) revert AccessDenied(record, msg.sender);
        version = _records[record].version();
        emit AccessLogged(record, msg.sender, version, uint64(block.timestamp));
    }

    /// @notice Whether `user` may read `record` now: a live grant (a doctor; a researcher with the
    /// patient's consent) or open break-glass access (an emergency-role holder), the reading role
    /// held without a break since the grant, a registered record that is not retired, and the
    /// contract not paused. For off-chain services.
    /// @param user The reader.
    /// @param record The record id.
    function checkAccess(address user, bytes32 record) public view returns (bool) {
        if (paused()) return false;
        RecordState r = _records[record];
        if (r.ownerId() == 0 || r.isRetired()) return false;
        GrantState g = _grants[record][user];
        Membership m = _memberships[user];
        uint40 lostAt = m.lostAt();
        if (g.expiry() > block.timestamp && g.grantedAt() > lostAt) {
            if (m.holdsAny(_DOCTOR_BIT)) return true;
            if (g.consentAt() > lostAt && m.holdsAny(_RESEARCHER_BIT)) return true;
        }
        return g.emergencyExpiry() > block.timestamp && g.emergencyAt() > lostAt && m.holdsAny(_EMERGENCY_BIT);
    }

    /// @notice The (record, user) pair's grant expiry, consent and break-glass expiry (zeros when none,
    /// or when the user lost a reading role since they were set). Expired values are returned as they
    /// are; `checkAccess` tells whether access passes now.
    /// @param record The record id.
    /// @param user The reader.
    function grantOf(bytes32 record, address user)
        external
        view
        returns (uint64 expiry, bool consent, uint64 emergencyExpiry)
    {
        GrantState g = _grants[record][user];
        uint40 lostAt = _memberships[user].lostAt();
        if (g.grantedAt() > lostAt) expiry = g.expiry();
        consent = g.consentAt() > lostAt;
        if (g.emergencyAt() > lostAt) emergencyExpiry = g.emergencyExpiry();
    }

    function _grant(
        mapping(address => GrantState) storage grants,
        bytes32 record,
        address grantee,
        uint64 expiry,
        bool byPatient,
        address grantedBy
    ) internal {
        if (grantee == address(0)) revert InvalidGrantee();
        GrantState g = grants[grantee].withGrant(expiry);
        grants[grantee] = byPatient ? g.withConsent(true) : g;
        emit AccessGranted(record, grantee, grantedBy, expiry);
    }

    function _setConsent(bytes32 record, address researcher, bool given, address patient) internal {
        if (given && !_memberships[researcher].holdsAny(_RESEARCHER_BIT)) revert NotAResearcher(researcher);
        _grants[record][researcher] = _grants[record][researcher].withConsent(given);
        emit ConsentSet(record, researcher, patient, given);
    }

    function _requireFuture(uint64 expiry) internal view {
        if (expiry <= block.timestamp) revert ExpiryNotInFuture(expiry);
    }
}
