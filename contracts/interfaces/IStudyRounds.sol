// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IStudyRounds
/// @notice Federated-learning studies and their rounds as committed artifacts: a study's genesis model,
/// config and terms; each round's base, updates and aggregate, an unbroken chain of custody.
/// @dev An artifact (model, update, aggregate) is named by its binary CID (v0, or v1 raw or dag-pb;
/// sha2-256) and the SHA-256 of its bytes; its commitment is `keccak256(abi.encode(cid, sha256))`.
interface IStudyRounds {
    enum RoundStatus {
        None,
        Open,
        Committed,
        Cancelled
    }

    /// @notice What a study is created with ({createStudy}): fixed for its whole life.
    /// @param minUpdates The quorum: updates a round needs to be committed (1 to {MAX_UPDATES}).
    /// @param maxSamples The most samples one update may declare (its weight in an aggregate), > 0.
    /// @param secureAggregation Whether the study's rounds run secure aggregation.
    /// @param graphDegree Under secure aggregation, each hospital's neighbours in the SecAgg+ sharing
    /// graph (Bell et al. 2020); 0: the complete graph (every hospital shares with every other).
    /// Must be 0 without secure aggregation.
    /// @param budgetHospitals The hospitals given a privacy budget (empty: no budgets; the study's
    /// updates then declare no DP spend). Each once.
    /// @param epsilonBudget Each one's epsilon for the whole study, in millionths (> 0 with hospitals,
    /// 0 without).
    /// @param delta The delta every epsilon of theirs is computed at, in 1e-18 (0 < delta < 1e18 with
    /// hospitals, 0 without).
    struct StudyTerms {
        uint16 minUpdates;
        uint64 maxSamples;
        bool secureAggregation;
        uint16 graphDegree;
        address[] budgetHospitals;
        uint64 epsilonBudget;
        uint64 delta;
    }

    /// @notice `coordinator` created `study`: round 1 starts from the genesis model.
    event StudyCreated(
        uint64 indexed study,
        address indexed coordinator,
        bytes genesisCid,
        bytes32 genesisSha256,
        bytes32 configDigest,
        bytes configCid,
        uint16 minUpdates
    );
    /// @notice An update to the study may declare at most `maxSamples` samples.
    event SampleCapSet(uint64 indexed study, uint64 maxSamples);
    /// @notice Round `round` of `study` opened on the aggregate of `baseRound` (0: genesis); `invited`
    /// empty means any participant.
    event RoundOpened(
        uint64 indexed study,
        uint32 indexed round,
        bytes32 baseCommitment,
        uint32 baseRound,
        uint64 deadline,
        address[] invited
    );
    /// @notice `participant` submitted the round's `index`-th update (from 0), trained on `samples`: its
    /// bytes are in the store under the CID of format `cidFormat` and digest `cidDigest` (as in
    /// {ISecureRounds-SecureMessagePosted}), with SHA-256 `sha256`.
    /// @dev The CID as its parsed parts: two words of log data fewer than its bytes, on every update.
    event UpdateSubmitted(
        uint64 indexed study,
        uint32 indexed round,
        address indexed participant,
        uint16 index,
        uint8 cidFormat,
        bytes32 cidDigest,
        bytes32 sha256,
        uint64 samples
    );
    /// @notice The round's aggregate, from the `counted` updates whose bits are set in `countedMask`
    /// (bit i: the i-th submitter, in submission order); it is now the study's latest model. Bits set
    /// in `rejectedMask` are the updates the coordinator refused as malformed (they are not counted;
    /// any auditor can re-run that check).
    event RoundCommitted(
        uint64 indexed study,
        uint32 indexed round,
        bytes cid,
        bytes32 sha256,
        uint256 countedMask,
        uint256 rejectedMask,
        uint16 counted
    );
    /// @notice `cancelledBy` cancelled the round: its coordinator, as it missed its quorum by its
    /// deadline (not counting the updates it refused as malformed, bits of `rejectedMask`) or cannot
    /// be committed (a secure round's survivor lost its role); or anyone, {CANCEL_GRACE_PERIOD} after
    /// the deadline (`rejectedMask` 0). The study's latest model is unchanged.
    event RoundCancelled(uint64 indexed study, uint32 indexed round, uint256 rejectedMask, address indexed cancelledBy);

