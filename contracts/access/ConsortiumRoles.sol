// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {Membership} from "./Membership.sol";
import {IConsortiumRoles} from "../interfaces/IConsortiumRoles.sol";

/// @title ConsortiumRoles
/// @notice The consortium's roles on OpenZeppelin's access control, plus a guardian pause.
/// @dev Every role grant and revocation is mirrored into one packed {Membership} word per account, so
/// policy checks read an account's roles in one SLOAD. Losing a reading role (doctor, researcher,
/// emergency) stamps the account with the current block, which voids every grant, consent and
/// break-glass access it held at once: a member who is removed and later re-admitted starts with none. The consortium admin is
/// `DEFAULT_ADMIN_ROLE` and administers every role.
/// Members are not enumerable on chain: each grant and revocation is a `RoleGranted`/`RoleRevoked`
/// event, and clients list members from their indexed event store. The contract itself only needs to
/// know how many admins there are (the last one cannot leave), so that is all it counts: an
/// enumerable set would cost every enrolment two more storage slots.
abstract contract ConsortiumRoles is AccessControl, Pausable, IConsortiumRoles {
    /// @inheritdoc IConsortiumRoles
    bytes32 public constant GUARDIAN_ROLE = keccak256("GUARDIAN_ROLE");
    /// @inheritdoc IConsortiumRoles
    bytes32 public constant DATA_OWNER_ROLE = keccak256("DATA_OWNER_ROLE");
    /// @inheritdoc IConsortiumRoles
    bytes32 public constant DOCTOR_ROLE = keccak256("DOCTOR_ROLE");
    /// @inheritdoc IConsortiumRoles
    bytes32 public constant RESEARCHER_ROLE = keccak256("RESEARCHER_ROLE");
    /// @inheritdoc IConsortiumRoles
    bytes32 public constant PATIENT_ROLE = keccak256("PATIENT_ROLE");
    /// @inheritdoc IConsortiumRoles
    bytes32 public constant EMERGENCY_ROLE = keccak256("EMERGENCY_ROLE");
    /// @inheritdoc IConsortiumRoles
    bytes32 public constant COORDINATOR_ROLE = keccak256("COORDINATOR_ROLE");
    /// @inheritdoc IConsortiumRoles
    bytes32 public constant PARTICIPANT_ROLE = keccak256("PARTICIPANT_ROLE");

    uint256 internal constant _ADMIN_BIT = 1 << 0;
    uint256 internal constant _GUARDIAN_BIT = 1 << 1;
    uint256 internal constant _DATA_OWNER_BIT = 1 << 2;
    uint256 internal constant _DOCTOR_BIT = 1 << 3;
    uint256 internal constant _RESEARCHER_BIT = 1 << 4;
    uint256 internal constant _PATIENT_BIT = 1 << 5;
    uint256 internal constant _EMERGENCY_BIT = 1 << 6;
    uint256 internal constant _COORDINATOR_BIT = 1 << 7;
    uint256 internal constant _PARTICIPANT_BIT = 1 << 8;
    /// @dev Roles whose loss voids the account's grants.
    uint256 internal constant _READING_BITS = _DOCTOR_BIT | _RESEARCHER_BIT | _EMERGENCY_BIT;
    /// @dev Federated-learning roles, whose losses are counted (see {learningRoleLosses}).
    uint256 internal constant _LEARNING_BITS = _COORDINATOR_BIT | _PARTICIPANT_BIT;

    mapping(address account => Membership) internal _memberships;
    /// @dev Data-owner ids are handed out on an account's first data-owner grant and never reused,
    /// so a record names its owner in 32 bits next to its patient.
    mapping(uint32 ownerId => address account) internal _ownerAccounts;
    uint32 private _ownerCount;
    /// @dev Losses of a learning role so far (packed beside `_ownerCount`): see {learningRoleLosses}.
    uint64 private _learningRoleLosses;
    /// @dev How many accounts hold `DEFAULT_ADMIN_ROLE` (packed beside `_ownerCount`).
    uint32 private _adminCount;

    /// @param admin The first consortium admin (holds `DEFAULT_ADMIN_ROLE`).
    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @inheritdoc IConsortiumRoles
    function pause() external onlyRole(GUARDIAN_ROLE) {
        _pause();
    }

    /// @inheritdoc IConsortiumRoles
    function unpause() external onlyRole(GUARDIAN_ROLE) {
        _unpause();
    }

    /// @inheritdoc IConsortiumRoles
    function rolesOf(address account) external view returns (uint256) {
        return _memberships[account].roles();
    }

    /// @inheritdoc IConsortiumRoles
    function rolesAndPauseOf(address account) external view returns (uint256) {
        return _memberships[account].roles() | (paused() ? 1 << 255 : 0);
    }

    /// @inheritdoc IConsortiumRoles
    function holdersOf(address[] calldata accounts, uint256 bits) external view returns (uint256 held) {
        if (accounts.length > 256) revert TooManyAccounts(accounts.length);
        bits &= 0xffff; // the roles bitmap of a {Membership}
        // A loop of cold reads, run at every commit of a round whose participant was removed: in
        // assembly it costs little more than the reads. An address with dirty high bits is no member.
        assembly ("memory-safe") {
            mstore(0x20, _memberships.slot)
            for { let i := 0 } lt(i, accounts.length) { i := add(i, 1) } {
                mstore(0x00, calldataload(add(accounts.offset, shl(5, i))))
                if and(sload(keccak256(0x00, 0x40)), bits) { held := or(held, shl(i, 1)) }
            }
        }
    }

    /// @inheritdoc IConsortiumRoles
    function learningRoleLosses() external view returns (uint256) {
        return _learningRoleLosses;
    }

    /// @inheritdoc IConsortiumRoles
    function totalAdmins() external view returns (uint256) {
        return _adminCount;
    }

    /// @inheritdoc IConsortiumRoles
    function dataOwnerCount() external view returns (uint256) {
        return _ownerCount;
    }

    /// @inheritdoc IConsortiumRoles
    function dataOwnerAt(uint32 ownerId) external view returns (address) {
        return _ownerAccounts[ownerId];
    }

    /// @dev Refuses unknown role ids and the zero address, and refuses new members while paused,
    /// except guardians: only a guardian can unpause, so one must be appointable while paused.
    function _grantRole(bytes32 role, address account) internal virtual override returns (bool granted) {
        uint256 bit = _roleBit(role);
        if (bit == 0) revert UnknownRole(role);
        if (account == address(0)) revert ZeroAddressMember();
        if (bit != _GUARDIAN_BIT) _requireNotPaused();
        granted = super._grantRole(role, account);
        if (granted) {
            Membership m = _memberships[account];
            m = m.withRoles(m.roles() | bit);
            if (bit == _DATA_OWNER_BIT && m.ownerId() == 0) {
                uint32 id = ++_ownerCount;
                _ownerAccounts[id] = account;
                m = m.withOwnerId(id);
            }
            _memberships[account] = m;
            if (bit == _ADMIN_BIT) ++_adminCount;
        }
    }

    /// @dev Allowed while paused. Losing a reading role voids what the account was granted so far.
    /// The last admin cannot be removed, nor renounce.
    function _revokeRole(bytes32 role, address account) internal virtual override returns (bool revoked) {
        if (role == DEFAULT_ADMIN_ROLE && _adminCount == 1 && hasRole(role, account)) {
            revert LastAdmin(account);
        }
        revoked = super._revokeRole(role, account);
        if (revoked) {
            uint256 bit = _roleBit(role);
            Membership m = _memberships[account];
            m = m.withRoles(m.roles() & ~bit);
            if (bit & _READING_BITS != 0) m = m.withLostAt(uint40(block.number));
            _memberships[account] = m;
            if (bit & _LEARNING_BITS != 0) ++_learningRoleLosses;
            if (bit == _ADMIN_BIT) --_adminCount;
        }
    }

    function _roleBit(bytes32 role) internal pure returns (uint256) {
        if (role == DEFAULT_ADMIN_ROLE) return _ADMIN_BIT;
        if (role == GUARDIAN_ROLE) return _GUARDIAN_BIT;
        if (role == DATA_OWNER_ROLE) return _DATA_OWNER_BIT;
        if (role == DOCTOR_ROLE) return _DOCTOR_BIT;
        if (role == RESEARCHER_ROLE) return _RESEARCHER_BIT;
        if (role == PATIENT_ROLE) return _PATIENT_BIT;
        if (role == EMERGENCY_ROLE) return _EMERGENCY_BIT;
        if (role == COORDINATOR_ROLE) return _COORDINATOR_BIT;
        if (role == PARTICIPANT_ROLE) return _PARTICIPANT_BIT;
        return 0;
    }

    /// @dev Reverts unless `m` holds the role whose bit is `bit`.
    function _requireRoleBit(Membership m, uint256 bit, bytes32 role, address account) internal pure {
        if (!m.holdsAny(bit)) revert AccessControlUnauthorizedAccount(account, role);
    }
}
