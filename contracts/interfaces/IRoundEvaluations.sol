// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IStudyRounds} from "./IStudyRounds.sol";

/// @title IRoundEvaluations
/// @notice Federated evaluation's last word: each hospital scores a committed model on its own
/// validation split and publishes its metrics with its next update; a study's last committed model has
/// no next update, so its metrics are an evaluation posting of their own ({reportEvaluation}), taken
/// from the round's submitters only. Nothing of a posting is stored: a reader keeps each sender's first
/// posting of a round, from the submitters the round counted at commit.
interface IRoundEvaluations {
    /// @notice `hospital` posted its evaluation of the model round `round` of `study` committed: its
    /// bytes are in the store under the CID of format `cidFormat` ({Cid-V0}, {Cid-V1_RAW} or
    /// {Cid-V1_DAG_PB}) and sha2-256 digest `cidDigest` ({Cid-encode} rebuilds its bytes), with
    /// SHA-256 `sha256`. Readers keep a hospital's first posting of a round only.
    /// @dev The CID as its parsed parts, as {ISecureRounds-SecureMessagePosted} logs it; `hospital` a
    /// topic, so a reader can ask for one hospital's postings.
    event EvaluationReported(
        uint64 indexed study,
        uint32 indexed round,
        address indexed hospital,
        uint8 cidFormat,
        bytes32 cidDigest,
        bytes32 sha256
    );

    /// @notice `account` submitted no update to the round (a secure round: its last masked input to the
    /// study was to another round), so it has no evaluation of the round's model to post.
    error EvaluationNotAllowed(uint64 study, uint32 round, address account);
    /// @notice The round is `status`, not committed: it has no model to evaluate.
    error RoundNotCommitted(uint64 study, uint32 round, IStudyRounds.RoundStatus status);

    /// @notice Post the caller's evaluation of the model a round committed: what a hospital publishes
    /// when its study ends, the last model having no next update to carry it. Taken from the round's
    /// submitters only (a secure round's: those whose last masked input to the study was to this
    /// round), while they hold the participant role and the consortium is not paused; with a
    /// well-formed CID and a non-zero digest (as {IStudyRounds-submitUpdate}). Nothing is stored:
    /// each hospital's first posting of a round counts, and readers drop those of submitters the
    /// round did not count.
    /// @param study The study.
    /// @param round The round (committed).
    /// @param cid Binary CID of the evaluation's bytes in the store (as stored, i.e. encrypted).
    /// @param sha256Digest SHA-256 of the evaluation's bytes.
    function reportEvaluation(uint64 study, uint32 round, bytes calldata cid, bytes32 sha256Digest) external;
}
