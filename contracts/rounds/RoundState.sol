// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IPrivacyBudgets} from "../interfaces/IPrivacyBudgets.sol";
import {ISecureRounds} from "../interfaces/ISecureRounds.sol";
import {IStudyRounds} from "../interfaces/IStudyRounds.sol";
import {ConsortiumBound} from "./ConsortiumBound.sol";

/// @title RoundState
/// @notice The registry's storage, shared by its units ({StudyRounds}, {PrivacyBudgets},
/// {SecureRounds}, {RoundEvaluations}): studies, their rounds and each hospital's account slot,
/// packed so that a round's hot paths touch as few slots as they can. Its units share one ABI
/// namespace (their interfaces), the checks all of them make, and the hooks by which one unit calls
/// into another.
/// @dev Room to grow: {Round} and {Study} end in mappings new fields can join, and {RoundHeader} has 8
/// spare bits. The layout is the deployed registry's: do not reorder.
abstract contract RoundState is ConsortiumBound, IStudyRounds, IPrivacyBudgets, ISecureRounds {
    /// @inheritdoc IStudyRounds
    uint256 public constant MAX_UPDATES = 256;

    /// @dev One slot.
    struct StudyHeader {
        address coordinator;
        uint16 minUpdates;
        uint32 roundCount;
        uint32 latestRound; // the last committed round; 0: the genesis model is the latest
        bool budgeted; // hospitals have privacy budgets: updates must declare their DP spend
        bool secure; // rounds run secure aggregation
    }

    /// @dev One slot: the study's settings no round copies.
    struct StudySettings {
        uint64 maxSamples;
        uint16 graphDegree;
    }

    struct Study {
        StudyHeader header;
        bytes32 genesis; // the genesis model's commitment
        bytes32 configDigest; // SHA-256 of the study's canonical JSON config
        StudySettings settings;
        mapping(uint32 round => Round) rounds;
        mapping(address hospital => PrivacyAccount) privacy;
    }

    /// @dev One slot per hospital and study: its budget for the whole study and what it has spent.
    struct PrivacyAccount {
        // In 1/EPSILON_SCALE; 0: no budget (the hospital cannot submit). At most {MAX_EPSILON_BUDGET}:
        // 56 bits leave room for {secureIndex} in the slot.
        uint56 epsilonBudget;
        uint64 delta; // in 1/DELTA_SCALE; every epsilon of this hospital is at this delta
        uint56 epsilonSpent; // in 1/EPSILON_SCALE, over all its updates to the study (at most its budget)
        // The last secure round the hospital submitted a masked input to: a secure round's
        // once-per-round guard lives here, in a slot reused every round, rather than in a fresh slot
        // of {Round.updates} (the 17,000 gas difference keeps a secure round within its budget).
        uint32 lastSecureRound;
        // The last secure round that invited the hospital: a secure round's roster, read by every
        // posting and masked input in the slot the masked input updates anyway. The coordinator's
        // opening writes it (and so pays for the slot's creation, not a participant).
        uint32 invitedRound;
        // The hospital's place among the submitters of {lastSecureRound} (from 0): with the count in
        // the round's header, what a secure round's commit checks its submitters against, so a masked
        // input updates no tally slot (2,100 gas of a participant's budget).
        uint8 secureIndex;
    }

    /// @dev One slot, written whole at open, commit and cancel.
    struct RoundHeader {
        uint40 deadline; // the last second an update is taken (at most a year ahead: fits 40 bits)
        RoundStatus status;
        bool invites; // only invited participants may submit
        uint32 baseRound; // the round whose aggregate is this round's base; 0: the genesis model
        // The consortium's count of learning-role losses when the round opened (low 40 bits: each
        // loss is a transaction, so the count never wraps them).
        uint40 roleLosses;
        uint64 maxSamples; // the study's, copied at open: the most samples an update may declare
        // Set when the round closes; while it is open a plain round counts in its tally, a secure
        // round here (its masked input writes the header, not the tally).
        uint16 updateCount;
        uint16 counted; // updates from accounts holding the participant role at commit
        bool budgeted; // the study's, copied at open: updates must declare their DP spend
        bool secure; // the study's, copied at open: the round runs secure aggregation
        SecurePhase phase; // a secure round's current phase
    }

    struct Round {
        RoundHeader header;
        // Open or cancelled: the submitters' running digest (high 224 bits) and their count (low 32
        // bits), a plain round's only (a secure round's survivors are checked against their account
        // slots). Committed: the aggregate's commitment. One slot serves both, as the digest is
        // spent at commit.
        bytes32 tally;
        mapping(address participant => bytes32 commitment) updates;
        mapping(address account => bool) invited; // a plain round's; a secure round's is {PrivacyAccount}
    }

    mapping(uint64 study => Study) internal _studies;
    uint64 internal _studyCount;

    // Hooks: each implemented by the unit it names, called by another ---------------------------------

    /// @dev {StudyRounds}: an update's checks and records, shared by both submissions; `declaresPrivacy`
    /// must match whether the round's study has privacy budgets.
    function _submit(
        uint64 study,
        uint32 round,
        bytes calldata cid,
        bytes32 sha256Digest,
        uint64 samples,
        bool declaresPrivacy
    ) internal virtual;

    /// @dev {SecureRounds}: a secure round's masked input from the caller; returns its place among the
    /// round's submitters.
    function _takeMaskedInput(uint64 study, uint32 round, RoundHeader storage header)
        internal
        virtual
        returns (uint256 index);

    /// @dev {PrivacyBudgets}: gives each of `hospitals` the (epsilon, delta) budget of a new study.
    function _setPrivacyBudgets(
        uint64 study,
        Study storage s,
        address[] calldata hospitals,
        uint64 epsilonBudget,
        uint64 delta
    ) internal virtual;

    // Checks every unit makes ------------------------------------------------------------------------

    /// @dev The study's coordinator is the caller; with `checkRole`, it also holds the role now.
    /// Refuses while the consortium is paused.
    function _requireCoordinator(uint64 study, StudyHeader memory header, bool checkRole) internal view {
        if (header.coordinator == address(0)) revert UnknownStudy(study);
        if (header.coordinator != msg.sender) revert NotStudyCoordinator(study, msg.sender);
        if (!checkRole) _requireNotPaused();
        else if (!_holdsUnpaused(msg.sender, _COORDINATOR_BIT)) revert NotCoordinator(msg.sender);
    }

    function _requireOpen(uint64 study, uint32 round, RoundStatus status) internal pure {
        if (status == RoundStatus.None) revert UnknownRound(study, round);
        if (status != RoundStatus.Open) revert RoundNotOpen(study, round, status);
    }

    function _study(uint64 study) internal view returns (Study storage s) {
        s = _studies[study];
        if (s.header.coordinator == address(0)) revert UnknownStudy(study);
    }
}
