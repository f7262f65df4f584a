// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ISecureRounds} from "../../../contracts/interfaces/ISecureRounds.sol";
import {IStudyRounds} from "../../../contracts/interfaces/IStudyRounds.sol";
import {RoundRegistry} from "../../../contracts/rounds/RoundRegistry.sol";
import {TestBase} from "../utils/Vm.sol";
import {Consortium} from "../utils/Consortium.sol";

/// @notice A secure round driven by a fuzzed sequence of postings, masked inputs, phase closes and
/// commits, from invited hospitals, an uninvited one and the coordinator, checked step by step
/// against a model: each call passes exactly when the model says it may, the phase only moves
/// forward one step at a time, the survivors are the masked inputs taken before their phase closed,
/// and the round commits only once every phase is closed.
contract RoundsSecureFuzzTest is TestBase, Consortium {
    RoundRegistry internal rounds;
    address internal coordinator = address(0xC00);
    address[3] internal invited = [address(0x1001), address(0x1002), address(0x1003)];
    address internal uninvited = address(0x1004);
    uint64 internal study;

    uint8 internal constant KEYS = 0;
    uint8 internal constant MASKED = 2;
    uint8 internal constant FINISHED = 4;

    function setUp() public {
        _deployConsortium();
        vm.warp(1_800_000_000);
        rounds = new RoundRegistry(address(access));
        vm.startPrank(admin);
        access.grantRole(access.COORDINATOR_ROLE(), coordinator);
        for (uint256 i; i < invited.length; ++i) {
            access.grantRole(access.PARTICIPANT_ROLE(), invited[i]);
        }
        access.grantRole(access.PARTICIPANT_ROLE(), uninvited);
        vm.stopPrank();
        vm.startPrank(coordinator);
        study = rounds.createStudy(
            cid(7),
            bytes32(uint256(7)),
            bytes32(uint256(8)),
            cid(8),
            IStudyRounds.StudyTerms({
                minUpdates: 2,
                maxSamples: 1_000,
                secureAggregation: true,
                graphDegree: 0,
                budgetHospitals: new address[](0),
                epsilonBudget: 0,
                delta: 0
            })
        );
        address[] memory list = new address[](3);
        for (uint256 i; i < 3; ++i) {
            list[i] = invited[i];
        }
        rounds.openRound(study, _commitment(cid(7), bytes32(uint256(7))), uint64(block.timestamp + 1 days), list);
        vm.stopPrank();
    }

    /// @notice Each step: bits 2-3 pick what (post in a phase, submit a masked input, close a phase,
    /// commit); bits 0-1 who posts or submits (three invited hospitals, or an uninvited participant);
    /// closes and commits come from the coordinator unless bit 8 sends them from a hospital. Bits 4-7
    /// name the phase asked for: mostly the current one, so that runs reach the later phases.
    function testFuzz_secureRoundFollowsItsModel(uint16[48] calldata steps) public {
        uint8 phase = KEYS;
        bool[4] memory submitted;
        address[] memory order = new address[](3); // the survivors in submission order
        uint256 survivors;
        bool committed;
        for (uint256 i; i < steps.length; ++i) {
            uint8 what = uint8(steps[i] >> 2) & 3;
            uint8 who = what >= 2 ? (steps[i] & 0x100 != 0 ? uint8(steps[i] % 3) : 3) : uint8(steps[i] & 3);
            uint8 pick = uint8(steps[i] >> 4) & 15;
            uint8 asked = pick < 10 ? phase : pick % 5;
            if (asked > FINISHED) asked = FINISHED;
            address actor = who == 3 ? (what >= 2 ? coordinator : uninvited) : invited[who];
            vm.prank(actor);
            if (what == 0) {
                // A posting: from the invited only, in every phase; never MaskedInputs.
                bool ok = !committed && asked == phase && phase != MASKED && phase != FINISHED && who != 3;
                try rounds.postSecureMessage(study, 1, ISecureRounds.SecurePhase(asked), cid(100 + i), bytes32(i + 1)) {
                    assertTrue(ok, "a posting was taken out of its phase or from outside the roster");
                } catch {
                    assertFalse(ok, "a posting in its phase was refused");
                }
            } else if (what == 1) {
                bool ok = !committed && phase == MASKED && !submitted[who] && who != 3;
                try rounds.submitUpdate(study, 1, cid(200 + i), bytes32(i + 1), 10) {
                    assertTrue(ok, "a masked input was taken out of its phase, twice, or uninvited");
                    submitted[who] = true;
                    order[survivors++] = invited[who];
                } catch {
                    assertFalse(ok, "a masked input in its phase was refused");
                }
            } else if (what == 2) {
                bool ok = !committed && who == 3 && asked == phase && phase != FINISHED;
                try rounds.closeSecurePhase(study, 1, ISecureRounds.SecurePhase(asked)) {
                    assertTrue(ok, "a phase was closed out of order or by someone else");
                    phase++;
                } catch {
                    assertFalse(ok, "the coordinator could not close the current phase");
                }
            } else {
                address[] memory list = new address[](survivors);
                for (uint256 j; j < survivors; ++j) {
                    list[j] = order[j];
                }
                bool ok = !committed && who == 3 && phase == FINISHED && survivors >= 2;
                try rounds.commitAggregate(study, 1, list, 0, cid(300 + i), bytes32(i + 1)) {
                    assertTrue(ok, "a secure round committed before every phase closed");
                    committed = true;
                } catch {
                    assertFalse(ok, "a finished round with its quorum could not commit");
                }
            }
            (bool secure, ISecureRounds.SecurePhase current) = rounds.secureRoundOf(study, 1);
            assertTrue(secure, "the study lost secure aggregation");
            assertEq(uint8(current), phase, "the phase differs from the model's");
        }
    }

    function _commitment(bytes memory cid_, bytes32 digest) private pure returns (bytes32) {
        return keccak256(abi.encode(cid_, digest));
    }
}
