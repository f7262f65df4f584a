// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ConsortiumRoles} from "../access/ConsortiumRoles.sol";
import {Membership} from "../access/Membership.sol";
import {IKeyRegistry} from "../interfaces/IKeyRegistry.sol";

/// @title KeyRegistry
/// @notice Members' HPKE (RFC 9180) public keys, to which others wrap data keys. A key is X25519
/// (32 bytes) or the hybrid post-quantum MLKEM768-X25519 (1,216 bytes), named by its HPKE KEM id.
/// Storage keeps only a commitment, `keccak256(key)` with the key's suite and version (packed in the
/// member's {Membership} word); the key bytes travel in {EncryptionKeyPublished}, and clients check
/// them against the commitment. Each publication bumps the member's key version, so wrapped keys can
/// name the key they were made for.
abstract contract KeyRegistry is ConsortiumRoles, IKeyRegistry {
    /// @inheritdoc IKeyRegistry
    uint16 public constant KEM_X25519 = 0x0020;
    /// @inheritdoc IKeyRegistry
    uint16 public constant KEM_MLKEM768_X25519 = 0x647a;

    mapping(address member => bytes32 keyHash) private _keyHashes;

    /// @inheritdoc IKeyRegistry
    function publishEncryptionKey(uint16 suite, bytes calldata key) external returns (uint32 version) {
        Membership m = _memberships[msg.sender];
        if (m.roles() == 0) revert NotAMember(msg.sender);
        if (m.keyVersion() == 0) _requireNotPaused();
        uint256 expected = _keyLength(suite);
        if (key.length != expected) revert EncryptionKeyLength(suite, key.length, expected);
        if (suite == KEM_X25519 && bytes32(key) == 0) revert InvalidEncryptionKey();
        version = m.keyVersion() + 1;
        _keyHashes[msg.sender] = keccak256(key);
        _memberships[msg.sender] = m.withKey(version, suite);
        emit EncryptionKeyPublished(msg.sender, version, suite, key);
    }

    /// @inheritdoc IKeyRegistry
    function encryptionKeyOf(address member) external view returns (bytes32 keyHash, uint16 suite, uint32 version) {
        Membership m = _memberships[member];
        return (_keyHashes[member], m.keySuite(), m.keyVersion());
    }

    function _keyLength(uint16 suite) private pure returns (uint256) {
        if (suite == KEM_X25519) return 32;
        if (suite == KEM_MLKEM768_X25519) return 1216;
        revert UnsupportedKeySuite(suite);
    }
}
