// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ISecureRounds} from "../interfaces/ISecureRounds.sol";
import {Cid} from "../records/Cid.sol";
import {RoundState} from "./RoundState.sol";

/// @title SecureRounds
/// @notice A study may declare secure aggregation at creation; each of its rounds then runs the
/// protocol of Bonawitz et al. through the chain, its phases in the round's header ({SecurePhase}).
/// Postings are taken from the round's roster only (its invited hospitals), with a well-formed CID
/// and digest, and not while the consortium is paused; nothing of a posting is stored: a reader
/// counts each sender's first posting in a phase. A secure round commits only if every survivor it
/// counts still holds the participant role (its input cannot be left out of the sum).
/// @dev A secure round's roster, once-per-round guard and each survivor's place live in the
/// hospital's account slot ({RoundState-PrivacyAccount}), which its masked input updates anyway.
abstract contract SecureRounds is RoundState {
    /// @inheritdoc ISecureRounds
    /// @dev Each check here is paid by every participant of every round: a secure round's postings and
    /// masked input must stay within 160,000 gas a participant.
    function postSecureMessage(uint64 study, uint32 round, SecurePhase phase, bytes calldata cid, bytes32 sha256Digest)
        external
    {
        Study storage s = _studies[study];
        // Only the fields checked here, from the one slot (a copy of the whole header decodes all eleven).
        RoundHeader storage header = s.rounds[round].header;
        (RoundStatus status, bool secure, bool invites, SecurePhase current) =
            (header.status, header.secure, header.invites, header.phase);
        _requireOpen(study, round, status);
        if (!secure) revert RoundNotSecure(study, round);
        // Masked inputs are updates, and a finished round takes nothing more before its commit.
        if (phase != current || phase == SecurePhase.MaskedInputs || phase == SecurePhase.Finished) {
            revert SecurePhaseMismatch(study, round, current, phase);
        }
        if (invites) {
            _requireNotPaused();
            if (s.privacy[msg.sender].invitedRound != round) revert NotInvited(study, round, msg.sender);
        } else if (!_holdsUnpaused(msg.sender, _PARTICIPANT_BIT)) {
            revert NotParticipant(msg.sender);
        }
        // The artifact's checks inline: a call's overhead is some 60 gas on every posting and masked input.
        (uint8 format, bytes32 digest) = Cid.parse(cid);
        if (sha256Digest == 0) revert ZeroDigest();
        emit SecureMessagePosted(study, round, msg.sender, phase, format, digest, sha256Digest);
    }

    /// @inheritdoc ISecureRounds
    function closeSecurePhase(uint64 study, uint32 round, SecurePhase phase) external {
        Study storage s = _studies[study];
        _requireCoordinator(study, s.header, true);
        Round storage r = s.rounds[round];
        RoundHeader memory header = r.header;
        _requireOpen(study, round, header.status);
        if (!header.secure) revert RoundNotSecure(study, round);
        if (phase != header.phase || phase == SecurePhase.Finished) {
            revert SecurePhaseMismatch(study, round, header.phase, phase);
        }
        r.header.phase = SecurePhase(uint8(phase) + 1);
        emit SecurePhaseClosed(study, round, phase);
    }

    /// @inheritdoc ISecureRounds
    function secureRoundOf(uint64 study, uint32 round) external view returns (bool secure, SecurePhase phase) {
        Study storage s = _study(study);
        return (s.header.secure, s.rounds[round].header.phase);
    }

    /// @dev A secure round's masked input from the caller: its phase, roster and once-per-round checks,
    /// then its place among the submitters (returned), kept in the caller's account slot beside the
    /// guard (one slot write) and counted in the round's header, which holds the survivors' count.
    function _takeMaskedInput(uint64 study, uint32 round, RoundHeader storage header)
        internal
        override
        returns (uint256 index)
    {
        (SecurePhase phase, bool invites, uint16 count) = (header.phase, header.invites, header.updateCount);
        if (phase != SecurePhase.MaskedInputs) revert SecurePhaseMismatch(study, round, phase, SecurePhase.MaskedInputs);
        index = count;
        if (index == MAX_UPDATES) revert RoundFull(study, round);
        mapping(address => PrivacyAccount) storage accounts = _studies[study].privacy;
        PrivacyAccount memory entry = accounts[msg.sender];
        if (invites && entry.invitedRound != round) revert NotInvited(study, round, msg.sender);
        if (entry.lastSecureRound >= round) revert AlreadySubmitted(study, round, msg.sender);
        entry.lastSecureRound = round;
        entry.secureIndex = uint8(index); // below MAX_UPDATES
        accounts[msg.sender] = entry;
        header.updateCount = uint16(index + 1);
    }
}
