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
        uint64 issued = uint64(block.number - 1); // the latest mined block the patient saw
        bytes32 structHash =
            keccak256(abi.encode(GRANT_TYPEHASH, records[0], doctor, expiry, uint256(7), issued, deadline));
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        vm.roll(block.number + 1);
        vm.prank(stranger);
        (bool ok,) = address(access).call(
            abi.encodeCall(
                access.grantAccessBySig,
                (records[0], doctor, expiry, 7, issued, deadline, abi.encodePacked(r, s, v))
            )
        );
        assertFalse(ok, "a foreign signature granted access");
        assertFalse(access.checkAccess(doctor, records[0]), "a foreign signature granted access");
    }

    /// @notice The patient's own signature, relayed by a stranger, grants access with consent (the
    /// researcher passes), once only.
    function testFuzz_patientSignatureGrantsOnce(uint64 duration, uint256 nonce) public {
        uint64 expiry = uint64(block.timestamp + 1 + duration % (365 days));
        uint256 deadline = block.timestamp + 1 days;
        uint64 issued = uint64(block.number - 1); // the latest mined block the patient saw
        bytes memory sig = signGrant(patient1, records[0], researcher, expiry, nonce, issued, deadline);
        vm.roll(block.number + 1);
        vm.prank(stranger);
        access.grantAccessBySig(records[0], researcher, expiry, nonce, issued, deadline, sig);
        vm.roll(block.number + 1);
        assertTrue(access.checkAccess(researcher, records[0]), "the signed grant did not pass");
        vm.prank(stranger);
        (bool replayed,) = address(access).call(
            abi.encodeCall(access.grantAccessBySig, (records[0], researcher, expiry, nonce, issued, deadline, sig))
        );
        assertFalse(replayed, "a signature was relayed twice");
    }

    /// @notice A grant signature held back past a revocation, a withdrawal of consent, the grantee's
    /// loss of its role (even if given back) or the patient's cancellation is refused when relayed,
    /// and the grantee does not pass (issue 11, item 1).
    function testFuzz_heldBackGrantSignatureIsRefused(uint8 what, uint256 blocksLater, uint256 nonce) public {
        what %= 4;
        uint64 expiry = uint64(block.timestamp + 30 days);
        uint256 deadline = block.timestamp + 30 days;
        uint64 issued = uint64(block.number - 1); // the latest mined block the patient saw
        address grantee = what == 1 ? researcher : doctor;
        bytes memory sig = signGrant(patient1, records[0], grantee, expiry, nonce, issued, deadline);
        vm.roll(block.number + blocksLater % 3);
        if (what == 0) {
            vm.startPrank(patient1);
            access.grantAccess(records[0], grantee, expiry);
            access.revokeAccess(records[0], grantee);
            vm.stopPrank();
        } else if (what == 1) {
            vm.prank(hospital);
            access.grantAccess(records[0], grantee, expiry);
            vm.prank(patient1);
            access.setConsent(records[0], grantee, 0);
        } else if (what == 2) {
            bytes32 role = access.DOCTOR_ROLE();
            vm.startPrank(admin);
            access.revokeRole(role, grantee);
            access.grantRole(role, grantee);
            vm.stopPrank();
        } else {
            vm.prank(patient1);
            access.cancelSignature(nonce);
        }
        vm.roll(block.number + 1 + blocksLater % 5);
        vm.prank(stranger);
        (bool ok,) = address(access).call(
            abi.encodeCall(access.grantAccessBySig, (records[0], grantee, expiry, nonce, issued, deadline, sig))
        );
        assertFalse(ok, "a held-back signature was relayed");
        assertFalse(access.checkAccess(grantee, records[0]), "a held-back signature restored access");
    }

    /// @notice Consent is bounded by the expiry the patient agreed to: the hospital extending the
    /// grant does not extend the researcher's access (issue 11, item 2).
    function testFuzz_consentBoundedByThePatientsExpiry(uint64 agreed, uint64 extension, uint256 probe) public {
        uint64 until = uint64(block.timestamp + 1 + agreed % (365 days));
        uint64 extended = uint64(until + 1 + extension % (3650 days));
        vm.prank(patient1);
        access.grantAccess(records[0], researcher, until);
        vm.roll(block.number + 1);
        vm.prank(hospital);
        access.grantAccess(records[0], researcher, extended);
        vm.roll(block.number + 1);
        uint256 at = until + probe % (extended - until);
        vm.warp(at);
        assertFalse(access.checkAccess(researcher, records[0]), "consent outlived the patient's expiry");
    }

    /// @notice A hospital's grant to a researcher without consent does not wake when the researcher
    /// is made a doctor (issue 11, item 5); a grant to a member with no reading role is refused.
    function testFuzz_dormantGrantsNeverWake(uint256 blocksLater) public {
        vm.prank(hospital);
        access.grantAccess(records[0], researcher, uint64(block.timestamp + 30 days));
        vm.roll(block.number + 1 + blocksLater % 10);
        bytes32 role = access.DOCTOR_ROLE();
        vm.prank(admin);
        access.grantRole(role, researcher);
        vm.roll(block.number + 1);
        assertFalse(access.checkAccess(researcher, records[0]), "a dormant grant woke");
        vm.prank(hospital);
        (bool ok,) = address(access).call(
            abi.encodeCall(access.grantAccess, (records[0], stranger, uint64(block.timestamp + 1 days)))
        );
        assertFalse(ok, "a grant to a member without a reading role was accepted");
    }

    /// @notice While paused, every step that only reduces access runs (issue 11, item 6), and nothing passes.
    function testFuzz_reductionsRunWhilePaused(uint8 which) public {
        vm.prank(hospital);
        access.grantAccess(records[0], doctor, uint64(block.timestamp + 1 days));
        vm.prank(patient1);
        access.grantAccess(records[0], researcher, uint64(block.timestamp + 1 days));
        vm.prank(medic);
        access.openEmergencyAccess(records[0], keccak256("reason"), 1 hours);
        vm.roll(block.number + 1);
        vm.prank(guardian);
        access.pause();
        which %= 4;
        if (which == 0) {
            vm.prank(patient1);
            access.revokeAccess(records[0], doctor);
        } else if (which == 1) {
            vm.prank(patient1);
            access.setConsent(records[0], researcher, 0);
        } else if (which == 2) {
            vm.prank(hospital);
            access.closeEmergencyAccess(records[0], medic);
        } else {
            vm.prank(hospital);
            access.retireRecord(records[0]);
        }
        vm.prank(guardian);
        access.unpause();
        address[3] memory reduced = [doctor, researcher, medic];
        if (which < 3) {
            assertFalse(access.checkAccess(reduced[which], records[0]), "a reduction made while paused was undone");
        } else {
            assertFalse(access.checkAccess(doctor, records[0]), "a record retired while paused still passes");
        }
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
