// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ISecureRounds} from "../../../contracts/interfaces/ISecureRounds.sol";
import {IStudyRounds} from "../../../contracts/interfaces/IStudyRounds.sol";
import {RoundRegistry} from "../../../contracts/rounds/RoundRegistry.sol";
import {TestBase} from "../utils/Vm.sol";
import {RoundsHandler} from "./RoundsHandler.sol";

/// @notice The round registry's properties, checked by forge after every step of random sequences
/// of {RoundsHandler} calls (opens, updates, secure postings and phase closes, commits, cancels, role
/// changes, pauses, time). Each invariant is a campaign of its own, so a failure names the property.
contract RoundsInvariantsTest is TestBase {
    RoundsHandler internal handler;
    RoundRegistry internal rounds;

    function setUp() public {
        handler = new RoundsHandler();
        rounds = handler.rounds();
        targetContract(address(handler));
    }

    /// @notice Chain of custody: every round's base is the study's latest model when it opened, each
    /// committed round holds exactly the aggregate its coordinator committed, and the study's latest
    /// model is its last committed round's aggregate (the genesis model before any).
    /// forge-config: default.invariant.runs = 8
    function invariant_custodyChains() public {
        _sync();
        for (uint256 k; k < handler.studyCount(); ++k) {
            uint64 study = handler.studies(k);
            (,, uint32 roundCount, uint32 latestRound, bytes32 genesis,) = rounds.studyOf(study);
            bytes32 latest = genesis;
            uint32 lastCommitted;
            for (uint32 round = 1; round <= roundCount; ++round) {
                RoundsHandler.GhostRound memory g = handler.ghost(k, round);
                (IStudyRounds.RoundStatus status,,, bytes32 base,,,, bytes32 aggregate) = rounds.roundOf(study, round);
                assertTrue(base == g.base, "a round's base is not the latest model at its opening");
                if (status == IStudyRounds.RoundStatus.Committed) {
                    assertTrue(aggregate == g.aggregate && aggregate != 0, "a committed aggregate differs");
                    latest = aggregate;
                    lastCommitted = round;
                } else {
                    assertTrue(g.aggregate == 0, "the registry lost a commit");
                }
            }
            (uint32 modelRound, bytes32 model) = rounds.latestModel(study);
            assertEq(modelRound, lastCommitted, "the latest model is not the last committed round");
            assertEq(latestRound, lastCommitted, "the study's latest round is not its last commit");
            assertTrue(model == latest, "the latest model's commitment differs");
        }
    }

    /// @notice Quorum: a committed round counted at least the study's quorum and no more updates than
    /// were submitted; only the last round of a study may be open.
    /// forge-config: default.invariant.runs = 8
    function invariant_quorumHolds() public {
        _sync();
        for (uint256 k; k < handler.studyCount(); ++k) {
            uint64 study = handler.studies(k);
            (, uint16 minUpdates, uint32 roundCount,,,) = rounds.studyOf(study);
            for (uint32 round = 1; round <= roundCount; ++round) {
                (IStudyRounds.RoundStatus status,,,,, uint16 updateCount, uint16 counted,) =
                    rounds.roundOf(study, round);
                RoundsHandler.GhostRound memory g = handler.ghost(k, round);
                assertEq(updateCount, g.submitted, "the registry's update count differs from the updates taken");
                if (status == IStudyRounds.RoundStatus.Committed) {
                    assertTrue(counted >= minUpdates, "a round committed below its quorum");
                    assertTrue(counted <= updateCount, "a round counted more updates than it took");
                }
                if (round < roundCount) {
                    assertTrue(status != IStudyRounds.RoundStatus.Open, "two rounds of a study are open");
                }
            }
        }
    }

    /// @notice Secure rounds: the phase only moves forward, masked inputs are taken in their phase
    /// only, and a round commits only once every phase is closed.
    /// forge-config: default.invariant.runs = 8
    function invariant_securePhasesInOrder() public {
        _sync();
        uint64 study = handler.studies(1);
        (,, uint32 roundCount,,,) = rounds.studyOf(study);
        for (uint32 round = 1; round <= roundCount; ++round) {
            RoundsHandler.GhostRound memory g = handler.ghost(1, round);
            (, ISecureRounds.SecurePhase phase) = rounds.secureRoundOf(study, round);
            assertTrue(uint8(phase) >= g.maxPhase, "a secure round's phase moved back");
            assertFalse(g.updateOutsidePhase, "a masked input was taken outside its phase");
            (IStudyRounds.RoundStatus status,,,,,,,) = rounds.roundOf(study, round);
            if (status == IStudyRounds.RoundStatus.Committed) {
                assertTrue(g.committedFinished, "a secure round committed before its phases closed");
            }
        }
    }

    /// @notice Privacy budgets: no hospital's recorded spend passes its budget, the spend is what it
    /// last declared (it never decreases), and nobody without a budget spends.
    /// forge-config: default.invariant.runs = 8
    function invariant_budgetsHold() public {
        _sync();
        uint64 study = handler.studies(0);
        for (uint256 a; a < 5; ++a) {
            (uint64 budget,, uint64 spent) = rounds.privacyOf(study, handler.actors(a));
            assertTrue(spent <= budget, "a hospital spent past its privacy budget");
            assertEq(spent, handler.ghostSpent(a), "the recorded spend is not the last declaration taken");
            if (a == 4) assertEq(budget, 0, "the stranger has a budget");
        }
    }

    /// @notice No step took what the registry must refuse: a second update from one hospital to a
    /// round, a stranger's update, a phase closed by a hospital, a declared spend below the last, a
    /// sample count in a private update, a sample count over the study's cap.
    /// forge-config: default.invariant.runs = 8
    function invariant_refusalsHold() public view {
        string memory violation = handler.violation();
        assertTrue(bytes(violation).length == 0, violation);
    }

    /// @dev Invariants are read in the handler's block and time.
    function _sync() internal {
        vm.roll(handler.blockNow());
        vm.warp(handler.timeNow());
    }
}