    /// @notice `account` does not hold the coordinator role.
    error NotCoordinator(address account);
    /// @notice `account` is not the coordinator of `study`.
    error NotStudyCoordinator(uint64 study, address account);
    /// @notice `account` does not hold the participant role.
    error NotParticipant(address account);
    /// @notice The round invites participants and `account` is not one of them.
    error NotInvited(uint64 study, uint32 round, address account);
    /// @notice No study has the id `study`.
    error UnknownStudy(uint64 study);
    /// @notice `study` has no round `round`.
    error UnknownRound(uint64 study, uint32 round);
    /// @notice The round is committed or cancelled (`status` 2 or 3).
    error RoundNotOpen(uint64 study, uint32 round, RoundStatus status);
    /// @notice The study's round `round` is still open: one round at a time.
    error RoundStillOpen(uint64 study, uint32 round);
    /// @notice The round stopped taking updates at `deadline`.
    error DeadlinePassed(uint64 study, uint32 round, uint64 deadline);
    /// @notice The round takes updates until `deadline`; it cannot be cancelled before.
    error DeadlineNotReached(uint64 study, uint32 round, uint64 deadline);
    /// @notice `participant` already submitted its update to the round.
    error AlreadySubmitted(uint64 study, uint32 round, address participant);
    /// @notice The round must start from the study's latest model, whose commitment is `expected`.
    error StaleBase(uint64 study, bytes32 expected, bytes32 given);
    /// @notice Only `counted` updates count (from accounts holding the participant role); `minUpdates` needed.
    error QuorumNotMet(uint64 study, uint32 round, uint256 counted, uint256 minUpdates);
    /// @notice The round has its quorum (`counted` of `minUpdates`): commit it instead.
    error QuorumReached(uint64 study, uint32 round, uint256 counted, uint256 minUpdates);
    /// @notice The submitters listed are not the round's submitters in submission order.
    error SubmittersMismatch(uint64 study, uint32 round);
    /// @notice `rejectedMask` sets a bit at or above the round's `updates` (bit i: the i-th submitter).
    error RejectedOutOfRange(uint64 study, uint32 round, uint256 rejectedMask, uint256 updates);
    /// @notice A deadline must be after now and at most {MAX_ROUND_DURATION} ahead.
    error BadDeadline(uint64 deadline);
    /// @notice A study's quorum is between 1 and {MAX_UPDATES}.
    error BadMinUpdates(uint256 minUpdates);
    /// @notice Fewer participants invited than the quorum needs.
    error TooFewInvited(uint256 invited, uint256 minUpdates);
    /// @notice The round holds {MAX_UPDATES} updates already.
    error RoundFull(uint64 study, uint32 round);
    /// @notice A SHA-256 digest (of an artifact or of the config) is zero.
    error ZeroDigest();
    /// @notice An update must be trained on at least one sample.
    error NoSamples();
    /// @notice A study's cap on the samples an update declares must be positive.
    error BadSampleCap(uint64 maxSamples);
    /// @notice The update declares `samples`, over the study's cap of `maxSamples`.
    error SamplesOverCap(uint64 study, uint32 round, uint64 samples, uint64 maxSamples);
    /// @notice Before `anyoneFrom` only the study's coordinator may cancel the round.
    error CancelGracePeriod(uint64 study, uint32 round, uint64 anyoneFrom);
    /// @notice Only the study's coordinator, holding its role, may reject updates (`account` is not).
    error RejectionByNonCoordinator(address account);

