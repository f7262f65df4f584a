// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IConsortium} from "../interfaces/IConsortium.sol";
import {IStudyRounds} from "../interfaces/IStudyRounds.sol";
import {Cid} from "../records/Cid.sol";
import {RoundState} from "./RoundState.sol";

/// @title StudyRounds
/// @notice Federated-learning studies and their rounds as committed artifacts. A coordinator creates a
/// study (genesis model, config digest, quorum); each round names its base model, which must be the
/// study's last committed aggregate (an unbroken chain of custody), takes at most one update from
/// each participant before its deadline, and is closed by committing an aggregate from at least the
/// quorum of updates whose senders still hold the participant role, or cancelled after its deadline
/// when it cannot reach that quorum.
/// @dev An artifact's on-chain commitment is `keccak256(abi.encode(cid, sha256))`, one slot, with both
/// in the events. Commit checks the submitters the coordinator lists against a running digest kept at
/// submit time, and re-reads their roles only if an account lost the coordinator or participant role
/// since the round opened. A study's terms are fixed when it is created, in the same call
/// ({createStudy}, {IStudyRounds-StudyTerms}), so no declaration can land on another study: its
/// quorum, the most samples one update may claim, its hospitals' privacy budgets ({PrivacyBudgets})
/// and whether its rounds run secure aggregation ({SecureRounds}), and on which graph.
/// No stall: a round whose deadline passed {CANCEL_GRACE_PERIOD} ago may be cancelled by anyone, so an
/// evicted or silent coordinator cannot hold its study; every coordinator action checks its role.
abstract contract StudyRounds is RoundState {
    /// @inheritdoc IStudyRounds
    uint64 public constant MAX_ROUND_DURATION = 365 days;
    /// @inheritdoc IStudyRounds
    /// @dev A day: long enough for a coordinator's restart or a congested chain.
    uint64 public constant CANCEL_GRACE_PERIOD = 1 days;

    /// @dev The running digest of a round without submitters (never zero, so the first submission
    /// updates a slot instead of creating one).
    uint256 private constant _TALLY_SEED = uint256(keccak256("MedShare.RoundRegistry.submitters")) << 32;
    uint256 private constant _COUNT_MASK = 0xffffffff;

    /// @inheritdoc IStudyRounds
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

    /// @inheritdoc IStudyRounds
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

    /// @inheritdoc IStudyRounds
    function submitUpdate(uint64 study, uint32 round, bytes calldata cid, bytes32 sha256Digest, uint64 samples)
        external
    {
        _submit(study, round, cid, sha256Digest, samples, false);
    }

    /// @inheritdoc IStudyRounds
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

    /// @inheritdoc IStudyRounds
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

    /// @inheritdoc IStudyRounds
    function studyCount() external view returns (uint64) {
        return _studyCount;
    }

    /// @inheritdoc IStudyRounds
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

    /// @inheritdoc IStudyRounds
    function studyTermsOf(uint64 study)
        external
        view
        returns (uint64 maxSamples, bool budgeted, bool secureAggregation, uint16 graphDegree)
    {
        Study storage s = _study(study);
        StudySettings memory settings = s.settings;
        return (settings.maxSamples, s.header.budgeted, s.header.secure, settings.graphDegree);
    }

    /// @inheritdoc IStudyRounds
    function latestModel(uint64 study) external view returns (uint32 round, bytes32 commitment) {
        Study storage s = _study(study);
        round = s.header.latestRound;
        commitment = _modelOf(s, round);
    }

    /// @inheritdoc IStudyRounds
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

    /// @inheritdoc IStudyRounds
    function updateOf(uint64 study, uint32 round, address participant) external view returns (bytes32) {
        return _studies[study].rounds[round].updates[participant];
    }

    /// @inheritdoc IStudyRounds
    function hasSubmitted(uint64 study, uint32 round, address participant) external view returns (bool) {
        Study storage s = _studies[study];
        Round storage r = s.rounds[round];
        if (r.header.secure) return round != 0 && s.privacy[participant].lastSecureRound == round;
        return r.updates[participant] != 0;
    }

    /// @inheritdoc IStudyRounds
    function isInvited(uint64 study, uint32 round, address account) external view returns (bool) {
        Study storage s = _studies[study];
        RoundHeader memory header = s.rounds[round].header;
        if (!header.invites) return true;
        if (header.secure) return s.privacy[account].invitedRound == round;
        return s.rounds[round].invited[account];
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
    ) internal override {
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

    /// @dev The commitment of the study's model after `round` (0: the genesis model).
    function _modelOf(Study storage s, uint32 round) private view returns (bytes32) {
        return round == 0 ? s.genesis : s.rounds[round].tally;
    }}
