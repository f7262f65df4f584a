// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ConsortiumRoles} from "../access/ConsortiumRoles.sol";
import {Membership} from "../access/Membership.sol";

/// @title KeyRegistry
/// @notice Members' X25519 public keys, to which others wrap data keys. Each publication bumps the
/// member's key version, so wrapped keys can name the key they were made for.
abstract contract KeyRegistry is ConsortiumRoles {
    mapping(address member => bytes32 key) private _encryptionKeys;

    /// @notice `member` published `key` (X25519, 32 bytes) as its key version `version`.
    event EncryptionKeyPublished(address indexed member, bytes32 key, uint32 version);

    /// @notice `account` holds no consortium role.
    error NotAMember(address account);
    /// @notice The all-zero key is not a valid X25519 public key.
    error InvalidEncryptionKey();

    /// @notice Publish the caller's X25519 public key; any role holder may call.
    /// @param key The 32-byte X25519 public key; not zero.
    /// @return version The key's version (1 for the first key, then +1 on each publication).
    function publishEncryptionKey(bytes32 key) external whenNotPaused returns (uint32 version) {
        Membership m = _memberships[msg.sender];
        if (m.roles() == 0) revert NotAMember(msg.sender);
        if (key == 0) revert InvalidEncryptionKey();
        version = m.keyVersion() + 1;
        _encryptionKeys[msg.sender] = key;
        _memberships[msg.sender] = m.withKeyVersion(version);
        emit EncryptionKeyPublished(msg.sender, key, version);
    }

    /// @notice `member`'s current X25519 public key and its version; (0, 0) when none was published.
    /// @param member Any account.
    function encryptionKeyOf(address member) external view returns (bytes32 key, uint32 version) {
        return (_encryptionKeys[member], _memberships[member].keyVersion());
    }
}
