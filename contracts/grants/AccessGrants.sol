// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Membership} from "../access/Membership.sol";
import {RecordRegistry} from "../records/RecordRegistry.sol";
import {RecordState} from "../records/RecordState.sol";
import {GrantState} from "./GrantState.sol";

/// @title AccessGrants
/// @notice Who may read which record: expiring grants by the record's owner or patient, patient
/// consent for researchers (bounded by the patient's own expiry), bounded break-glass access, and an
/// on-chain log of reads.
/// @dev `checkAccess` reads four slots: the pause flag, the record, the (record, user) grant and the
/// user's membership. A grant goes only to a holder of a reading role (doctor or researcher) and
/// remembers whether the grantee was a doctor: only such a grant passes without consent. Each part
/// of a grant is stamped with its block and void once the grantee loses a reading role, so a grant
/// never wakes up under a role its granter did not see.
abstract contract AccessGrants is RecordRegistry {
    /// @notice The longest break-glass access one call may open.
    uint64 public constant MAX_EMERGENCY_DURATION = 12 hours;
    /// @notice How many times one user may open (or renew) break-glass access to one record.
    uint8 public constant MAX_EMERGENCY_OPENINGS = 3;
    /// @notice How long after the record's owner or patient closed a user's break-glass access the
    /// user may not reopen it.
    uint64 public constant EMERGENCY_COOLDOWN = 24 hours;

    mapping(bytes32 record => mapping(address user => GrantState)) internal _grants;

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

    /// @notice Let `grantee` (a doctor or researcher) read `record` until `expiry`; a researcher also
    /// needs the patient's consent. Replaces any earlier grant's expiry and keeps its consent, which
    /// stays bounded by its own expiry. Record owner or patient; a grant by the patient carries the
    /// patient's consent until `expiry`.
    /// @param record The record id.
    /// @param grantee The reader: holds the doctor or researcher role.
    /// @param expiry Unix time at which the grant stops passing; must be in the future.
    function grantAccess(bytes32 record, address grantee, uint64 expiry) external whenNotPaused {
        bool byPatient = _requireOwnerOrPatient(record, _liveRecord(record));
        _grant(_grants[record], record, grantee, _checkExpiry(expiry), byPatient, msg.sender);
    }

    /// @notice {grantAccess} for several grantees at once, all until `expiry`.
    /// @param record The record id.
    /// @param grantees The readers (at least one; each a doctor or researcher).
    /// @param expiry Unix time at which the grants stop passing; must be in the future.
    function grantAccessBatch(bytes32 record, address[] calldata grantees, uint64 expiry) external whenNotPaused {
        bool byPatient = _requireOwnerOrPatient(record, _liveRecord(record));
        uint40 until = _checkExpiry(expiry);
        if (grantees.length == 0) revert NoGrantees();
        mapping(address => GrantState) storage grants = _grants[record];
        for (uint256 i; i < grantees.length;) {
            _grant(grants, record, grantees[i], until, byPatient, msg.sender);
            unchecked {
                ++i;
            }
        }
    }

    /// @notice End `grantee`'s grant on `record` at once, with any consent attached to it, and void
    /// every patient signature for the pair issued before now; open break-glass access is closed
    /// separately. Record owner or patient, holding its role or not (revoking only narrows access), or a
    /// consortium admin once the owner lost the data-owner role. Runs while paused.
    /// @dev Does not read the grantee's membership (a voided grant is revoked like any other), which
    /// pays for keeping the revocation block in the slot instead of clearing it for a refund.
    /// @param record The record id.
    /// @param grantee The reader whose grant ends.
    function revokeAccess(bytes32 record, address grantee) external {
        _requireNarrower(record, _liveRecord(record), true);
        GrantState g = _grants[record][grantee];
        if (g.expiry() == 0) revert NoGrant(record, grantee);
        _grants[record][grantee] = g.withoutGrant();
        emit AccessRevoked(record, grantee, msg.sender);
    }

    /// @notice Consent until `expiry` for `researcher` to read `record` (a grant is still needed; the
    /// access ends at the earlier of the two expiries), or withdraw consent with `expiry` 0, which also
    /// voids the patient's signatures for the pair issued before now. The record's patient only, holding
    /// the patient role to consent; withdrawing needs no role and runs while paused.
    /// @param record The record id.
    /// @param researcher A holder of the researcher role (any account when withdrawing).
    /// @param expiry Unix time at which the consent ends (in the future), or 0 to withdraw.
    function setConsent(bytes32 record, address researcher, uint64 expiry) external {
        if (expiry != 0) _requireNotPaused();
        RecordState r = _liveRecord(record);
        if (msg.sender != r.patient()) revert NotRecordPatient(record, msg.sender);
        if (expiry != 0) _requireRoleBit(_memberships[msg.sender], _PATIENT_BIT, PATIENT_ROLE, msg.sender);
        _setConsent(record, researcher, expiry, msg.sender);
    }

    /// @notice Break the glass: open access to `record` for the caller, an emergency-role holder, for
    /// `duration` seconds (at most {MAX_EMERGENCY_DURATION}). Logged with the patient as a topic. A
    /// renewal counts as an opening: at most {MAX_EMERGENCY_OPENINGS} per record and user, and none
    /// within {EMERGENCY_COOLDOWN} after the record's owner or patient closed the user's access.
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
        GrantState g = _grants[record][msg.sender];
        if (g.emergencyOpenings() >= MAX_EMERGENCY_OPENINGS) revert EmergencyOpeningsExhausted(record, msg.sender);
        if (g.emergencyClosed()) {
            uint64 until = uint64(g.emergencyExpiry()) + EMERGENCY_COOLDOWN;
            if (block.timestamp < until) revert EmergencyCooldown(record, msg.sender, until);
        }
        expiry = uint64(block.timestamp) + duration;
        g = g.withEmergencyOpened(uint40(expiry));
        _grants[record][msg.sender] = g;
        emit EmergencyAccessOpened(record, msg.sender, r.patient(), reasonHash, expiry, g.emergencyOpenings());
    }

    /// @notice Close `user`'s open break-glass access to `record`. The record's owner or patient, holding
    /// its role or not, or an admin once the owner lost its role (which starts {EMERGENCY_COOLDOWN}), or
    /// `user` itself. Runs while paused.
    /// @param record The record id.
    /// @param user The emergency-role holder whose access closes.
    function closeEmergencyAccess(bytes32 record, address user) external {
        RecordState r = _liveRecord(record);
        bool byOther = msg.sender != user;
        if (byOther) _requireNarrower(record, r, true);
        GrantState g = _grants[record][user];
        if (g.emergencyExpiry() <= block.timestamp || g.emergencyAt() <= _memberships[user].lostAt()) {
            revert NoEmergencyAccess(record, user);
        }
        _grants[record][user] = g.withEmergencyClosed(byOther);
        emit EmergencyAccessClosed(record, user, msg.sender);
    }

    /// @notice Record a read: reverts {AccessDenied} unless `checkAccess(caller, record)` or the caller
    /// is the live record's owner (holding the data-owner role) or its patient (holding the patient
    /// role) reading their own record back; otherwise emits {AccessLogged} so the record's access
    /// history, its owner's and patient's reads included, can be rebuilt from logs.
    /// @param record The record id.
    /// @return version The record version the caller is reading.
    function logAccess(bytes32 record) external whenNotPaused returns (uint32 version) {
        // checkAccess first: a grantee's read pays nothing for the owner-or-patient check.
        if (!checkAccess(msg.sender, record) && !_readsOwnRecord(msg.sender, record)) {
            revert AccessDenied(record, msg.sender);
        }
        version = _records[record].version();
        emit AccessLogged(record, msg.sender, version, uint64(block.timestamp));
    }

    /// @notice Whether `user` may read `record` now: a live grant made to a doctor who still is one,
    /// or a live grant and live consent for a researcher, or open break-glass access for an
    /// emergency-role holder; the reading role held without a break since; a registered record that
    /// is not retired; and the contract not paused. For off-chain services.
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
            if (g.forDoctor() && m.holdsAny(_DOCTOR_BIT)) return true;
            if (g.consentExpiry() > block.timestamp && g.consentAt() > lostAt && m.holdsAny(_RESEARCHER_BIT)) {
                return true;
            }
        }
        return g.emergencyExpiry() > block.timestamp && g.emergencyAt() > lostAt && m.holdsAny(_EMERGENCY_BIT);
    }

    /// @notice The (record, user) pair's grant expiry, consent expiry and break-glass expiry (zeros
    /// when none, or when the user lost a reading role since they were set). Expired values are
    /// returned as they are; `checkAccess` tells whether access passes now.
    /// @param record The record id.
    /// @param user The reader.
    function grantOf(bytes32 record, address user)
        external
        view
        returns (uint64 expiry, uint64 consentExpiry, uint64 emergencyExpiry)
    {
        GrantState g = _grants[record][user];
        uint40 lostAt = _memberships[user].lostAt();
        if (g.grantedAt() > lostAt) expiry = g.expiry();
        if (g.consentAt() > lostAt) consentExpiry = g.consentExpiry();
        if (g.emergencyAt() > lostAt) emergencyExpiry = g.emergencyExpiry();
    }

    /// @dev Whether `user` is the live record's owner holding the data-owner role, or its patient
    /// holding the patient role. Not part of `checkAccess`, which answers for grantees.
    function _readsOwnRecord(address user, bytes32 record) private view returns (bool) {
        RecordState r = _records[record];
        if (r.ownerId() == 0 || r.isRetired()) return false;
        Membership m = _memberships[user];
        if (m.ownerId() == r.ownerId()) return m.holdsAny(_DATA_OWNER_BIT);
        return user == r.patient() && m.holdsAny(_PATIENT_BIT);
    }

    function _grant(
        mapping(address => GrantState) storage grants,
        bytes32 record,
        address grantee,
        uint40 expiry,
        bool byPatient,
        address grantedBy
    ) internal {
        if (grantee == address(0)) revert InvalidGrantee();
        Membership m = _memberships[grantee];
        if (!m.holdsAny(_DOCTOR_BIT | _RESEARCHER_BIT)) revert GranteeCannotRead(grantee);
        GrantState g = grants[grantee].withGrant(expiry, m.holdsAny(_DOCTOR_BIT));
        grants[grantee] = byPatient ? g.withConsent(expiry) : g;
        emit AccessGranted(record, grantee, grantedBy, expiry);
    }

    /// @dev Giving consent needs a researcher and a future expiry (and, checked by the callers first,
    /// an unpaused contract); withdrawing (`expiry` 0) needs nothing.
    function _setConsent(bytes32 record, address researcher, uint64 expiry, address patient) internal {
        uint40 until;
        if (expiry != 0) {
            until = _checkExpiry(expiry);
            if (!_memberships[researcher].holdsAny(_RESEARCHER_BIT)) revert NotAResearcher(researcher);
        }
        _grants[record][researcher] = _grants[record][researcher].withConsent(until);
        emit ConsentSet(record, researcher, patient, expiry);
    }

    /// @dev Reverts unless `expiry` is in the future and fits 40 bits; returns it as stored.
    function _checkExpiry(uint64 expiry) internal view returns (uint40) {
        if (expiry <= block.timestamp) revert ExpiryNotInFuture(expiry);
        if (expiry > type(uint40).max) revert ExpiryTooFar(expiry);
        return uint40(expiry);
    }
}