    /// @notice A round takes at most this many updates (its commit event's counted mask is one word).
    function MAX_UPDATES() external view returns (uint256);

    /// @notice A round's deadline is at most this far ahead, so no round can hold its study for good.
    function MAX_ROUND_DURATION() external view returns (uint64);

    /// @notice How long after a round's deadline its coordinator alone may close it; after that anyone
    /// may cancel it ({cancelRound}), whatever its updates, so a silent or evicted coordinator cannot
    /// hold its study.
    function CANCEL_GRACE_PERIOD() external view returns (uint64);

    /// @notice Create a study whose rounds start from the genesis model, on `terms` fixed for its whole
    /// life (its quorum, sample cap, privacy budgets and secure aggregation, all in this one call, so
    /// none can land on another study); the caller becomes its coordinator. Coordinators only.
    /// @param genesisCid Binary CID (v0, or v1 raw or dag-pb; sha2-256) of the genesis model.
    /// @param genesisSha256 SHA-256 of the genesis model's bytes.
    /// @param configDigest SHA-256 of the study's config as canonical JSON.
    /// @param configCid Binary CID of those JSON bytes in the store.
    /// @param terms The study's quorum, sample cap, secure aggregation and privacy budgets ({StudyTerms}).
    /// @return study The new study's id (studies are numbered from 1).
    function createStudy(
        bytes calldata genesisCid,
        bytes32 genesisSha256,
        bytes32 configDigest,
        bytes calldata configCid,
        StudyTerms calldata terms
    ) external returns (uint64 study);

    /// @notice Open the study's next round on its latest model. The study's coordinator only, while
    /// it holds the coordinator role; one open round per study at a time.
    /// @param study The study.
    /// @param baseCommitment The commitment of the study's latest model (its last committed aggregate,
    /// or the genesis model before any): the round's base.
    /// @param deadline The last second (unix time) an update is taken; at most {MAX_ROUND_DURATION} ahead.
    /// @param invited The participants who may submit; empty: any participant. At least the quorum of
    /// distinct accounts (one listed twice counts once).
    /// @return round The new round's number (rounds are numbered from 1 in each study).
    function openRound(uint64 study, bytes32 baseCommitment, uint64 deadline, address[] calldata invited)
        external
        returns (uint32 round);

    /// @notice Submit the caller's update to an open round, before its deadline. Participants only
    /// (invited ones, when the round invites); once per round. Not for a study with privacy budgets
    /// ({IPrivacyBudgets-submitPrivateUpdate}). A secure round's update is its masked input, taken in
    /// its MaskedInputs phase only.
    /// @param study The study.
    /// @param round The round.
    /// @param cid Binary CID of the update (as stored, i.e. encrypted).
    /// @param sha256Digest SHA-256 of the update's bytes.
    /// @param samples How many samples the update was trained on (its weight in a weighted aggregate).
    function submitUpdate(uint64 study, uint32 round, bytes calldata cid, bytes32 sha256Digest, uint64 samples)
        external;

    /// @notice Commit the round's aggregate, which becomes the study's latest model. The study's
    /// coordinator only, while it holds the coordinator role; once. Counts the updates whose senders
    /// hold the participant role now and that the coordinator did not reject, and needs at least the
    /// study's quorum of them. A secure round's sum cannot leave an input out: it is refused
    /// ({ISecureRounds-SurvivorLostRole}) while a survivor it does not reject lost the participant role.
    /// @param study The study.
    /// @param round The round (open; its deadline may have passed).
    /// @param submitters Every submitter of the round, in submission order (from the round's
    /// {UpdateSubmitted} events).
    /// @param rejectedMask Bit i set: the coordinator refused the i-th submitter's update, which failed
    /// its off-chain check (unreadable, undecryptable, undecodable, or not the model's shape); it is
    /// not counted. Recorded in {RoundCommitted} for auditors to re-check.
    /// @param cid Binary CID of the aggregate (as stored).
    /// @param sha256Digest SHA-256 of the aggregate's bytes.
    function commitAggregate(
        uint64 study,
        uint32 round,
        address[] calldata submitters,
        uint256 rejectedMask,
        bytes calldata cid,
        bytes32 sha256Digest
    ) external;

