// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IPrivacyBudgets} from "../interfaces/IPrivacyBudgets.sol";
import {RoundState} from "./RoundState.sol";

/// @title PrivacyBudgets
/// @notice A study may give hospitals an (epsilon, delta) budget for the whole study, at its creation;
/// its rounds then take only {submitPrivateUpdate}, which declares the DP parameters the update was
/// trained with and the hospital's cumulative epsilon after it, and is refused if that total passes
/// the budget or falls.
/// @dev Budget and spend share one slot per hospital ({RoundState-PrivacyAccount}).
abstract contract PrivacyBudgets is RoundState {
    /// @inheritdoc IPrivacyBudgets
    uint64 public constant EPSILON_SCALE = 1e6;
    /// @inheritdoc IPrivacyBudgets
    uint64 public constant DELTA_SCALE = 1e18;
    /// @inheritdoc IPrivacyBudgets
    uint64 public constant DP_PARAMETER_SCALE = 1e9;
    /// @inheritdoc IPrivacyBudgets
    uint64 public constant MAX_EPSILON_BUDGET = type(uint56).max;

    /// @inheritdoc IPrivacyBudgets
    function submitPrivateUpdate(
        uint64 study,
        uint32 round,
        bytes calldata cid,
        bytes32 sha256Digest,
        uint64 samples,
        uint256 declaration
    ) external {
        _submit(study, round, cid, sha256Digest, samples, true);
        uint64 epsilonSpent = uint64(declaration);
        uint256 sampleRate = uint32(declaration >> 160);
        if (
            declaration >> 192 == 0 || uint64(declaration >> 96) == 0 || uint32(declaration >> 64) == 0
                || sampleRate == 0 || sampleRate > DP_PARAMETER_SCALE
        ) revert BadDPDeclaration();
        PrivacyAccount storage account = _studies[study].privacy[msg.sender];
        PrivacyAccount memory spend = account;
        if (spend.epsilonBudget == 0) revert NoPrivacyBudget(study, msg.sender);
        if (epsilonSpent < spend.epsilonSpent) {
            revert PrivacySpendDecreased(study, msg.sender, epsilonSpent, spend.epsilonSpent);
        }
        if (epsilonSpent > spend.epsilonBudget) {
            revert PrivacyBudgetExceeded(study, msg.sender, epsilonSpent, spend.epsilonBudget);
        }
        account.epsilonSpent = uint56(epsilonSpent); // at most the budget, so it fits
        emit PrivacySpent(declaration);
    }

    /// @inheritdoc IPrivacyBudgets
    function privacyOf(uint64 study, address account)
        external
        view
        returns (uint64 epsilonBudget, uint64 delta, uint64 epsilonSpent)
    {
        PrivacyAccount memory spend = _studies[study].privacy[account];
        return (spend.epsilonBudget, spend.delta, spend.epsilonSpent);
    }

    /// @dev Gives each of `hospitals` the (epsilon, delta) budget of a new study; none without hospitals.
    function _setPrivacyBudgets(
        uint64 study,
        Study storage s,
        address[] calldata hospitals,
        uint64 epsilonBudget,
        uint64 delta
    ) internal override {
        if (hospitals.length == 0) {
            if (epsilonBudget != 0 || delta != 0) revert BadPrivacyBudget(epsilonBudget, delta);
            return;
        }
        if (epsilonBudget == 0 || epsilonBudget > MAX_EPSILON_BUDGET || delta == 0 || delta >= DELTA_SCALE) {
            revert BadPrivacyBudget(epsilonBudget, delta);
        }
        for (uint256 i; i < hospitals.length; ++i) {
            address hospital = hospitals[i];
            if (s.privacy[hospital].epsilonBudget != 0) revert PrivacyBudgetAlreadySet(study, hospital);
            s.privacy[hospital] = PrivacyAccount(uint56(epsilonBudget), delta, 0, 0, 0, 0);
            emit PrivacyBudgetSet(study, hospital, epsilonBudget, delta);
        }
    }
}
