// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IPrivacyBudgets
/// @notice Differential-privacy budgets of a study's hospitals: an (epsilon, delta) budget for the
/// whole study, and updates that declare the DP parameters they were trained with and their sender's
/// cumulative epsilon, refused past the budget. The registry cannot run the accountant: auditors
/// recompute every declared epsilon off chain from the declared parameters ({PrivacySpent} events).
interface IPrivacyBudgets {
    /// @notice `hospital` may spend at most `epsilonBudget` (in millionths) at `delta` (in 1e-18)
    /// over the whole study.
    event PrivacyBudgetSet(uint64 indexed study, address indexed hospital, uint64 epsilonBudget, uint64 delta);
    /// @notice The update logged just before this event, in the same transaction
    /// ({IStudyRounds-UpdateSubmitted}: its study, round and participant), declares `declaration` (see
    /// {submitPrivateUpdate}): the DP parameters it was trained with and its sender's cumulative
    /// epsilon in the study after it.
    /// @dev Study, round and participant are not repeated: each indexed topic would cost 375 gas an
    /// update, which would take a declared update past its 75,000 gas target.
    event PrivacySpent(uint256 declaration);

    /// @notice A private update ({submitPrivateUpdate}) publishes no sample count: it must be 0.
    error SampleCountInPrivateUpdate();
    /// @notice With hospitals, a budget's epsilon must be positive and its delta in (0, 1); without,
    /// both must be 0.
    error BadPrivacyBudget(uint64 epsilonBudget, uint64 delta);
    /// @notice `hospital` is listed twice among the hospitals given a budget in `study`.
    error PrivacyBudgetAlreadySet(uint64 study, address hospital);
    /// @notice `account` has no privacy budget in the budgeted `study`, so it cannot submit.
    error NoPrivacyBudget(uint64 study, address account);
    /// @notice The study has privacy budgets: an update must declare its DP spend ({submitPrivateUpdate}).
    error PrivacyDeclarationRequired(uint64 study, uint32 round);
    /// @notice The study has no privacy budgets: submit with {IStudyRounds-submitUpdate}.
    error RoundNotPrivate(uint64 study, uint32 round);
    /// @notice A DP declaration needs a positive noise multiplier, clipping norm and step count and
    /// a sample rate in (0, 1].
    error BadDPDeclaration();
    /// @notice `participant` declared a cumulative epsilon of `declared`, over its `budget`.
    error PrivacyBudgetExceeded(uint64 study, address participant, uint64 declared, uint64 budget);
    /// @notice `participant` declared a cumulative epsilon of `declared`, below the `spent` it declared before.
    error PrivacySpendDecreased(uint64 study, address participant, uint64 declared, uint64 spent);

    /// @notice Epsilons (budgets and spends) are in millionths.
    function EPSILON_SCALE() external view returns (uint64);

    /// @notice Deltas are in units of 1e-18 (a delta is below 1, so below this).
    function DELTA_SCALE() external view returns (uint64);

    /// @notice Noise multipliers, sample rates and clipping norms are in units of 1e-9.
    function DP_PARAMETER_SCALE() external view returns (uint64);

    /// @notice The largest epsilon budget a hospital may be given, in millionths (about 7.2e10).
    function MAX_EPSILON_BUDGET() external view returns (uint64);

    /// @notice Submit the caller's update to an open round of a study with privacy budgets, declaring
    /// the DP parameters it was trained with and the caller's cumulative epsilon after it, which is
    /// recorded. As {IStudyRounds-submitUpdate}, and refused if that epsilon passes the caller's budget
    /// or is below what it declared before.
    /// @param study The study.
    /// @param round The round.
    /// @param cid Binary CID of the update (as stored, i.e. encrypted).
    /// @param sha256Digest SHA-256 of the update's bytes.
    /// @param samples Must be 0: a DP study publishes no record count (its rounds average unweighted).
    /// @param declaration One word (calldata and the {PrivacySpent} event cost gas by the word), from
    /// the high bits: the DP-SGD noise multiplier (64 bits), the sample rate of records per step (32),
    /// the clipping norm (64), all three in 1/DP_PARAMETER_SCALE, the steps (32), and the caller's
    /// cumulative epsilon in the study after this update (64, in 1/EPSILON_SCALE, at its budget's delta).
    function submitPrivateUpdate(
        uint64 study,
        uint32 round,
        bytes calldata cid,
        bytes32 sha256Digest,
        uint64 samples,
        uint256 declaration
    ) external;

    /// @notice `account`'s privacy budget in the study and its spend so far (epsilons in millionths,
    /// delta in 1e-18); all zero if it has none.
    function privacyOf(uint64 study, address account)
        external
        view
        returns (uint64 epsilonBudget, uint64 delta, uint64 epsilonSpent);
}
