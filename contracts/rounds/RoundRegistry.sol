// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Multicall} from "@openzeppelin/contracts/utils/Multicall.sol";
import {IRoundRegistry} from "../interfaces/IRoundRegistry.sol";
import {ConsortiumBound} from "./ConsortiumBound.sol";
import {PrivacyBudgets} from "./PrivacyBudgets.sol";
import {RoundEvaluations} from "./RoundEvaluations.sol";
import {SecureRounds} from "./SecureRounds.sol";
import {StudyRounds} from "./StudyRounds.sol";

/// @title RoundRegistry
/// @notice Federated-learning studies and their rounds as committed artifacts ({IRoundRegistry}):
/// studies, rounds, updates and their chain of custody ({StudyRounds}), hospitals' privacy budgets
/// ({PrivacyBudgets}), secure aggregation run through the chain ({SecureRounds}) and hospitals'
/// evaluations of a study's last model ({RoundEvaluations}).
/// @dev Composed of those units over their shared storage ({RoundState}); roles and pause come from
/// the access policy ({ConsortiumBound}). OpenZeppelin's {Multicall} batches a coordinator's calls.
contract RoundRegistry is IRoundRegistry, StudyRounds, PrivacyBudgets, SecureRounds, RoundEvaluations, Multicall {
    /// @param consortium_ The deployed MedicalAccess whose roles and pause the registry follows.
    constructor(address consortium_) ConsortiumBound(consortium_) {}
}
