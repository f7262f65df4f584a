// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IKeyRegistry
/// @notice Members' encryption public keys: a commitment in storage, the bytes in events.
interface IKeyRegistry {
    /// @notice `member` published `key`, of HPKE KEM `suite`, as its key version `version`.
    event EncryptionKeyPublished(address indexed member, uint32 indexed version, uint16 suite, bytes key);

    /// @notice `account` holds no consortium role.
    error NotAMember(address account);
    /// @notice The all-zero key is not a valid X25519 public key.
    error InvalidEncryptionKey();
    /// @notice `suite` is not a KEM this registry accepts ({KEM_X25519}, {KEM_MLKEM768_X25519}).
    error UnsupportedKeySuite(uint16 suite);
    /// @notice A `suite` key is `expected` bytes long, not `length`.
    error EncryptionKeyLength(uint16 suite, uint256 length, uint256 expected);

    /// @notice HPKE KEM id of DHKEM(X25519, HKDF-SHA256): 32-byte keys.
    function KEM_X25519() external view returns (uint16);

    /// @notice HPKE KEM id of MLKEM768-X25519 (X-Wing): 1,216-byte keys (ML-KEM-768 || X25519).
    function KEM_MLKEM768_X25519() external view returns (uint16);

    /// @notice Publish the caller's public key; any role holder may call. Replacing a key runs while
    /// paused: a member whose key is compromised must be able to retire it at once (shares made after
    /// the replacement are wrapped to the new key, so it only narrows exposure). A first key waits
    /// for the contract to resume, as every new participation does.
    /// @param suite The key's HPKE KEM id: {KEM_X25519} or {KEM_MLKEM768_X25519}.
    /// @param key The raw public key: 32 bytes (X25519, not zero) or 1,216 bytes (MLKEM768-X25519).
    /// @return version The key's version (1 for the first key, then +1 on each publication).
    function publishEncryptionKey(uint16 suite, bytes calldata key) external returns (uint32 version);

    /// @notice The commitment to `member`'s current key: its keccak256, HPKE KEM id and version;
    /// (0, 0, 0) when none was published. The key's bytes are in the {EncryptionKeyPublished} event
    /// of (`member`, `version`).
    /// @param member Any account.
    function encryptionKeyOf(address member) external view returns (bytes32 keyHash, uint16 suite, uint32 version);
}
