// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {MedicalAccess} from "../../../contracts/MedicalAccess.sol";
import {Vm} from "./Vm.sol";

/// @notice A deployed MedicalAccess with the cast every test here shares: an admin, a guardian, two
/// hospitals, two patients (with private keys, to sign), a doctor, a researcher, an emergency holder,
/// a member whose roles change, and a stranger who never holds a role. Three records: two of the
/// first hospital (one per patient) and one of the second hospital for the first patient.
abstract contract Consortium {
    Vm private constant _vm = Vm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);

    bytes32 internal constant GRANT_TYPEHASH = keccak256(
        "Grant(bytes32 record,address grantee,uint64 expiry,uint256 nonce,uint64 issuedBlock,uint256 deadline)"
    );
    bytes32 internal constant CONSENT_TYPEHASH = keccak256(
        "Consent(bytes32 record,address researcher,uint64 expiry,uint256 nonce,uint64 issuedBlock,uint256 deadline)"
    );

    uint256 internal constant PATIENT1_KEY = 0xA11CE;
    uint256 internal constant PATIENT2_KEY = 0xB0B;

    MedicalAccess internal access;
    address internal admin = address(0xAD);
    address internal guardian = address(0x6A);
    address internal hospital = address(0x401);
    address internal hospital2 = address(0x402);
    address internal patient1;
    address internal patient2;
    address internal doctor = address(0xD0C);
    address internal researcher = address(0x5E5);
    address internal medic = address(0xE3E);
    address internal shifter = address(0x5F7);
    address internal stranger = address(0x5742);

    bytes32[3] internal records;

    function _deployConsortium() internal {
        patient1 = _vm.addr(PATIENT1_KEY);
        patient2 = _vm.addr(PATIENT2_KEY);
        access = new MedicalAccess(admin);
        _vm.startPrank(admin);
        access.grantRole(access.GUARDIAN_ROLE(), guardian);
        access.grantRole(access.DATA_OWNER_ROLE(), hospital);
        access.grantRole(access.DATA_OWNER_ROLE(), hospital2);
        access.grantRole(access.PATIENT_ROLE(), patient1);
        access.grantRole(access.PATIENT_ROLE(), patient2);
        access.grantRole(access.DOCTOR_ROLE(), doctor);
        access.grantRole(access.RESEARCHER_ROLE(), researcher);
        access.grantRole(access.EMERGENCY_ROLE(), medic);
        access.grantRole(access.DOCTOR_ROLE(), shifter);
        _vm.stopPrank();
        _vm.prank(hospital);
        records[0] = access.registerRecord(cid(1), patient1);
        _vm.prank(hospital);
        records[1] = access.registerRecord(cid(2), patient2);
        _vm.prank(hospital2);
        records[2] = access.registerRecord(cid(3), patient1);
    }

    /// @notice A distinct binary CIDv1 (raw, sha2-256) per `n`.
    function cid(uint256 n) internal pure returns (bytes memory) {
        return abi.encodePacked(hex"01551220", bytes32(n));
    }

    function domainSeparator() internal view returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("MedicalAccess"),
                keccak256("1"),
                block.chainid,
                address(access)
            )
        );
    }

    function keyOf(address patient) internal view returns (uint256) {
        return patient == patient1 ? PATIENT1_KEY : PATIENT2_KEY;
    }

    function signStruct(address patient, bytes32 structHash) internal view returns (bytes memory) {
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
        (uint8 v, bytes32 r, bytes32 s) = _vm.sign(keyOf(patient), digest);
        return abi.encodePacked(r, s, v);
    }

    /// @notice `patient`'s signed grant, issued having seen block `issuedBlock`.
    function signGrant(
        address patient,
        bytes32 record,
        address grantee,
        uint64 expiry,
        uint256 nonce,
        uint64 issuedBlock,
        uint256 deadline
    ) internal view returns (bytes memory) {
        return signStruct(
            patient, keccak256(abi.encode(GRANT_TYPEHASH, record, grantee, expiry, nonce, issuedBlock, deadline))
        );
    }

    /// @notice `patient`'s signed consent until `expiry` (0: withdrawal), issued having seen `issuedBlock`.
    function signConsent(
        address patient,
        bytes32 record,
        address researcher_,
        uint64 expiry,
        uint256 nonce,
        uint64 issuedBlock,
        uint256 deadline
    ) internal view returns (bytes memory) {
        return signStruct(
            patient,
            keccak256(abi.encode(CONSENT_TYPEHASH, record, researcher_, expiry, nonce, issuedBlock, deadline))
        );
    }
}