    /// @notice Cancel a round; the next round starts from the same base. After the round's deadline,
    /// its study's coordinator (holding the coordinator role) may cancel it if it missed its quorum or,
    /// a secure round, cannot be committed because a survivor lost its role. From
    /// {CANCEL_GRACE_PERIOD} after the deadline anyone may cancel it, whatever its updates: a silent
    /// or evicted coordinator cannot hold its study. Runs while the consortium is paused (it commits
    /// nothing). Logs who cancelled ({RoundCancelled}).
    /// @param study The study.
    /// @param round The round (open, deadline passed).
    /// @param submitters The round's submitters in submission order, needed only when the coordinator
    /// cancels within the grace period a round that has the quorum of updates but some of their senders
    /// have since lost the participant role or some of their updates were rejected.
    /// @param rejectedMask As for {commitAggregate}: the updates the coordinator refused as malformed,
    /// which do not count towards the quorum. Recorded in {RoundCancelled}. 0 from anyone else.
    function cancelRound(uint64 study, uint32 round, address[] calldata submitters, uint256 rejectedMask) external;

    /// @notice How many studies there are (their ids run from 1 to this).
    function studyCount() external view returns (uint64);

    /// @notice A study: its coordinator, quorum, rounds opened so far, last committed round (0:
    /// none), genesis model commitment and config digest.
    function studyOf(uint64 study)
        external
        view
        returns (
            address coordinator,
            uint16 minUpdates,
            uint32 roundCount,
            uint32 latestRound,
            bytes32 genesisCommitment,
            bytes32 configDigest
        );

    /// @notice The terms the study was created with that {studyOf} does not return: the most samples
    /// an update may declare, whether its hospitals have privacy budgets, whether its rounds run secure
    /// aggregation, and its SecAgg+ graph degree (0: the complete graph).
    function studyTermsOf(uint64 study)
        external
        view
        returns (uint64 maxSamples, bool budgeted, bool secureAggregation, uint16 graphDegree);

    /// @notice The study's latest model: the last committed round (0: the genesis model) and its
    /// commitment. The next round's base.
    function latestModel(uint64 study) external view returns (uint32 round, bytes32 commitment);

    /// @notice A round: status (1 open, 2 committed, 3 cancelled), deadline, base (round and
    /// commitment), whether it invites, updates submitted, updates counted at commit and the
    /// aggregate's commitment (zero unless committed).
    function roundOf(uint64 study, uint32 round)
        external
        view
        returns (
            RoundStatus status,
            uint64 deadline,
            uint32 baseRound,
            bytes32 baseCommitment,
            bool invites,
            uint16 updateCount,
            uint16 counted,
            bytes32 aggregateCommitment
        );

    /// @notice The commitment of `participant`'s update to the round; zero if it submitted none. A
    /// secure round keeps no commitment (its masked inputs are in {UpdateSubmitted}): see {hasSubmitted}.
    function updateOf(uint64 study, uint32 round, address participant) external view returns (bytes32);

    /// @notice Whether `participant` submitted its update to the round. For a secure round (its masked
    /// input) exact while the round is the participant's latest: for earlier ones read {UpdateSubmitted}.
    function hasSubmitted(uint64 study, uint32 round, address participant) external view returns (bool);

    /// @notice Whether the round lets `account` submit by invitation (true for all when it invites
    /// no one in particular). Says nothing of the participant role. For a secure round exact while the
    /// round is the study's latest: for earlier ones read {RoundOpened}.
    function isInvited(uint64 study, uint32 round, address account) external view returns (bool);
}
