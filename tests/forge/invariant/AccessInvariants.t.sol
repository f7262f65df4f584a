// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {MedicalAccess} from "../../../contracts/MedicalAccess.sol";
import {TestBase} from "../utils/Vm.sol";
import {AccessHandler} from "./AccessHandler.sol";

/// @notice The access policy's safety properties, checked by forge after every step of random
/// sequences of {AccessHandler} calls (several per block; role grants, losses and swaps; patients'
/// signatures relayed at any later time; key shares; pause; break-glass). Each invariant states, in
/// the handler's ghost history, a case in which `checkAccess` must answer false (or, for the one
/// liveness check, true) for every (record, user) pair.
contract AccessInvariantsTest is TestBase {
    AccessHandler internal handler;
    MedicalAccess internal access;

    uint256 internal constant DOCTOR_BIT = 1 << 3;
    uint256 internal constant RESEARCHER_BIT = 1 << 4;
    uint256 internal constant EMERGENCY_BIT = 1 << 6;
    uint256 internal constant READING_BITS = DOCTOR_BIT | RESEARCHER_BIT | EMERGENCY_BIT;

    function setUp() public {
        handler = new AccessHandler();
        access = MedicalAccess(handler.accessContract());
        targetContract(address(handler));
    }

    // Each invariant_ function is a campaign of its own (forge gives each a fresh executor), so the
    // properties are grouped by the part of the policy they guard, and each campaign is shorter than
    // the single one they replace: a failure names the property, at about the same total cost.

    /// @notice Nobody passes who holds no standing: a stranger, anyone while paused, anyone on a
    /// retired record.
    /// forge-config: default.invariant.runs = 8
    function invariant_noStandingNoAccess() public {
        _sync();
        _checkStrangerNeverPasses();
        _checkNothingPassesWhilePaused();
        _checkRetiredRecordNeverPasses();
    }

    /// @notice A revocation is final: neither the revoked grant, nor a signature decided before the
    /// revocation, nor a signature its patient cancelled ever passes afterwards.
    /// forge-config: default.invariant.runs = 8
    function invariant_revocationsAreFinal() public {
        _sync();
        _checkRevokedGrantNeverPasses();
        _checkRevokedGrantSignatureNeverPasses();
        _checkCancelledSignaturesNeverLand();
    }

    /// @notice Losing a reading role ends every grant and signature written before it, and a grant
    /// never wakes on a role its grantee gains later.
    /// forge-config: default.invariant.runs = 8
    function invariant_roleLossEndsGrants() public {
        _sync();
        _checkGrantBeforeRoleLossNeverPasses();
        _checkSignatureBeforeRoleLossNeverPasses();
        _checkOnlyDoctorGrantsPassWithoutConsent();
    }

    /// @notice A researcher reads only on live consent that the patient decided.
    /// forge-config: default.invariant.runs = 8
    function invariant_researchersNeedConsent() public {
        _sync();
        _checkResearcherNeedsLiveConsent();
        _checkResearcherNeedsDecidedConsent();
    }

    /// @notice Keys go only to readers, break-glass stays bounded, and the pause never blocks a
    /// reduction of access.
    /// forge-config: default.invariant.runs = 8
    function invariant_exceptionsStayBounded() public {
        _sync();
        _checkKeySharedOnlyWithReaders();
        _checkBreakGlassIsBounded();
        _checkPauseNeverBlocksReductions();
    }

    /// @notice Liveness, so that the safety invariants cannot hold by refusing everyone.
    /// forge-config: default.invariant.runs = 8
    function invariant_liveDoctorGrantPasses() public {
        _sync();
        _checkLiveDoctorGrantPasses();
    }

    /// @notice A stranger (never given a role, though granted access and relayed signatures for) never passes.
    function _checkStrangerNeverPasses() internal view {
        address s = handler.strangerAccount();
        for (uint256 r; r < 3; ++r) {
            assertFalse(access.checkAccess(s, handler.recordAt(r)), "a stranger passed checkAccess");
        }
    }

    /// @notice Nothing passes while the contract is paused.
    function _checkNothingPassesWhilePaused() internal view {
        if (!access.paused()) return;
        _forEachPair(_nothingPasses, "a pair passed while paused");
    }

    /// @notice Nothing passes on a retired record.
    function _checkRetiredRecordNeverPasses() internal view {
        _forEachPair(_retiredNeverPasses, "a pair passed on a retired record");
    }

    /// @notice A grant revoked after it was written never passes (break-glass aside).
    function _checkRevokedGrantNeverPasses() internal view {
        _forEachPair(_revokedGrantNeverPasses, "a revoked grant passed");
    }

    /// @notice A grant written before the grantee's last loss of a reading role never passes after it.
    function _checkGrantBeforeRoleLossNeverPasses() internal view {
        _forEachPair(_grantBeforeRoleLossNeverPasses, "a grant written before a role loss passed after it");
    }

    /// @notice A researcher (holding neither the doctor role nor live break-glass access) never passes
    /// without consent given after its last withdrawal and after the researcher's last role loss.
    function _checkResearcherNeedsLiveConsent() internal view {
        _forEachPair(_researcherNeedsLiveConsent, "a researcher passed without live consent");
    }

    /// @notice A data key was only ever shared with someone who passed `checkAccess` at that moment.
    function _checkKeySharedOnlyWithReaders() internal view {
        string memory violation = handler.keyShareViolation();
        assertTrue(bytes(violation).length == 0, violation);
    }

    /// @notice Liveness, so that the safety invariants cannot pass by the policy refusing everyone: a
    /// doctor with an unrevoked, unexpired grant decided and written in blocks after its last role loss
    /// passes (unpaused, record live).
    function _checkLiveDoctorGrantPasses() internal view {
        _forEachPair(_liveDoctorGrantPasses, "a live doctor grant did not pass");
    }

    /// @notice A grant whose author decided it (signed it) before the pair's last revocation never passes.
    function _checkRevokedGrantSignatureNeverPasses() internal view {
        _forEachPair(_revokedGrantSignatureNeverPasses, "a signature issued before a revocation passed");
    }

    /// @notice A grant signed before the grantee's last loss of a reading role never passes.
    function _checkSignatureBeforeRoleLossNeverPasses() internal view {
        _forEachPair(_signatureBeforeRoleLossNeverPasses, "a signature issued before a role loss passed");
    }

    /// @notice A researcher passes only on consent the patient decided after its last withdrawal (a
    /// held-back consent signature cannot undo one), and only within the expiry the patient agreed to.
    function _checkResearcherNeedsDecidedConsent() internal view {
        _forEachPair(_researcherNeedsDecidedConsent, "a researcher passed without consent decided by the patient");
    }

    /// @notice Without consent, only a grant written while its grantee was a doctor passes: a dormant
    /// grant to a researcher or a member without a reading role does not wake on a later doctor role.
    function _checkOnlyDoctorGrantsPassWithoutConsent() internal view {
        _forEachPair(_onlyDoctorGrantsPassWithoutConsent, "a grant to a non-doctor passed without consent");
    }

    /// @notice Revoking, withdrawing consent, closing break-glass and retiring run while paused.
    function _checkPauseNeverBlocksReductions() internal view {
        string memory refused = handler.pauseBlockedReduction();
        assertTrue(bytes(refused).length == 0, string.concat("the pause refused ", refused));
    }

    /// @notice A signature its patient cancelled is never relayed.
    function _checkCancelledSignaturesNeverLand() internal view {
        string memory violation = handler.cancelledSignatureRelayed();
        assertTrue(bytes(violation).length == 0, violation);
    }

    /// @notice Break-glass access opens at most MAX_EMERGENCY_OPENINGS times per record and user, and
    /// never within EMERGENCY_COOLDOWN of the record's owner or patient closing it.
    function _checkBreakGlassIsBounded() internal view {
        string memory violation = handler.breakGlassViolation();
        assertTrue(bytes(violation).length == 0, violation);
    }

    // ----- the checks, per (record, user) -----

    function _nothingPasses(uint256, address, bool passes) internal pure returns (bool) {
        return !passes;
    }

    function _retiredNeverPasses(uint256 r, address, bool passes) internal view returns (bool) {
        return !(passes && handler.retired(r));
    }

    function _revokedGrantNeverPasses(uint256 r, address user, bool passes) internal view returns (bool) {
        AccessHandler.Pair memory p = handler.pair(r, user);
        return !(passes && p.revoked > p.grantLanded && !handler.emergencyLive(r, user));
    }

    function _grantBeforeRoleLossNeverPasses(uint256 r, address user, bool passes) internal view returns (bool) {
        AccessHandler.Pair memory p = handler.pair(r, user);
        return !(passes && handler.lostAt(user) > p.grantLanded && !handler.emergencyLive(r, user));
    }

    function _researcherNeedsLiveConsent(uint256 r, address user, bool passes) internal view returns (bool) {
        uint256 roles = handler.roles(user);
        if (!passes || roles & RESEARCHER_BIT == 0 || roles & DOCTOR_BIT != 0) return true;
        return handler.emergencyLive(r, user) || handler.consentLanded(r, user);
    }

    function _revokedGrantSignatureNeverPasses(uint256 r, address user, bool passes) internal view returns (bool) {
        AccessHandler.Pair memory p = handler.pair(r, user);
        return !(passes && p.revoked >= p.grantIssued && !handler.emergencyLive(r, user));
    }

    function _signatureBeforeRoleLossNeverPasses(uint256 r, address user, bool passes) internal view returns (bool) {
        AccessHandler.Pair memory p = handler.pair(r, user);
        return !(passes && handler.lostAt(user) >= p.grantIssued && !handler.emergencyLive(r, user));
    }

    function _researcherNeedsDecidedConsent(uint256 r, address user, bool passes) internal view returns (bool) {
        uint256 roles = handler.roles(user);
        if (!passes || roles & DOCTOR_BIT != 0 || handler.emergencyLive(r, user)) return true;
        return handler.consentDecided(r, user);
    }

    function _onlyDoctorGrantsPassWithoutConsent(uint256 r, address user, bool passes) internal view returns (bool) {
        if (!passes || handler.emergencyLive(r, user) || handler.consentDecided(r, user)) return true;
        return handler.pair(r, user).grantLandedAsDoctor;
    }

    function _liveDoctorGrantPasses(uint256 r, address user, bool passes) internal view returns (bool) {
        if (passes || access.paused() || handler.retired(r) || handler.roles(user) & DOCTOR_BIT == 0) return true;
        AccessHandler.Pair memory p = handler.pair(r, user);
        bool live = p.grantLanded > p.revoked && p.expiry > block.timestamp && p.grantLandedAsDoctor
            && p.grantIssued > handler.lostAt(user) && p.grantIssuedBlock > handler.lostAtBlock(user)
            && p.grantLandedBlock > handler.lostAtBlock(user);
        return !live;
    }

    // ----- plumbing -----

    /// @dev Invariants are read in the handler's block and time.
    function _sync() internal {
        vm.roll(handler.blockNow());
        vm.warp(handler.timeNow());
    }

    function _forEachPair(function(uint256, address, bool) internal view returns (bool) holds, string memory what)
        internal
        view
    {
        for (uint256 r; r < 3; ++r) {
            bytes32 record = handler.recordAt(r);
            for (uint256 u; u < 9; ++u) {
                address user = handler.users(u);
                if (!holds(r, user, access.checkAccess(user, record))) {
                    revert(string.concat(what, ": record ", _str(r), ", user ", _str(u)));
                }
            }
        }
    }
}
