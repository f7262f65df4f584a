// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IRoundEvaluations} from "../interfaces/IRoundEvaluations.sol";
import {Cid} from "../records/Cid.sol";
import {RoundState} from "./RoundState.sol";

/// @title RoundEvaluations
/// @notice A hospital's evaluation of a committed model, posted when its study ends
/// ({IRoundEvaluations-reportEvaluation}): from the round's submitters only, as an event.
/// @dev No once-per-round bit is stored: a fresh slot would cost each posting 22,100 gas to guard what
/// readers settle for free, as they do a secure round's postings (each sender's first counts). The
/// function's name is chosen for its selector (0x00e2d85c): it sorts below `openRound`'s, so the
/// dispatcher reaches every round function through the same comparisons as before (`openRound` one fewer).
abstract contract RoundEvaluations is RoundState, IRoundEvaluations {
    /// @inheritdoc IRoundEvaluations
    function reportEvaluation(uint64 study, uint32 round, bytes calldata cid, bytes32 sha256Digest) external {
        Study storage s = _studies[study];
        Round storage r = s.rounds[round];
        (RoundStatus status, bool secure) = (r.header.status, r.header.secure);
        if (status == RoundStatus.None) revert UnknownRound(study, round);
        if (status != RoundStatus.Committed) revert RoundNotCommitted(study, round, status);
        if (!_holdsUnpaused(msg.sender, _PARTICIPANT_BIT)) revert NotParticipant(msg.sender);
        // A submitter of the round: its update's record, or (secure) the round of its last masked input.
        bool submitted = secure ? s.privacy[msg.sender].lastSecureRound == round : r.updates[msg.sender] != 0;
        if (!submitted) revert EvaluationNotAllowed(study, round, msg.sender);
        (uint8 format, bytes32 digest) = Cid.parse(cid);
        if (sha256Digest == 0) revert ZeroDigest();
        emit EvaluationReported(study, round, msg.sender, format, digest, sha256Digest);
    }
}
