// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Multicall} from "@openzeppelin/contracts/utils/Multicall.sol";
import {IRoundRegistry} from "../interfaces/IRoundRegistry.sol";
import {ConsortiumBound} from "./ConsortiumBound.sol";
import {PrivacyBudgets} from "./PrivacyBudgets.sol";
import {SecureRounds} from "./SecureRounds.sol";
import {StudyRounds} from "./StudyRounds.sol";

/// @title RoundRegistry
/// @notice Federated-learning studies and their rounds as committed artifacts ({IRoundRegistry}):
/// studies, rounds, updates and their chain of custody ({StudyRounds}), hospitals' privacy budgets
/// ({PrivacyBudgets}) and secure aggregation run through the chain ({SecureRounds}).
/// @dev Composed of those units over their shared storage ({RoundState}); roles and pause come from
/// the access policy ({ConsortiumBound}). OpenZeppelin's {Multicall} batches a coordinator's calls.
contract RoundRegistry is IRoundRegistry, StudyRounds, PrivacyBudgets, SecureRounds, Multicall {
    /// @param consortium_ The deployed MedicalAccess whose roles and pause the registry follows.
    constructor(address consortium_) ConsortiumBound(consortium_) {}
}
