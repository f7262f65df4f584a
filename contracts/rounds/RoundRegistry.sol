// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Multicall} from "@openzeppelin/contracts/utils/Multicall.sol";
import {Cid} from "../records/Cid.sol";
import {ConsortiumBound} from "./ConsortiumBound.sol";
import {IConsortium} from "./IConsortium.sol";

/// @title RoundRegistry
/// @notice Federated-learning studies and their rounds as committed artifacts. A coordinator creates a
/// study (genesis model, config digest, quorum); each round names its base model, which must be the
/// study's last committed aggregate (an unbroken chain of custody), takes at most one update from
/// each participant before its deadline, and is closed by committing an aggregate from at least the
/// quorum of updates whose senders still hold the participant role, or cancelled after its deadline
/// when it cannot reach that quorum.
/// @dev An artifact (model, update, aggregate) is named by its CID and the SHA-256 of its bytes; its
/// on-chain commitment is `keccak256(abi.encode(cid, sha256))`, one slot, with both in the events.
/// Roles and pause come from the access policy ({ConsortiumBound}). Commit checks the submitters the
/// coordinator lists against a running digest kept at submit time, and re-reads their roles only if
/// an account lost the coordinator or participant role since the round opened.
/// A study's terms are fixed when it is created, in the same call ({createStudy}, {StudyTerms}), so no
/// declaration can land on another study: its quorum, the most samples one update may claim, its
/// hospitals' privacy budgets and whether its rounds run secure aggregation (and on which graph).
/// Privacy budgets: a study may give hospitals an (epsilon, delta) budget for the whole study; its
/// rounds then take only
/// {submitPrivateUpdate}, which declares the DP parameters the update was trained with and the
/// hospital's cumulative epsilon after it, and is refused if that total passes the budget or falls.
/// The registry cannot run the accountant; auditors recompute every declared epsilon off chain
/// from the declared parameters ({PrivacySpent} events). Budget and spend share one slot per hospital.
/// Secure aggregation: a study may declare it at creation; each of its rounds then runs the protocol of Bonawitz et al. through the chain, its phases in the
/// round's header ({SecurePhase}). The chain is the broadcast channel every client reads: key
/// advertisements, encrypted shares and unmasking responses are {SecureMessagePosted} events (their
/// bytes in the store), masked inputs are the round's updates, and the coordinator closes each phase
/// ({closeSecurePhase}), so the roster and the survivor set are the same for every reader. Postings
/// are taken from the round's roster only (its invited hospitals), with a well-formed CID and digest,
/// and not while the consortium is paused; nothing of a posting is stored: a reader counts each
/// sender's first posting in a phase. A secure round commits only if every survivor it counts still
/// holds the participant role (its input cannot be left out of the sum).
/// No stall: a round whose deadline passed {CANCEL_GRACE_PERIOD} ago may be cancelled by anyone, so an
/// evicted or silent coordinator cannot hold its study; every coordinator action checks its role.
/// Room to grow: {Round} and {Study} end in mappings new fields can join, and {RoundHeader} has 8
/// spare bits.
contract RoundRegistry is ConsortiumBound, Multicall {
    /// @notice A round takes at most this many updates (its commit event's counted mask is one word).
    uint256 public constant MAX_UPDATES = 256;
    /// @notice Epsilons (budgets and spends) are in millionths.
    uint64 public constant EPSILON_SCALE = 1e6;
    /// @notice Deltas are in units of 1e-18 (a delta is below 1, so below this).
    uint64 public constant DELTA_SCALE = 1e18;
    /// @notice Noise multipliers, sample rates and clipping norms are in units of 1e-9.
    uint64 public constant DP_PARAMETER_SCALE = 1e9;
    /// @notice The largest epsilon budget a hospital may be given, in millionths (about 7.2e10).
    uint64 public constant MAX_EPSILON_BUDGET = type(uint56).max;
    /// @notice A round's deadline is at most this far ahead, so no round can hold its study for good.
    uint64 public constant MAX_ROUND_DURATION = 365 days;
    /// @notice How long after a round's deadline its coordinator alone may close it; after that anyone
    /// may cancel it ({cancelRound}), whatever its updates, so a silent or evicted coordinator cannot
    /// hold its study. A day: long enough for a coordinator's restart or a congested chain.
    uint64 public constant CANCEL_GRACE_PERIOD = 1 days;

    enum RoundStatus {
        None,
        Open,
        Committed,
        Cancelled
    }

    /// @notice A secure round's phase: the one whose postings it takes. `Finished`: every phase
    /// closed, the round may be committed.
    enum SecurePhase {
        Keys,
        Shares,
        MaskedInputs,
        Unmasking,
        Finished
    }

    /// @dev One slot.
    struct StudyHeader {
        address coordinator;
        uint16 minUpdates;
        uint32 roundCount;
        uint32 latestRound; // the last committed round; 0: the genesis model is the latest
        bool budgeted; // hospitals have privacy budgets: updates must declare their DP spend
        bool secure; // rounds run secure aggregation
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

    /// @dev One slot: the study's settings no round copies.
    struct StudySettings {
        uint64 maxSamples;
        uint16 graphDegree;
    }

    struct Study {
        StudyHeader header;
        bytes32 genesis; // the genesis model's commitment
        bytes32 configDigest; // SHA-256 of the study's canonical JSON config
        StudySettings settings;
        mapping(uint32 round => Round) rounds;
        mapping(address hospital => PrivacyAccount) privacy;
    }

    /// @dev One slot per hospital and study: its budget for the whole study and what it has spent.
    struct PrivacyAccount {
        // In 1/EPSILON_SCALE; 0: no budget (the hospital cannot submit). At most {MAX_EPSILON_BUDGET}:
        // 56 bits leave room for {secureIndex} in the slot.
        uint56 epsilonBudget;
        uint64 delta; // in 1/DELTA_SCALE; every epsilon of this hospital is at this delta
        uint56 epsilonSpent; // in 1/EPSILON_SCALE, over all its updates to the study (at most its budget)
        // The last secure round the hospital submitted a masked input to: a secure round's
        // once-per-round guard lives here, in a slot reused every round, rather than in a fresh slot
        // of {Round.updates} (the 17,000 gas difference keeps a secure round within its budget).
        uint32 lastSecureRound;
        // The last secure round that invited the hospital: a secure round's roster, read by every
        // posting and masked input in the slot the masked input updates anyway. The coordinator's
        // opening writes it (and so pays for the slot's creation, not a participant).
        uint32 invitedRound;
        // The hospital's place among the submitters of {lastSecureRound} (from 0): with the count in
        // the round's header, what a secure round's commit checks its submitters against, so a masked
        // input updates no tally slot (2,100 gas of a participant's budget).
        uint8 secureIndex;
    }


    /// @dev One slot, written whole at open, commit and cancel.
    struct RoundHeader {
        uint40 deadline; // the last second an update is taken (at most a year ahead: fits 40 bits)
        RoundStatus status;
        bool invites; // only invited participants may submit
        uint32 baseRound; // the round whose aggregate is this round's base; 0: the genesis model
        // The consortium's count of learning-role losses when the round opened (low 40 bits: each
        // loss is a transaction, so the count never wraps them).
        uint40 roleLosses;
        uint64 maxSamples; // the study's, copied at open: the most samples an update may declare
        // Set when the round closes; while it is open a plain round counts in its tally, a secure
        // round here (its masked input writes the header, not the tally).
        uint16 updateCount;
        uint16 counted; // updates from accounts holding the participant role at commit
        bool budgeted; // the study's, copied at open: updates must declare their DP spend
        bool secure; // the study's, copied at open: the round runs secure aggregation
        SecurePhase phase; // a secure round's current phase
    }

    struct Round {
        RoundHeader header;
        // Open or cancelled: the submitters' running digest (high 224 bits) and their count (low 32
        // bits), a plain round's only (a secure round's survivors are checked against their account
        // slots). Committed: the aggregate's commitment. One slot serves both, as the digest is
        // spent at commit.
        bytes32 tally;
        mapping(address participant => bytes32 commitment) updates;
        mapping(address account => bool) invited; // a plain round's; a secure round's is {PrivacyAccount}
    }

    /// @dev The running digest of a round without submitters (never zero, so the first submission
    /// updates a slot instead of creating one).
    uint256 private constant _TALLY_SEED = uint256(keccak256("MedShare.RoundRegistry.submitters")) << 32;
    uint256 private constant _COUNT_MASK = 0xffffffff;

    mapping(uint64 study => Study) private _studies;
    uint64 private _studyCount;

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
    /// {SecureMessagePosted}), with SHA-256 `sha256`.
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
    /// @notice `hospital` may spend at most `epsilonBudget` (in millionths) at `delta` (in 1e-18)
    /// over the whole study.
    event PrivacyBudgetSet(uint64 indexed study, address indexed hospital, uint64 epsilonBudget, uint64 delta);
    /// @notice The update logged just before this event, in the same transaction ({UpdateSubmitted}:
    /// its study, round and participant), declares `declaration` (see {submitPrivateUpdate}): the DP
    /// parameters it was trained with and its sender's cumulative epsilon in the study after it.
    /// @dev Study, round and participant are not repeated: each indexed topic would cost 375 gas an
    /// update, which would take a declared update past its 75,000 gas target.
    event PrivacySpent(uint256 declaration);
    /// @notice The study's rounds run secure aggregation, each hospital sharing with `graphDegree`
    /// neighbours of the SecAgg+ graph (0: with every other hospital).
    event SecureAggregationDeclared(uint64 indexed study, uint16 graphDegree);
    /// @notice An update to the study may declare at most `maxSamples` samples.
    event SampleCapSet(uint64 indexed study, uint64 maxSamples);
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
    /// @notice A private update ({submitPrivateUpdate}) publishes no sample count: it must be 0.
    error SampleCountInPrivateUpdate();
    /// @notice With hospitals, a budget's epsilon must be positive and its delta in (0, 1); without,
    /// both must be 0.
    error BadPrivacyBudget(uint64 epsilonBudget, uint64 delta);
    /// @notice `hospital` is listed twice among the hospitals given a budget in `study`.
    error PrivacyBudgetAlreadySet(uint64 study, address hospital);
    /// @notice `account` has no privacy budget in the budgeted `study`, so it cannot submit.
    error NoPrivacyBudget(uint64 study, address account);
    /// @notice The study has privacy budgets: an update must declare its DP spend ({submitPrivateUpdate}).
    error PrivacyDeclarationRequired(uint64 study, uint32 round);
    /// @notice The study has no privacy budgets: submit with {submitUpdate}.
    error RoundNotPrivate(uint64 study, uint32 round);
    /// @notice A DP declaration needs a positive noise multiplier, clipping norm and step count and
    /// a sample rate in (0, 1].
    error BadDPDeclaration();
    /// @notice `participant` declared a cumulative epsilon of `declared`, over its `budget`.
    error PrivacyBudgetExceeded(uint64 study, address participant, uint64 declared, uint64 budget);
    /// @notice `participant` declared a cumulative epsilon of `declared`, below the `spent` it declared before.
    error PrivacySpendDecreased(uint64 study, address participant, uint64 declared, uint64 spent);
    /// @notice The round's study does not run secure aggregation.
    error RoundNotSecure(uint64 study, uint32 round);
    /// @notice The secure round is in phase `current`, not `given`.
    error SecurePhaseMismatch(uint64 study, uint32 round, SecurePhase current, SecurePhase given);
    /// @notice A study's cap on the samples an update declares must be positive.
    error BadSampleCap(uint64 maxSamples);
    /// @notice The update declares `samples`, over the study's cap of `maxSamples`.
    error SamplesOverCap(uint64 study, uint32 round, uint64 samples, uint64 maxSamples);
    /// @notice A SecAgg+ graph degree is for a study with secure aggregation only.
    error BadGraphDegree(uint16 graphDegree);
    /// @notice The survivors of the secure round in the bits of `lostMask` (bit i: the i-th submitter)
    /// lost the participant role: their inputs are in the sum, so the round cannot be committed
    /// without counting them; cancel it instead.
    error SurvivorLostRole(uint64 study, uint32 round, uint256 lostMask);
    /// @notice Before `anyoneFrom` only the study's coordinator may cancel the round.
    error CancelGracePeriod(uint64 study, uint32 round, uint64 anyoneFrom);
    /// @notice Only the study's coordinator, holding its role, may reject updates (`account` is not).
    error RejectionByNonCoordinator(address account);

    /// @param consortium_ The deployed MedicalAccess whose roles and pause the registry follows.
    constructor(address consortium_) ConsortiumBound(consortium_) {}

    // Studies --------------------------------------------------------------------------------------

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
    ) external returns (uint64 study) {
        if (!_holdsUnpaused(msg.sender, _COORDINATOR_BIT)) revert NotCoordinator(msg.sender);
        uint16 minUpdates = terms.minUpdates;
        if (minUpdates == 0 || minUpdates > MAX_UPDATES) revert BadMinUpdates(minUpdates);
        if (terms.maxSamples == 0) revert BadSampleCap(terms.maxSamples);
        if (!terms.secureAggregation && terms.graphDegree != 0) revert BadGraphDegree(terms.graphDegree);
        _parseArtifact(configCid, configDigest);
        bytes32 genesis = _commitment(genesisCid, genesisSha256);
        study = ++_studyCount;
        Study storage s = _studies[study];
        s.header = StudyHeader(
            msg.sender, minUpdates, 0, 0, terms.budgetHospitals.length != 0, terms.secureAggregation
        );
        s.genesis = genesis;
        s.configDigest = configDigest;
        s.settings = StudySettings(terms.maxSamples, terms.graphDegree);
        emit StudyCreated(study, msg.sender, genesisCid, genesisSha256, configDigest, configCid, minUpdates);
        _setPrivacyBudgets(study, s, terms.budgetHospitals, terms.epsilonBudget, terms.delta);
        emit SampleCapSet(study, terms.maxSamples);
        if (terms.secureAggregation) emit SecureAggregationDeclared(study, terms.graphDegree);
    }

    // Rounds ---------------------------------------------------------------------------------------

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
        returns (uint32 round)
    {
        Study storage s = _studies[study];
        StudyHeader memory header = s.header;
        _requireCoordinator(study, header, true);
        uint32 last = header.roundCount;
        if (last != 0 && s.rounds[last].header.status == RoundStatus.Open) revert RoundStillOpen(study, last);
        uint32 baseRound = header.latestRound;
        bytes32 expected = baseRound == 0 ? s.genesis : s.rounds[baseRound].tally;
        if (baseCommitment != expected) revert StaleBase(study, expected, baseCommitment);
        if (deadline <= block.timestamp || deadline > block.timestamp + MAX_ROUND_DURATION) {
            revert BadDeadline(deadline);
        }

        round = last + 1;
        s.header.roundCount = round;
        Round storage r = s.rounds[round];
        if (invited.length != 0) {
            uint256 distinct = _invite(s, r, round, header.secure, invited);
            if (distinct < header.minUpdates) revert TooFewInvited(distinct, header.minUpdates);
        }
        r.header = RoundHeader({
            deadline: uint40(deadline),
            status: RoundStatus.Open,
            invites: invited.length != 0,
            baseRound: baseRound,
            roleLosses: uint40(consortium.learningRoleLosses()),
            maxSamples: s.settings.maxSamples,
            updateCount: 0,
            counted: 0,
            budgeted: header.budgeted,
            secure: header.secure,
            phase: SecurePhase.Keys
        });
        r.tally = bytes32(_TALLY_SEED);
        emit RoundOpened(study, round, baseCommitment, baseRound, deadline, invited);
    }

    /// @notice Submit the caller's update to an open round, before its deadline. Participants only
    /// (invited ones, when the round invites); once per round. Not for a study with privacy budgets
    /// ({submitPrivateUpdate}).
    /// @param study The study.
    /// @param round The round.
    /// @param cid Binary CID of the update (as stored, i.e. encrypted).
    /// @param sha256Digest SHA-256 of the update's bytes.
    /// @param samples How many samples the update was trained on (its weight in a weighted aggregate).
    function submitUpdate(uint64 study, uint32 round, bytes calldata cid, bytes32 sha256Digest, uint64 samples)
        external
    {
        _submit(study, round, cid, sha256Digest, samples, false);
    }

    /// @notice Submit the caller's update to an open round of a study with privacy budgets, declaring
    /// the DP parameters it was trained with and the caller's cumulative epsilon after it, which is
    /// recorded. As {submitUpdate}, and refused if that epsilon passes the caller's budget or is
    /// below what it declared before.
    /// @param study The study.
    /// @param round The round.
    /// @param cid Binary CID of the update (as stored, i.e. encrypted).
    /// @param sha256Digest SHA-256 of the update's bytes.
    /// @param samples Must be 0: a DP study publishes no record count (its rounds average unweighted).
    /// @param declaration One word (calldata and the {PrivacySpent} event cost gas by the word), from
    /// the high bits: the DP-SGD noise multiplier (64 bits), the sample rate of records per step (32),
    /// the clipping norm (64), all three in 1/DP_PARAMETER_SCALE, the steps (32), and the caller's
    /// cumulative epsilon in the study after this update (64, in 1/EPSILON_SCALE, at its budget's delta).
    function submitPrivateUpdate(
        uint64 study,
        uint32 round,
        bytes calldata cid,
        bytes32 sha256Digest,
        uint64 samples,
        uint256 declaration
    ) external {
        _submit(study, round, cid, sha256Digest, samples, true);
        uint64 epsilonSpent = uint64(declaration);
        uint256 sampleRate = uint32(declaration >> 160);
        if (
            declaration >> 192 == 0 || uint64(declaration >> 96) == 0 || uint32(declaration >> 64) == 0
                || sampleRate == 0 || sampleRate > DP_PARAMETER_SCALE
        ) revert BadDPDeclaration();
        PrivacyAccount storage account = _studies[study].privacy[msg.sender];
        PrivacyAccount memory spend = account;
        if (spend.epsilonBudget == 0) revert NoPrivacyBudget(study, msg.sender);
        if (epsilonSpent < spend.epsilonSpent) {
            revert PrivacySpendDecreased(study, msg.sender, epsilonSpent, spend.epsilonSpent);
        }
        if (epsilonSpent > spend.epsilonBudget) {
            revert PrivacyBudgetExceeded(study, msg.sender, epsilonSpent, spend.epsilonBudget);
        }
        account.epsilonSpent = uint56(epsilonSpent); // at most the budget, so it fits
        emit PrivacySpent(declaration);
    }

    /// @notice Post the caller's message of a secure round's current phase: its key advertisement
    /// (Keys), its encrypted shares (Shares) or its unmasking response (Unmasking). Masked inputs are
    /// the round's updates ({submitUpdate}). Taken in every phase from the round's roster only: its
    /// invited participants (any participant when the round invites no one in particular); with a
    /// well-formed CID (as {submitUpdate}) and a non-zero digest; not while the consortium is paused
    /// (the round's deadline still lets it be cancelled). Nothing is stored: each sender's first
    /// posting of a phase counts, and one whose bytes cannot be fetched to the digest counts as silence.
    /// @dev Each check here is paid by every participant of every round: a secure round's postings and
    /// masked input must stay within 160,000 gas a participant.
    /// @param study The study.
    /// @param round The round (secure, open).
    /// @param phase The round's current phase: Keys, Shares or Unmasking.
    /// @param cid Binary CID of the message's bytes in the store.
    /// @param sha256Digest SHA-256 of the message's bytes.
    function postSecureMessage(uint64 study, uint32 round, SecurePhase phase, bytes calldata cid, bytes32 sha256Digest)
        external
    {
        Study storage s = _studies[study];
        // Only the fields checked here, from the one slot (a copy of the whole header decodes all eleven).
        RoundHeader storage header = s.rounds[round].header;
        (RoundStatus status, bool secure, bool invites, SecurePhase current) =
            (header.status, header.secure, header.invites, header.phase);
        _requireOpen(study, round, status);
        if (!secure) revert RoundNotSecure(study, round);
        // Masked inputs are updates, and a finished round takes nothing more before its commit.
        if (phase != current || phase == SecurePhase.MaskedInputs || phase == SecurePhase.Finished) {
            revert SecurePhaseMismatch(study, round, current, phase);
        }
        if (invites) {
            _requireNotPaused();
            if (s.privacy[msg.sender].invitedRound != round) revert NotInvited(study, round, msg.sender);
        } else if (!_holdsUnpaused(msg.sender, _PARTICIPANT_BIT)) {
            revert NotParticipant(msg.sender);
        }
        // {_parseArtifact} inline: a call's overhead is some 60 gas on every posting and masked input.
        (uint8 format, bytes32 digest) = Cid.parse(cid);
        if (sha256Digest == 0) revert ZeroDigest();
        emit SecureMessagePosted(study, round, msg.sender, phase, format, digest, sha256Digest);
    }

    /// @notice Close a secure round's current phase: its postings are final and the next phase
    /// opens. Closing MaskedInputs fixes the survivors (the round's submitters); closing Unmasking
    /// lets the round be committed. The study's coordinator only, while it holds the coordinator role.
    /// @param study The study.
    /// @param round The round (secure, open).
    /// @param phase The round's current phase (Keys to Unmasking).
    function closeSecurePhase(uint64 study, uint32 round, SecurePhase phase) external {
        Study storage s = _studies[study];
        _requireCoordinator(study, s.header, true);
        Round storage r = s.rounds[round];
        RoundHeader memory header = r.header;
        _requireOpen(study, round, header.status);
        if (!header.secure) revert RoundNotSecure(study, round);
        if (phase != header.phase || phase == SecurePhase.Finished) {
            revert SecurePhaseMismatch(study, round, header.phase, phase);
        }
        r.header.phase = SecurePhase(uint8(phase) + 1);
        emit SecurePhaseClosed(study, round, phase);
    }

    /// @notice Commit the round's aggregate, which becomes the study's latest model. The study's
    /// coordinator only, while it holds the coordinator role; once. Counts the updates whose senders
    /// hold the participant role now and that the coordinator did not reject, and needs at least the
    /// study's quorum of them. A secure round's sum cannot leave an input out: it is refused
    /// ({SurvivorLostRole}) while a survivor it does not reject lost the participant role.
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
    ) external {
        Study storage s = _studies[study];
        StudyHeader memory header = s.header;
        // The coordinator's role is checked below, with the submitters', when a learning role was lost.
        _requireCoordinator(study, header, false);
        Round storage r = s.rounds[round];
        RoundHeader memory roundHeader = r.header;
        _requireOpen(study, round, roundHeader.status);
        if (roundHeader.secure && roundHeader.phase != SecurePhase.Finished) {
            revert SecurePhaseMismatch(study, round, roundHeader.phase, SecurePhase.Finished);
        }
        uint256 mask;
        {
            uint256 counted;
            (mask, counted) = _countParticipants(study, round, s, submitters, rejectedMask, true);
            if (counted < header.minUpdates) revert QuorumNotMet(study, round, counted, header.minUpdates);
            roundHeader.counted = uint16(counted);
        }

        roundHeader.status = RoundStatus.Committed;
        roundHeader.updateCount = uint16(submitters.length);
        r.header = roundHeader;
        r.tally = _commitment(cid, sha256Digest);
        s.header.latestRound = round;
        emit RoundCommitted(study, round, cid, sha256Digest, mask, rejectedMask, roundHeader.counted);
    }

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
    function cancelRound(uint64 study, uint32 round, address[] calldata submitters, uint256 rejectedMask)
        external
    {
        Study storage s = _studies[study];
        StudyHeader memory header = s.header;
        if (header.coordinator == address(0)) revert UnknownStudy(study);
        Round storage r = s.rounds[round];
        RoundHeader memory roundHeader = r.header;
        _requireOpen(study, round, roundHeader.status);
        if (block.timestamp <= roundHeader.deadline) revert DeadlineNotReached(study, round, roundHeader.deadline);
        uint256 updates = _updateCount(r, roundHeader.secure);
        uint256 anyoneFrom = uint256(roundHeader.deadline) + CANCEL_GRACE_PERIOD;
        bool abandoned = block.timestamp > anyoneFrom;
        if (msg.sender != header.coordinator || !_holds(msg.sender, _COORDINATOR_BIT)) {
            if (!abandoned) {
                if (msg.sender != header.coordinator) revert CancelGracePeriod(study, round, uint64(anyoneFrom));
                revert NotCoordinator(msg.sender);
            }
            if (rejectedMask != 0) revert RejectionByNonCoordinator(msg.sender);
        } else if (!abandoned && updates >= header.minUpdates) {
            (, uint256 counted) = _countParticipants(study, round, s, submitters, rejectedMask, false);
            if (counted >= header.minUpdates) revert QuorumReached(study, round, counted, header.minUpdates);
        } else if (rejectedMask >> updates != 0) {
            revert RejectedOutOfRange(study, round, rejectedMask, updates);
        }

        roundHeader.status = RoundStatus.Cancelled;
        roundHeader.updateCount = uint16(updates);
        r.header = roundHeader;
        emit RoundCancelled(study, round, rejectedMask, msg.sender);
    }

    // Views ----------------------------------------------------------------------------------------

    /// @notice How many studies there are (their ids run from 1 to this).
    function studyCount() external view returns (uint64) {
        return _studyCount;
    }

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
        )
    {
        Study storage s = _study(study);
        StudyHeader memory header = s.header;
        return (
            header.coordinator, header.minUpdates, header.roundCount, header.latestRound, s.genesis, s.configDigest
        );
    }

    /// @notice The study's latest model: the last committed round (0: the genesis model) and its
    /// commitment. The next round's base.
    function latestModel(uint64 study) external view returns (uint32 round, bytes32 commitment) {
        Study storage s = _study(study);
        round = s.header.latestRound;
        commitment = _modelOf(s, round);
    }

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
        )
    {
        Study storage s = _study(study);
        Round storage r = s.rounds[round];
        RoundHeader memory header = r.header;
        if (header.status == RoundStatus.None) revert UnknownRound(study, round);
        status = header.status;
        deadline = header.deadline;
        baseRound = header.baseRound;
        baseCommitment = _modelOf(s, baseRound);
        invites = header.invites;
        updateCount = status == RoundStatus.Open ? uint16(_updateCount(r, header.secure)) : header.updateCount;
        counted = header.counted;
        if (status == RoundStatus.Committed) aggregateCommitment = r.tally;
    }

    /// @notice The commitment of `participant`'s update to the round; zero if it submitted none. A
    /// secure round keeps no commitment (its masked inputs are in {UpdateSubmitted}): see {hasSubmitted}.
    function updateOf(uint64 study, uint32 round, address participant) external view returns (bytes32) {
        return _studies[study].rounds[round].updates[participant];
    }

    /// @notice Whether `participant` submitted its update to the round. For a secure round (its masked
    /// input) exact while the round is the participant's latest: for earlier ones read {UpdateSubmitted}.
    function hasSubmitted(uint64 study, uint32 round, address participant) external view returns (bool) {
        Study storage s = _studies[study];
        Round storage r = s.rounds[round];
        if (r.header.secure) return round != 0 && s.privacy[participant].lastSecureRound == round;
        return r.updates[participant] != 0;
    }

    /// @notice Whether the study runs secure aggregation, and the round's phase (Keys for a round
    /// not opened yet or of a study without it).
    function secureRoundOf(uint64 study, uint32 round) external view returns (bool secure, SecurePhase phase) {
        Study storage s = _study(study);
        return (s.header.secure, s.rounds[round].header.phase);
    }

    /// @notice Whether the round lets `account` submit by invitation (true for all when it invites
    /// no one in particular). Says nothing of the participant role. For a secure round exact while the
    /// round is the study's latest: for earlier ones read {RoundOpened}.
    function isInvited(uint64 study, uint32 round, address account) external view returns (bool) {
        Study storage s = _studies[study];
        RoundHeader memory header = s.rounds[round].header;
        if (!header.invites) return true;
        if (header.secure) return s.privacy[account].invitedRound == round;
        return s.rounds[round].invited[account];
    }

    /// @notice The terms the study was created with that {studyOf} does not return: the most samples
    /// an update may declare, whether its hospitals have privacy budgets, whether its rounds run secure
    /// aggregation, and its SecAgg+ graph degree (0: the complete graph).
    function studyTermsOf(uint64 study)
        external
        view
        returns (uint64 maxSamples, bool budgeted, bool secureAggregation, uint16 graphDegree)
    {
        Study storage s = _study(study);
        StudySettings memory settings = s.settings;
        return (settings.maxSamples, s.header.budgeted, s.header.secure, settings.graphDegree);
    }

    /// @notice `account`'s privacy budget in the study and its spend so far (epsilons in millionths,
    /// delta in 1e-18); all zero if it has none.
    function privacyOf(uint64 study, address account)
        external
        view
        returns (uint64 epsilonBudget, uint64 delta, uint64 epsilonSpent)
    {
        PrivacyAccount memory spend = _studies[study].privacy[account];
        return (spend.epsilonBudget, spend.delta, spend.epsilonSpent);
    }

    // Internals ------------------------------------------------------------------------------------

    /// @dev An update's checks and records, shared by both submissions; `declaresPrivacy` must match
    /// whether the round's study has privacy budgets.
    function _submit(
        uint64 study,
        uint32 round,
        bytes calldata cid,
        bytes32 sha256Digest,
        uint64 samples,
        bool declaresPrivacy
    ) private {
        if (!_holdsUnpaused(msg.sender, _PARTICIPANT_BIT)) revert NotParticipant(msg.sender);
        // A budgeted (DP) study's count stays off chain: a record count would tell neighbouring data sets apart.
        if (declaresPrivacy) {
            if (samples != 0) revert SampleCountInPrivateUpdate();
        } else if (samples == 0) {
            revert NoSamples();
        }
        Round storage r = _studies[study].rounds[round];
        // The header's fields read one by one from its slot: a copy of the whole struct decodes all eleven.
        RoundHeader storage header = r.header;
        bool secure;
        {
            RoundStatus status;
            bool budgeted;
            uint64 deadline;
            uint64 maxSamples;
            (status, budgeted, deadline, maxSamples, secure) =
                (header.status, header.budgeted, header.deadline, header.maxSamples, header.secure);
            _requireOpen(study, round, status);
            if (budgeted != declaresPrivacy) {
                if (budgeted) revert PrivacyDeclarationRequired(study, round);
                revert RoundNotPrivate(study, round);
            }
            if (block.timestamp > deadline) revert DeadlinePassed(study, round, deadline);
            if (samples > maxSamples) revert SamplesOverCap(study, round, samples, maxSamples);
        }
        // {_parseArtifact} inline: a call's overhead is some 60 gas on every posting and masked input.
        (uint8 format, bytes32 digest) = Cid.parse(cid);
        if (sha256Digest == 0) revert ZeroDigest();
        // Nothing of a secure round's masked input is stored: its CID is checked only.
        uint256 index = secure
            ? _takeMaskedInput(study, round, header)
            : _takeUpdate(study, round, r, keccak256(abi.encode(cid, sha256Digest)));
        emit UpdateSubmitted(study, round, msg.sender, uint16(index), format, digest, sha256Digest, samples);
    }

    /// @dev A plain round's update from the caller, of commitment `commitment`: its roster and
    /// once-per-round checks, then its record and the round's tally; returns its place.
    function _takeUpdate(uint64 study, uint32 round, Round storage r, bytes32 commitment)
        private
        returns (uint256 index)
    {
        uint256 tally = uint256(r.tally);
        index = tally & _COUNT_MASK;
        if (index == MAX_UPDATES) revert RoundFull(study, round);
        if (r.header.invites && !r.invited[msg.sender]) revert NotInvited(study, round, msg.sender);
        if (r.updates[msg.sender] != 0) revert AlreadySubmitted(study, round, msg.sender);
        r.updates[msg.sender] = commitment;
        r.tally = bytes32(_chain(tally & ~_COUNT_MASK, msg.sender) | (index + 1));
    }

    /// @dev A secure round's masked input from the caller: its phase, roster and once-per-round checks,
    /// then its place among the submitters (returned), kept in the caller's account slot beside the
    /// guard (one slot write) and counted in the round's header, which holds the survivors' count.
    function _takeMaskedInput(uint64 study, uint32 round, RoundHeader storage header)
        private
        returns (uint256 index)
    {
        (SecurePhase phase, bool invites, uint16 count) = (header.phase, header.invites, header.updateCount);
        if (phase != SecurePhase.MaskedInputs) revert SecurePhaseMismatch(study, round, phase, SecurePhase.MaskedInputs);
        index = count;
        if (index == MAX_UPDATES) revert RoundFull(study, round);
        mapping(address => PrivacyAccount) storage accounts = _studies[study].privacy;
        PrivacyAccount memory entry = accounts[msg.sender];
        if (invites && entry.invitedRound != round) revert NotInvited(study, round, msg.sender);
        if (entry.lastSecureRound >= round) revert AlreadySubmitted(study, round, msg.sender);
        entry.lastSecureRound = round;
        entry.secureIndex = uint8(index); // below MAX_UPDATES
        accounts[msg.sender] = entry;
        header.updateCount = uint16(index + 1);
    }

    /// @dev Gives each of `hospitals` the (epsilon, delta) budget of a new study; none without hospitals.
    function _setPrivacyBudgets(
        uint64 study,
        Study storage s,
        address[] calldata hospitals,
        uint64 epsilonBudget,
        uint64 delta
    ) private {
        if (hospitals.length == 0) {
            if (epsilonBudget != 0 || delta != 0) revert BadPrivacyBudget(epsilonBudget, delta);
            return;
        }
        if (epsilonBudget == 0 || epsilonBudget > MAX_EPSILON_BUDGET || delta == 0 || delta >= DELTA_SCALE) {
            revert BadPrivacyBudget(epsilonBudget, delta);
        }
        for (uint256 i; i < hospitals.length; ++i) {
            address hospital = hospitals[i];
            if (s.privacy[hospital].epsilonBudget != 0) revert PrivacyBudgetAlreadySet(study, hospital);
            s.privacy[hospital] = PrivacyAccount(uint56(epsilonBudget), delta, 0, 0, 0, 0);
            emit PrivacyBudgetSet(study, hospital, epsilonBudget, delta);
        }
    }

    /// @dev Invites `invited` to the round and returns how many distinct accounts that is. A secure
    /// round's roster lives in each hospital's account slot, which its masked input updates anyway; the
    /// opening pays for the slot's creation, so that no participant's masked input does.
    function _invite(Study storage s, Round storage r, uint32 round, bool secure, address[] calldata invited)
        private
        returns (uint256 distinct)
    {
        for (uint256 i; i < invited.length; ++i) {
            address account = invited[i];
            if (secure) {
                PrivacyAccount storage entry = s.privacy[account];
                if (entry.invitedRound == round) continue;
                entry.invitedRound = round;
            } else {
                if (r.invited[account]) continue;
                r.invited[account] = true;
            }
            ++distinct;
        }
    }

    /// @dev The study's coordinator is the caller; with `checkRole`, it also holds the role now.
    /// Refuses while the consortium is paused.
    function _requireCoordinator(uint64 study, StudyHeader memory header, bool checkRole) private view {
        if (header.coordinator == address(0)) revert UnknownStudy(study);
        if (header.coordinator != msg.sender) revert NotStudyCoordinator(study, msg.sender);
        if (!checkRole) _requireNotPaused();
        else if (!_holdsUnpaused(msg.sender, _COORDINATOR_BIT)) revert NotCoordinator(msg.sender);
    }

    function _requireOpen(uint64 study, uint32 round, RoundStatus status) private pure {
        if (status == RoundStatus.None) revert UnknownRound(study, round);
        if (status != RoundStatus.Open) revert RoundNotOpen(study, round, status);
    }

    /// @dev Checks `submitters` against the round's record ({_checkSubmitters}), then which of them hold the participant
    /// role now and were not rejected (`mask`, `counted` of them): all held it, if no account lost a
    /// learning role since the round opened (each held it when it submitted, and the coordinator held
    /// its role at opening); else one batch read of their roles (and the caller's coordinator role).
    /// A secure round one of whose unrejected survivors lost the role cannot be committed (its input
    /// is in the sum): {SurvivorLostRole} `forCommit`, else no update counts.
    function _countParticipants(
        uint64 study,
        uint32 round,
        Study storage s,
        address[] calldata submitters,
        uint256 rejectedMask,
        bool forCommit
    ) private view returns (uint256 mask, uint256 counted) {
        Round storage r = s.rounds[round];
        uint256 n = submitters.length;
        _checkSubmitters(study, round, s, r, submitters);
        if (rejectedMask >> n != 0) revert RejectedOutOfRange(study, round, rejectedMask, n);

        uint256 all;
        unchecked {
            all = (1 << n) - 1; // n <= 256: all ones for 256
        }
        if (uint40(consortium.learningRoleLosses()) == r.header.roleLosses) {
            if (rejectedMask == 0) return (all, n);
            mask = all;
        } else {
            if (!_holds(msg.sender, _COORDINATOR_BIT)) revert NotCoordinator(msg.sender);
            mask = _participantsAmong(submitters);
            uint256 lost = all & ~mask & ~rejectedMask;
            if (lost != 0 && r.header.secure) {
                if (forCommit) revert SurvivorLostRole(study, round, lost);
                return (0, 0); // a secure round that cannot be committed has no quorum
            }
        }
        mask &= ~rejectedMask;
        counted = _popcount(mask);
    }

    /// @dev Refuses ({SubmittersMismatch}) unless `submitters` are the open round's submitters in
    /// submission order. A plain round checks them against its tally's running digest (a hash an
    /// update); a secure round, whose masked inputs keep no tally, against each one's account slot:
    /// it submitted to this round (its study has one round open at a time), at place i, and there
    /// are as many as the header counts, so the list is the submitters, each once, in order.
    function _checkSubmitters(
        uint64 study,
        uint32 round,
        Study storage s,
        Round storage r,
        address[] calldata submitters
    ) private view {
        uint256 n = submitters.length;
        if (n != _updateCount(r, r.header.secure)) revert SubmittersMismatch(study, round);
        if (r.header.secure) {
            for (uint256 i; i < n; ++i) {
                PrivacyAccount storage entry = s.privacy[submitters[i]];
                if (entry.lastSecureRound != round || entry.secureIndex != i) revert SubmittersMismatch(study, round);
            }
            return;
        }
        uint256 digest = _TALLY_SEED;
        // {_chain} over calldata: an address with dirty high bits yields another digest, so refused.
        assembly ("memory-safe") {
            for { let i := 0 } lt(i, n) { i := add(i, 1) } {
                mstore(0x00, digest)
                mstore(0x20, calldataload(add(submitters.offset, shl(5, i))))
                digest := shl(32, shr(32, keccak256(0x00, 0x40)))
            }
        }
        if (digest | n != uint256(r.tally)) revert SubmittersMismatch(study, round);
    }

    /// @dev How many updates the open round took: a plain round's tally counts them, a secure round's header.
    function _updateCount(Round storage r, bool secure) private view returns (uint256) {
        return secure ? r.header.updateCount : uint256(r.tally) & _COUNT_MASK;
    }

    /// @dev {IConsortium-holdersOf}`(accounts, participant bit)`, its arguments copied from calldata as
    /// they stand (Solidity's encoder would re-encode each address: a few hundred gas an account).
    function _participantsAmong(address[] calldata accounts) private view returns (uint256 held) {
        address target = address(consortium);
        bytes4 selector = IConsortium.holdersOf.selector;
        uint256 bit = _PARTICIPANT_BIT;
        assembly ("memory-safe") {
            let n := accounts.length
            let data := mload(0x40)
            mstore(data, selector)
            mstore(add(data, 0x04), 0x40)
            mstore(add(data, 0x24), bit)
            mstore(add(data, 0x44), n)
            calldatacopy(add(data, 0x64), accounts.offset, shl(5, n))
            if iszero(staticcall(gas(), target, data, add(0x64, shl(5, n)), 0x00, 0x20)) {
                returndatacopy(data, 0, returndatasize())
                revert(data, returndatasize())
            }
            if lt(returndatasize(), 0x20) { revert(0, 0) }
            held := mload(0x00)
        }
    }

    /// @dev How many bits of `x` are set (SWAR, in 16-bit lanes so that 256 fits).
    function _popcount(uint256 x) private pure returns (uint256) {
        unchecked {
            x -= (x >> 1) & 0x5555555555555555555555555555555555555555555555555555555555555555;
            x = (x & 0x3333333333333333333333333333333333333333333333333333333333333333)
                + ((x >> 2) & 0x3333333333333333333333333333333333333333333333333333333333333333);
            x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f;
            x = (x + (x >> 8)) & 0x00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff;
            return (x * 0x0001000100010001000100010001000100010001000100010001000100010001) >> 240;
        }
    }

    /// @dev The next running digest of submitters (high 224 bits; the low 32 hold the count).
    function _chain(uint256 digest, address submitter) private pure returns (uint256 next) {
        assembly ("memory-safe") {
            mstore(0x00, digest)
            mstore(0x20, submitter)
            next := shl(32, shr(32, keccak256(0x00, 0x40)))
        }
    }

    /// @dev The commitment of the artifact (`cid`, `sha256Digest`); refuses a malformed CID or a zero digest.
    function _commitment(bytes calldata cid, bytes32 sha256Digest) private pure returns (bytes32) {
        _parseArtifact(cid, sha256Digest);
        return keccak256(abi.encode(cid, sha256Digest));
    }

    /// @dev The CID's format and sha2-256 digest ({Cid-parse}), what the update and posting events log;
    /// refuses a malformed CID or a zero `sha256Digest`.
    function _parseArtifact(bytes calldata cid, bytes32 sha256Digest)
        private
        pure
        returns (uint8 format, bytes32 digest)
    {
        (format, digest) = Cid.parse(cid);
        if (sha256Digest == 0) revert ZeroDigest();
    }

    function _study(uint64 study) private view returns (Study storage s) {
        s = _studies[study];
        if (s.header.coordinator == address(0)) revert UnknownStudy(study);
    }

    /// @dev The commitment of the study's model after `round` (0: the genesis model).
    function _modelOf(Study storage s, uint32 round) private view returns (bytes32) {
        return round == 0 ? s.genesis : s.rounds[round].tally;
    }
}
