// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {TestBase} from "../utils/Vm.sol";
import {Consortium} from "../utils/Consortium.sol";

/// @notice Fuzzed scenarios of the access policy, each a few transactions (often in one block) with
/// fuzzed expiries, times, blocks and signers.
contract AccessFuzzTest is TestBase, Consortium {
    function setUp() public {
        _deployConsortium();
        vm.roll(100);
        vm.warp(1_800_000_000);
    }

    /// @notice A grant passes strictly before its expiry and never at or after it.
    function testFuzz_grantPassesUntilExpiry(uint64 duration, uint256 probe) public {
        duration = uint64(1 + duration % (3650 days));
        uint64 expiry = uint64(block.timestamp) + duration;
        vm.prank(hospital);
        access.grantAccess(records[0], doctor, expiry);
        vm.roll(block.number + 1);
        uint256 at = block.timestamp + probe % (2 * uint256(duration));
        vm.warp(at);
        assertEq(access.checkAccess(doctor, records[0]) ? 1 : 0, at < expiry ? 1 : 0, "pass iff before expiry");
    }

    /// @notice Losing the doctor role voids the grant, whether the role comes back in the same block
    /// (admin's revoke and grant in one multicall) or any later one.
    function testFuzz_roleLossVoidsGrant(uint256 blocksLater, bool inOneMulticall) public {
        vm.prank(hospital);
        access.grantAccess(records[0], doctor, uint64(block.timestamp + 30 days));
        bytes32 role = access.DOCTOR_ROLE();
        if (inOneMulticall) {
            bytes[] memory calls = new bytes[](2);
            calls[0] = abi.encodeCall(access.revokeRole, (role, doctor));
            calls[1] = abi.encodeCall(access.grantRole, (role, doctor));
            vm.prank(admin);
            access.multicall(calls);
        } else {
            vm.prank(admin);
            access.revokeRole(role, doctor);
        }
        vm.roll(block.number + blocksLater % 1000);
        if (!inOneMulticall) {
            vm.prank(admin);
            access.grantRole(role, doctor);
        }
        assertFalse(access.checkAccess(doctor, records[0]), "a grant survived the loss of the role");
    }

    /// @notice A grant made in the block of the role's loss, after it, does not pass; one made in a
    /// later block does.
    function testFuzz_regrantAfterRoleLoss(uint256 blocksLater) public {
        bytes32 role = access.DOCTOR_ROLE();
        vm.startPrank(admin);
        access.revokeRole(role, doctor);
        access.grantRole(role, doctor);
        vm.stopPrank();
        uint256 gap = blocksLater % 3;
        vm.roll(block.number + gap);
        vm.prank(hospital);
        access.grantAccess(records[0], doctor, uint64(block.timestamp + 1 days));
        assertEq(access.checkAccess(doctor, records[0]) ? 1 : 0, gap > 0 ? 1 : 0, "regrant after loss");
    }

    /// @notice Nothing passes while paused, whatever was granted before.
    function testFuzz_pausedNothingPasses(uint8 who, uint8 which) public {
        vm.prank(hospital);
        access.grantAccess(records[0], doctor, uint64(block.timestamp + 1 days));
        vm.prank(patient1);
        access.grantAccess(records[0], researcher, uint64(block.timestamp + 1 days));
        vm.prank(medic);
        access.openEmergencyAccess(records[0], keccak256("reason"), 1 hours);
        vm.roll(block.number + 1);
        vm.prank(guardian);
        access.pause();
        address[4] memory users = [doctor, researcher, medic, stranger];
        assertFalse(access.checkAccess(users[who % 4], records[which % 3]), "passed while paused");
    }

    /// @notice A grant signature by anyone but the record's patient is refused.
    function testFuzz_foreignSignatureRefused(uint256 key) public {
        key = 1 + key % (0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140);
        vm.assume(key != PATIENT1_KEY);
        uint64 expiry = uint64(block.timestamp + 1 days);
        uint256 deadline = block.timestamp + 1 days;
        uint256 nonce = access.nonces(patient1);
        bytes32 structHash = keccak256(abi.encode(GRANT_TYPEHASH, records[0], doctor, expiry, nonce, deadline));
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        vm.prank(stranger);
        (bool ok,) = address(access).call(
            abi.encodeCall(
                access.grantAccessBySig, (records[0], doctor, expiry, nonce, deadline, abi.encodePacked(r, s, v))
            )
        );
        assertFalse(ok, "a foreign signature granted access");
        assertFalse(access.checkAccess(doctor, records[0]), "a foreign signature granted access");
    }

    /// @notice The patient's own signature, relayed by a stranger, grants access with consent (the
    /// researcher passes), once only.
    function testFuzz_patientSignatureGrantsOnce(uint64 duration) public {
        uint64 expiry = uint64(block.timestamp + 1 + duration % (365 days));
        uint256 deadline = block.timestamp + 1 days;
        uint256 nonce = access.nonces(patient1);
        bytes memory sig = signGrant(patient1, records[0], researcher, expiry, nonce, deadline);
        vm.prank(stranger);
        access.grantAccessBySig(records[0], researcher, expiry, nonce, deadline, sig);
        vm.roll(block.number + 1);
        assertTrue(access.checkAccess(researcher, records[0]), "the signed grant did not pass");
        vm.prank(stranger);
        (bool replayed,) = address(access).call(
            abi.encodeCall(access.grantAccessBySig, (records[0], researcher, expiry, nonce, deadline, sig))
        );
        assertFalse(replayed, "a signature was relayed twice");
    }

    /// @notice A key can be shared only with someone who may read; granting and sharing in one
    /// multicall works, sharing with a stranger never does.
    function testFuzz_keySharesFollowThePolicy(bool grantFirst, uint8 readerSeed) public {
        address reader = [doctor, researcher, stranger][readerSeed % 3];
        bytes[] memory calls = new bytes[](grantFirst ? 2 : 1);
        address[] memory to = new address[](1);
        to[0] = reader;
        bytes[] memory wrapped = new bytes[](1);
        wrapped[0] = hex"01";
        if (grantFirst) {
            calls[0] = abi.encodeCall(access.grantAccess, (records[0], reader, uint64(block.timestamp + 1 days)));
        }
        calls[calls.length - 1] = abi.encodeCall(access.shareDataKeys, (records[0], 1, to, wrapped));
        vm.prank(hospital);
        (bool ok,) = address(access).call(abi.encodeCall(access.multicall, (calls)));
        assertEq(ok ? 1 : 0, grantFirst && reader == doctor ? 1 : 0, "key shared against the policy");
    }
}
