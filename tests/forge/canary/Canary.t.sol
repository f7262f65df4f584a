// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {TestBase} from "../utils/Vm.sol";
import {Consortium} from "../utils/Consortium.sol";

/// @notice Properties that are false on purpose. tests/contracts/test_forge.py runs them apart from
/// the real suite and expects forge to report the fuzz failure and Halmos a counterexample, so that a
/// harness that silently passes everything cannot go unnoticed.
contract CanaryTest is TestBase, Consortium {
    function setUp() public {
        _deployConsortium();
        vm.prank(hospital);
        access.grantAccess(records[0], doctor, uint64(block.timestamp + 1 days));
        vm.roll(block.number + 1);
    }

    /// @notice False for almost every input: forge must find one.
    function testFuzz_canaryMustFail(uint256 x) public pure {
        assertTrue(x < 1000, "canary: the fuzzer found the input it was meant to find");
    }

    /// @notice False for the doctor granted in setUp: Halmos must name it.
    function check_canaryMustFail(address user) public view {
        assert(!access.checkAccess(user, records[0]));
    }
}
