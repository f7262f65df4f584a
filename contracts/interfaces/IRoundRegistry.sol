// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IConsortiumBound} from "./IConsortiumBound.sol";
import {IPrivacyBudgets} from "./IPrivacyBudgets.sol";
import {IRoundEvaluations} from "./IRoundEvaluations.sol";
import {ISecureRounds} from "./ISecureRounds.sol";
import {IStudyRounds} from "./IStudyRounds.sol";

/// @title IRoundRegistry
/// @notice The federated-learning registry's whole ABI, events and errors: studies and rounds
/// ({IStudyRounds}), privacy budgets ({IPrivacyBudgets}), secure rounds ({ISecureRounds}) and
/// evaluation postings ({IRoundEvaluations}), with roles and pause taken from the consortium
/// ({IConsortiumBound}). The registry also takes
/// OpenZeppelin's `multicall(bytes[])`.
interface IRoundRegistry is IConsortiumBound, IStudyRounds, IPrivacyBudgets, ISecureRounds, IRoundEvaluations {}
