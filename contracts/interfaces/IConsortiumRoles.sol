// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IConsortiumRoles
/// @notice The consortium's roles (on OpenZeppelin's access control, {IAccessControl}), their packed
/// bitmaps, the counts other contracts read, and the guardian's pause.
interface IConsortiumRoles {
    /// @notice `role` is not one of the consortium's roles.
    error UnknownRole(bytes32 role);
    /// @notice {holdersOf} answers for at most 256 accounts.
    error TooManyAccounts(uint256 count);
    /// @notice The zero address cannot hold a role.
    error ZeroAddressMember();
    /// @notice `account` is the last consortium admin: removing it (or its renouncing) would leave
    /// every role unmanageable for good.
    error LastAdmin(address account);

    /// @notice May pause and unpause every state change.
    function GUARDIAN_ROLE() external view returns (bytes32);

    /// @notice A hospital: registers records and manages their grants.
    function DATA_OWNER_ROLE() external view returns (bytes32);

    /// @notice A clinician: may read records it was granted.
    function DOCTOR_ROLE() external view returns (bytes32);

    /// @notice A research institution: may read records it was granted and whose patient consented.
    function RESEARCHER_ROLE() external view returns (bytes32);

    /// @notice A data subject: grants, revokes and consents for the records that name it.
    function PATIENT_ROLE() external view returns (bytes32);

    /// @notice May open short break-glass access to any record.
    function EMERGENCY_ROLE() external view returns (bytes32);

    /// @notice Runs federated-learning rounds.
    function COORDINATOR_ROLE() external view returns (bytes32);

    /// @notice Takes part in federated-learning rounds.
    function PARTICIPANT_ROLE() external view returns (bytes32);

    /// @notice Stop every state change that could widen access. What only narrows it still runs:
    /// role removal (so a compromised member can be evicted before the contract resumes), revoking,
    /// withdrawing consent, closing break-glass, retiring or rotating a record, cancelling a
    /// signature, replacing a compromised encryption key; so does the appointment of a guardian (so that evicting the last guardian, or
    /// losing its key, cannot leave the contract paused for good). While paused, `checkAccess`
    /// answers false. Guardian only.
    function pause() external;

    /// @notice Resume state changes. Guardian only.
    function unpause() external;

    /// @notice The bitmap of consortium roles `account` holds: bit 0 admin, 1 guardian, 2 data owner,
    /// 3 doctor, 4 researcher, 5 patient, 6 emergency, 7 coordinator, 8 participant.
    function rolesOf(address account) external view returns (uint256);

    /// @notice {rolesOf} with bit 255 set while the consortium is paused: a contract beside the policy
    /// checks both for a member's action in one call (the round registry, for every masked input).
    function rolesAndPauseOf(address account) external view returns (uint256);

    /// @notice Which of `accounts` hold a role whose bit (see {rolesOf}) is set in `bits`: bit i of
    /// `held` is set when `accounts[i]` does. At most 256 accounts.
    function holdersOf(address[] calldata accounts, uint256 bits) external view returns (uint256 held);

    /// @notice How many times an account lost the coordinator or participant role (revoked or
    /// renounced). While it is unchanged, every account still holds the learning roles it was seen
    /// to hold, so the round registry need not read those memberships again.
    function learningRoleLosses() external view returns (uint256);

    /// @notice How many accounts hold the consortium admin role (`DEFAULT_ADMIN_ROLE`); never 0.
    /// Members of the other roles are counted and listed from the role events, off chain.
    function totalAdmins() external view returns (uint256);

    /// @notice How many accounts were ever given the data-owner role (the last data-owner id handed out).
    function dataOwnerCount() external view returns (uint256);

    /// @notice The account that data-owner id `ownerId` (1 to {dataOwnerCount}) was handed to; the
    /// zero address for an id not handed out. An id stays with its account for good.
    function dataOwnerAt(uint32 ownerId) external view returns (address);
}
