// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title ISecureRounds
/// @notice Secure aggregation (Bonawitz et al.) run through the chain: the chain is the broadcast
/// channel every client reads. Key advertisements, encrypted shares and unmasking responses are
/// {SecureMessagePosted} events (their bytes in the store), masked inputs are the round's updates
/// ({IStudyRounds-submitUpdate}), and the coordinator closes each phase ({closeSecurePhase}), so the
/// roster and the survivor set are the same for every reader.
interface ISecureRounds {
    /// @notice A secure round's phase: the one whose postings it takes. `Finished`: every phase
    /// closed, the round may be committed.
    enum SecurePhase {
        Keys,
        Shares,
        MaskedInputs,
        Unmasking,
        Finished
    }

    /// @notice The study's rounds run secure aggregation, each hospital sharing with `graphDegree`
    /// neighbours of the SecAgg+ graph (0: with every other hospital).
    event SecureAggregationDeclared(uint64 indexed study, uint16 graphDegree);
    /// @notice `sender` posted a message of the secure round's `phase` (Keys, Shares or Unmasking): its
    /// bytes are in the store under the CID of format `cidFormat` ({Cid-V0}, {Cid-V1_RAW} or
    /// {Cid-V1_DAG_PB}) and sha2-256 digest `cidDigest` ({Cid-encode} rebuilds its bytes), with SHA-256
    /// `sha256`. Readers count a sender's first posting in a phase only.
    /// @dev The CID as its parsed parts: two words of log data fewer than its bytes (every participant
    /// of a secure round logs three postings); `sender` in the data, not a topic (readers take a
    /// round's postings whole), for the same reason.
    event SecureMessagePosted(
        uint64 indexed study,
        uint32 indexed round,
        address sender,
        SecurePhase phase,
        uint8 cidFormat,
        bytes32 cidDigest,
        bytes32 sha256
    );
    /// @notice The coordinator closed the secure round's `phase`: its postings are final.
    event SecurePhaseClosed(uint64 indexed study, uint32 indexed round, SecurePhase phase);

    /// @notice The round's study does not run secure aggregation.
    error RoundNotSecure(uint64 study, uint32 round);
    /// @notice The secure round is in phase `current`, not `given`.
    error SecurePhaseMismatch(uint64 study, uint32 round, SecurePhase current, SecurePhase given);
    /// @notice A SecAgg+ graph degree is for a study with secure aggregation only.
    error BadGraphDegree(uint16 graphDegree);
    /// @notice The survivors of the secure round in the bits of `lostMask` (bit i: the i-th submitter)
    /// lost the participant role: their inputs are in the sum, so the round cannot be committed
    /// without counting them; cancel it instead.
    error SurvivorLostRole(uint64 study, uint32 round, uint256 lostMask);

    /// @notice Post the caller's message of a secure round's current phase: its key advertisement
    /// (Keys), its encrypted shares (Shares) or its unmasking response (Unmasking). Masked inputs are
    /// the round's updates ({IStudyRounds-submitUpdate}). Taken in every phase from the round's roster
    /// only: its invited participants (any participant when the round invites no one in particular);
    /// with a well-formed CID (as {IStudyRounds-submitUpdate}) and a non-zero digest; not while the
    /// consortium is paused (the round's deadline still lets it be cancelled). Nothing is stored: each
    /// sender's first posting of a phase counts, and one whose bytes cannot be fetched to the digest
    /// counts as silence.
    /// @param study The study.
    /// @param round The round (secure, open).
    /// @param phase The round's current phase: Keys, Shares or Unmasking.
    /// @param cid Binary CID of the message's bytes in the store.
    /// @param sha256Digest SHA-256 of the message's bytes.
    function postSecureMessage(uint64 study, uint32 round, SecurePhase phase, bytes calldata cid, bytes32 sha256Digest)
        external;

    /// @notice Close a secure round's current phase: its postings are final and the next phase
    /// opens. Closing MaskedInputs fixes the survivors (the round's submitters); closing Unmasking
    /// lets the round be committed. The study's coordinator only, while it holds the coordinator role.
    /// @param study The study.
    /// @param round The round (secure, open).
    /// @param phase The round's current phase (Keys to Unmasking).
    function closeSecurePhase(uint64 study, uint32 round, SecurePhase phase) external;

    /// @notice Whether the study runs secure aggregation, and the round's phase (Keys for a round
    /// not opened yet or of a study without it).
    function secureRoundOf(uint64 study, uint32 round) external view returns (bool secure, SecurePhase phase);
}
