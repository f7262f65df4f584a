// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Consortium} from "../utils/Consortium.sol";
import {Vm} from "../utils/Vm.sol";

/// @notice Properties of the access policy that Halmos proves for every input (symbolic users,
/// records, expiries, times and blocks), not just sampled ones. `check_` functions are Halmos's;
/// forge ignores them. A failing `assert` is a counterexample.
contract AccessSymbolicTest is Consortium {
    Vm internal constant vm = Vm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);

    function setUp() public {
        _deployConsortium();
    }

    /// @notice An account holding no role passes for no record, whatever was attempted for it.
    function check_memberlessNeverPasses(address user, bytes32 record, uint64 expiry, uint256 later) public {
        vm.assume(access.rolesOf(user) == 0);
        vm.prank(hospital);
        (bool granted,) = address(access).call(abi.encodeCall(access.grantAccess, (records[0], user, expiry)));
        granted; // refused or dormant: either way it must not pass
        vm.warp(block.timestamp + (later % 365 days));
        assert(!access.checkAccess(user, record));
    }

    /// @notice While paused, no account passes for any record.
    function check_nothingPassesWhilePaused(address user, bytes32 record) public {
        vm.prank(hospital);
        access.grantAccess(records[0], doctor, uint64(block.timestamp + 1 days));
        vm.prank(guardian);
        access.pause();
        assert(!access.checkAccess(user, record));
    }

    /// @notice A revoked grant never passes again, at any later time.
    function check_revokedGrantNeverPasses(uint64 expiry, uint256 later, bool byPatient) public {
        vm.assume(expiry > block.timestamp);
        address author = byPatient ? patient1 : hospital;
        vm.prank(author);
        access.grantAccess(records[0], doctor, expiry);
        vm.prank(author);
        access.revokeAccess(records[0], doctor);
        vm.warp(block.timestamp + (later % (365 days)));
        assert(!access.checkAccess(doctor, records[0]));
    }

    /// @notice A grant made before the grantee lost its reading role never passes after it, even once
    /// the role is given back in any later block.
    function check_grantBeforeRoleLossNeverPasses(uint64 expiry, uint256 blocks, uint256 later) public {
        vm.assume(expiry > block.timestamp);
        vm.prank(hospital);
        access.grantAccess(records[0], doctor, expiry);
        bytes32 role = access.DOCTOR_ROLE();
        vm.prank(admin);
        access.revokeRole(role, doctor);
        vm.roll(block.number + (blocks % 1000));
        vm.warp(block.timestamp + (later % (365 days)));
        vm.prank(admin);
        access.grantRole(role, doctor);
        assert(!access.checkAccess(doctor, records[0]));
    }

    /// @notice A researcher granted by the hospital alone (no consent from the patient) never passes.
    function check_researcherWithoutConsentNeverPasses(uint64 expiry, uint256 later) public {
        vm.assume(expiry > block.timestamp);
        vm.prank(hospital);
        access.grantAccess(records[0], researcher, expiry);
        vm.roll(block.number + 1);
        vm.warp(block.timestamp + (later % (365 days)));
        assert(!access.checkAccess(researcher, records[0]));
    }

    /// @notice While paused, a member replaces its encryption key (a compromised key must be retired
    /// at once, whatever the new key) but publishes no first key; a stranger publishes nothing.
    function check_pausedKeyPublicationOnlyReplaces(bytes32 first, bytes32 next, bool hasKey) public {
        vm.assume(first != 0 && next != 0);
        uint16 suite = access.KEM_X25519();
        if (hasKey) {
            vm.prank(doctor);
            access.publishEncryptionKey(suite, abi.encodePacked(first));
        }
        vm.prank(guardian);
        access.pause();
        vm.prank(doctor);
        (bool replaced,) =
            address(access).call(abi.encodeCall(access.publishEncryptionKey, (suite, abi.encodePacked(next))));
        assert(replaced == hasKey);
        (bytes32 keyHash,, uint32 version) = access.encryptionKeyOf(doctor);
        assert(version == (hasKey ? 2 : 0));
        if (hasKey) assert(keyHash == keccak256(abi.encodePacked(next)));
        vm.prank(stranger);
        (bool published,) =
            address(access).call(abi.encodeCall(access.publishEncryptionKey, (suite, abi.encodePacked(next))));
        assert(!published);
    }

    /// @notice Only the record's owner or patient can make a grant: any other caller's attempt fails.
    function check_onlyOwnerOrPatientGrants(address caller, address grantee, uint64 expiry) public {
        vm.assume(caller != hospital && caller != patient1);
        vm.prank(caller);
        (bool ok,) = address(access).call(abi.encodeCall(access.grantAccess, (records[0], grantee, expiry)));
        assert(!ok);
    }
}
