// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Membership} from "../access/Membership.sol";
import {RecordRegistry} from "../records/RecordRegistry.sol";
import {RecordState} from "../records/RecordState.sol";
import {GrantState} from "./GrantState.sol";
import {IAccessGrants} from "../interfaces/IAccessGrants.sol";

/// @title AccessGrants
/// @notice Who may read which record: expiring grants by the record's owner or patient, patient
/// consent for researchers (bounded by the patient's own expiry), bounded break-glass access, and an
/// on-chain log of reads.
/// @dev `checkAccess` reads four slots: the pause flag, the record, the (record, user) grant and the
/// user's membership. A grant goes only to a holder of a reading role (doctor or researcher) and
/// remembers whether the grantee was a doctor: only such a grant passes without consent. Each part
/// of a grant is stamped with its block and void once the grantee loses a reading role, so a grant
/// never wakes up under a role its granter did not see.
abstract contract AccessGrants is RecordRegistry, IAccessGrants {
    /// @inheritdoc IAccessGrants
    uint64 public constant MAX_EMERGENCY_DURATION = 12 hours;
    /// @inheritdoc IAccessGrants
    uint8 public constant MAX_EMERGENCY_OPENINGS = 3;
    /// @inheritdoc IAccessGrants
    uint64 public constant EMERGENCY_COOLDOWN = 24 hours;

    mapping(bytes32 record => mapping(address user => GrantState)) internal _grants;

    /// @inheritdoc IAccessGrants
    function grantAccess(bytes32 record, address grantee, uint64 expiry) external whenNotPaused {
        bool byPatient = _requireOwnerOrPatient(record, _liveRecord(record));
        _grant(_grants[record], record, grantee, _checkExpiry(expiry), byPatient, msg.sender);
    }

    /// @inheritdoc IAccessGrants
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

    /// @inheritdoc IAccessGrants
    /// @dev Does not read the grantee's membership (a voided grant is revoked like any other), which
    /// pays for keeping the revocation block in the slot instead of clearing it for a refund.
    function revokeAccess(bytes32 record, address grantee) external {
        _requireNarrower(record, _liveRecord(record), true);
        GrantState g = _grants[record][grantee];
        if (g.expiry() == 0) revert NoGrant(record, grantee);
        _grants[record][grantee] = g.withoutGrant();
        emit AccessRevoked(record, grantee, msg.sender);
    }

    /// @inheritdoc IAccessGrants
    function setConsent(bytes32 record, address researcher, uint64 expiry) external {
        if (expiry != 0) _requireNotPaused();
        RecordState r = _liveRecord(record);
        if (msg.sender != r.patient()) revert NotRecordPatient(record, msg.sender);
        if (expiry != 0) _requireRoleBit(_memberships[msg.sender], _PATIENT_BIT, PATIENT_ROLE, msg.sender);
        _setConsent(record, researcher, expiry, msg.sender);
    }

    /// @inheritdoc IAccessGrants
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

    /// @inheritdoc IAccessGrants
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

    /// @inheritdoc IAccessGrants
    function logAccess(bytes32 record) external whenNotPaused returns (uint32 version) {
        // checkAccess first: a grantee's read pays nothing for the owner-or-patient check.
        if (!checkAccess(msg.sender, record) && !_readsOwnRecord(msg.sender, record)) {
            revert AccessDenied(record, msg.sender);
        }
        version = _records[record].version();
        emit AccessLogged(record, msg.sender, version, uint64(block.timestamp));
    }

    /// @inheritdoc IAccessGrants
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

    /// @inheritdoc IAccessGrants
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
