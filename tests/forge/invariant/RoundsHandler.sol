// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ISecureRounds} from "../../../contracts/interfaces/ISecureRounds.sol";
import {IStudyRounds} from "../../../contracts/interfaces/IStudyRounds.sol";
import {RoundRegistry} from "../../../contracts/rounds/RoundRegistry.sol";
import {Consortium} from "../utils/Consortium.sol";
import {Vm} from "../utils/Vm.sol";

/// @notice The actor forge's invariant runner drives against the RoundRegistry: the coordinator
/// opens, closes phases, commits and cancels; four hospitals and a stranger submit updates and
/// post secure messages; the admin takes and gives back the participant role; the guardian pauses;
/// time moves. Two studies run side by side: one with privacy budgets (every update declares its
/// cumulative epsilon) and one with secure aggregation (each round moves through its phases). Each
/// successful step is written to a ghost history that the invariants compare with the registry.
contract RoundsHandler is Consortium {
    Vm private constant vm = Vm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);

    uint256 internal constant STUDIES = 2; // index 0: budgeted, 1: secure
    uint256 internal constant MAX_ROUNDS = 12; // rounds opened per study, so every loop is bounded
    uint16 internal constant QUORUM = 2;
    uint64 public constant EPSILON_BUDGET = 4_000_000; // 4.0, in millionths
    uint64 internal constant DELTA = 1e13; // 1e-5, in 1e-18
    uint64 internal constant MAX_SAMPLES = 1000;

    RoundRegistry public rounds;
    address public coordinator = address(0xC00);
    /// @notice The four hospitals, then a stranger who never holds the participant role.
    address[5] public actors = [address(0x1001), address(0x1002), address(0x1003), address(0x1004), address(0x5742)];
    uint64[STUDIES] public studies;

    struct GhostRound {
        bytes32 base; // the study's latest model when the round opened
        bytes32 aggregate; // the commitment the coordinator committed (zero unless committed)
        uint8 maxPhase; // the furthest phase the ghost saw closed into
        bool committedFinished; // a secure round's phase was Finished when it committed
        uint16 submitted; // accepted updates
        uint8 submittedMask; // which actors' updates were accepted (bit per actor)
        address[5] order; // the submitters in submission order
        bool updateOutsidePhase; // a secure round took an update outside MaskedInputs
    }

    mapping(uint256 studyIndex => mapping(uint32 round => GhostRound)) internal _ghost;
    /// @notice The last cumulative epsilon the registry took from each actor in the budgeted study.
    uint64[5] public ghostSpent;
    /// @notice Set when a step saw the registry take what it must refuse (a message for the invariants).
    /// The privacy property is read here too: a decreasing spend is caught as the registry takes it.
    string public violation;

    constructor() {
        _deployConsortium();
        vm.warp(1_800_000_000);
        rounds = new RoundRegistry(address(access));
        vm.startPrank(admin);
        access.grantRole(access.COORDINATOR_ROLE(), coordinator);
        for (uint256 i; i < 4; ++i) {
            access.grantRole(access.PARTICIPANT_ROLE(), actors[i]);
        }
        vm.stopPrank();
        address[] memory hospitals = new address[](4);
        for (uint256 i; i < 4; ++i) {
            hospitals[i] = actors[i];
        }
        vm.startPrank(coordinator);
        studies[0] = rounds.createStudy(
            cid(70),
            bytes32(uint256(70)),
            bytes32(uint256(71)),
            cid(71),
            IStudyRounds.StudyTerms(QUORUM, MAX_SAMPLES, false, 0, hospitals, EPSILON_BUDGET, DELTA)
        );
        studies[1] = rounds.createStudy(
            cid(80),
            bytes32(uint256(80)),
            bytes32(uint256(81)),
            cid(81),
            IStudyRounds.StudyTerms(QUORUM, MAX_SAMPLES, true, 0, new address[](0), 0, 0)
        );
        vm.stopPrank();
    }

    // ----- the actions forge calls at random -----

    /// @notice The coordinator opens the study's next round on its latest model (all four hospitals
    /// invited, or any participant), or tries to while one is open.
    function open(uint8 studySeed, bool invite, uint32 duration) public {
        uint256 k = studySeed % STUDIES;
        uint64 study = studies[k];
        (,, uint32 roundCount,,,) = rounds.studyOf(study);
        if (roundCount >= MAX_ROUNDS) return;
        (, bytes32 base) = rounds.latestModel(study);
        // Now and then a stale base (the genesis model after a commit), which the registry must refuse.
        if (duration % 7 == 0) (,,,, base,) = rounds.studyOf(study);
        address[] memory invited = new address[](invite ? 4 : 0);
        for (uint256 i; i < invited.length; ++i) {
            invited[i] = actors[i];
        }
        uint64 deadline = uint64(block.timestamp) + 1 + duration % 2 days;
        vm.prank(coordinator);
        try rounds.openRound(study, base, deadline, invited) returns (uint32 round) {
            _ghost[k][round].base = base;
        } catch {}
    }

    /// @notice An actor submits an update to the study's last round; in the budgeted study it declares
    /// `epsilon` as its cumulative spend.
    function submit(uint8 studySeed, uint8 actorSeed, uint64 epsilon, uint64 samples) public {
        uint256 k = studySeed % STUDIES;
        uint256 a = actorSeed % actors.length;
        (uint64 study, uint32 round) = _lastRound(k);
        if (round == 0) return;
        uint8 phase = _phase(k, round);
        bytes memory updateCid = cid(uint256(keccak256(abi.encode(k, round, a))));
        bytes32 digest = keccak256(abi.encode(k, round, a, "update"));
        samples = 1 + samples % (MAX_SAMPLES + 100); // now and then over the study's cap
        vm.prank(actors[a]);
        if (k == 0) {
            // Mostly a little more than the last spend; now and then less, or past the budget.
            epsilon = epsilon % 8 == 0 ? epsilon % (EPSILON_BUDGET * 2) : ghostSpent[a] + epsilon % (EPSILON_BUDGET / 6);
            // Noise 1.0, sample rate 0.25, clip 1.0 (in 1e-9), 12 steps, then the cumulative epsilon.
            uint256 declaration = (uint256(1e9) << 192) | (uint256(25e7) << 160) | (uint256(1e9) << 96)
                | (uint256(12) << 64) | epsilon;
            // A private update publishes no sample count (0); now and then one that does, to be refused.
            uint64 sent = samples % 7 == 0 ? samples : 0;
            try rounds.submitPrivateUpdate(study, round, updateCid, digest, sent, declaration) {
                _accepted(k, round, a, phase, sent);
                if (epsilon < ghostSpent[a]) violation = "a hospital's declared spend decreased";
                ghostSpent[a] = epsilon;
            } catch {}
        } else {
            try rounds.submitUpdate(study, round, updateCid, digest, samples) {
                _accepted(k, round, a, phase, samples);
            } catch {}
        }
    }

    /// @notice An actor posts a message in the secure study's current round.
    function post(uint8 actorSeed, uint8 phaseSeed) public {
        (uint64 study, uint32 round) = _lastRound(1);
        if (round == 0) return;
        uint256 a = actorSeed % actors.length;
        uint8 phase = phaseSeed % 5;
        vm.prank(actors[a]);
        try rounds.postSecureMessage(
            study, round, ISecureRounds.SecurePhase(phase), cid(uint256(keccak256(abi.encode(round, a, phase)))), bytes32(uint256(a + 1))
        ) {} catch {}
    }

    /// @notice The coordinator (or, to be refused, a hospital) closes the secure round's current phase.
    function close(bool byHospital) public {
        (uint64 study, uint32 round) = _lastRound(1);
        if (round == 0) return;
        uint8 phase = _phase(1, round);
        vm.prank(byHospital ? actors[0] : coordinator);
        try rounds.closeSecurePhase(study, round, ISecureRounds.SecurePhase(phase)) {
            if (byHospital) violation = "a hospital closed a secure phase";
            GhostRound storage g = _ghost[1][round];
            if (phase + 1 > g.maxPhase) g.maxPhase = phase + 1;
        } catch {}
    }

    /// @notice The coordinator commits the study's last round with its submitters, rejecting some.
    function commit(uint8 studySeed, uint8 rejectSeed) public {
        uint256 k = studySeed % STUDIES;
        (uint64 study, uint32 round) = _lastRound(k);
        if (round == 0) return;
        GhostRound storage g = _ghost[k][round];
        address[] memory submitters = new address[](g.submitted);
        for (uint256 i; i < submitters.length; ++i) {
            submitters[i] = g.order[i];
        }
        uint256 rejected = submitters.length == 0 ? 0 : uint256(rejectSeed) % (1 << submitters.length);
        uint8 phase = _phase(k, round);
        bytes32 digest = keccak256(abi.encode(k, round, "aggregate"));
        bytes memory aggregateCid = cid(uint256(digest));
        vm.prank(coordinator);
        try rounds.commitAggregate(study, round, submitters, rejected, aggregateCid, digest) {
            g.aggregate = keccak256(abi.encode(aggregateCid, digest));
            g.committedFinished = phase == uint8(ISecureRounds.SecurePhase.Finished);
        } catch {}
    }

    /// @notice The step a live study takes next, so that random sequences reach commits and every
    /// secure phase: open a round; collect updates (masked inputs in their phase); post and close each
    /// secure phase; commit once the quorum is in.
    function progress(uint8 studySeed, uint8 seed) external {
        // A few steps a call: the random calls between them (pauses, role losses, time) still interleave.
        for (uint8 i; i < 8; ++i) {
            _step(studySeed, seed + i);
        }
    }

    function _step(uint8 studySeed, uint8 seed) private {
        uint256 k = studySeed % STUDIES;
        (uint64 study, uint32 round) = _lastRound(k);
        IStudyRounds.RoundStatus status = IStudyRounds.RoundStatus.None;
        if (round != 0) (status,,,,,,,) = rounds.roundOf(study, round);
        if (status != IStudyRounds.RoundStatus.Open) return open(studySeed, seed % 2 == 0, 1 days);
        uint16 submitted = _ghost[k][round].submitted;
        uint8 phase = _phase(k, round);
        bool finished = k == 0 || phase == uint8(ISecureRounds.SecurePhase.Finished);
        // Now and then a commit before the phases are done, which the registry must refuse.
        if (!finished && submitted >= QUORUM && seed % 5 == 0) return commit(studySeed, 0);
        if (k == 1 && phase != uint8(ISecureRounds.SecurePhase.MaskedInputs) && !finished) {
            post(seed, phase);
            return close(false);
        }
        if (submitted < QUORUM + seed % 2) return submit(studySeed, uint8(submitted + seed), seed, seed);
        if (!finished) return close(false);
        commit(studySeed, seed % 4 == 0 ? seed : 0);
    }

    /// @notice The coordinator cancels the study's last round (time moved past its deadline first).
    function cancel(uint8 studySeed, bool late) external {
        uint256 k = studySeed % STUDIES;
        (uint64 study, uint32 round) = _lastRound(k);
        if (round == 0) return;
        (, uint64 deadline,,,,,,) = rounds.roundOf(study, round);
        if (late && block.timestamp <= deadline) vm.warp(deadline + 1);
        GhostRound storage g = _ghost[k][round];
        address[] memory submitters = new address[](g.submitted);
        for (uint256 i; i < submitters.length; ++i) {
            submitters[i] = g.order[i];
        }
        vm.prank(coordinator);
        try rounds.cancelRound(study, round, submitters, 0) {} catch {}
    }

    /// @notice The admin takes the participant role from a hospital (now and then), or gives it back.
    function toggleParticipant(uint8 actorSeed) external {
        address hospital = actors[actorSeed % 4];
        bytes32 role = access.PARTICIPANT_ROLE();
        bool holds = access.hasRole(role, hospital);
        if (holds && actorSeed % 8 != 0) return;
        vm.prank(admin); // after the reads: a prank applies to the next call only
        if (holds) access.revokeRole(role, hospital);
        else access.grantRole(role, hospital);
    }

    /// @notice The guardian pauses the consortium (now and then), or unpauses it.
    function togglePause(uint8 seed) external {
        bool paused = access.paused();
        if (!paused && seed % 8 != 0) return;
        vm.prank(guardian);
        if (paused) access.unpause();
        else access.pause();
    }

    /// @notice Time moves on (up to six hours).
    function advance(uint32 seconds_) external {
        vm.warp(block.timestamp + seconds_ % 6 hours);
        vm.roll(block.number + 1);
    }

    // ----- what the invariants read -----

    function studyCount() external pure returns (uint256) {
        return STUDIES;
    }

    function ghost(uint256 k, uint32 round) external view returns (GhostRound memory) {
        return _ghost[k][round];
    }

    function timeNow() external view returns (uint256) {
        return block.timestamp;
    }

    function blockNow() external view returns (uint256) {
        return block.number;
    }

    // ----- plumbing -----

    function _accepted(uint256 k, uint32 round, uint256 a, uint8 phase, uint64 samples) private {
        GhostRound storage g = _ghost[k][round];
        if (g.submittedMask & (1 << a) != 0) violation = "an actor's second update to a round was taken";
        if (a == 4) violation = "a stranger's update was taken";
        if (k == 0 && samples != 0) violation = "a private update published a sample count";
        if (samples > MAX_SAMPLES) violation = "an update over the study's sample cap was taken";
        if (k == 1 && phase != uint8(ISecureRounds.SecurePhase.MaskedInputs)) g.updateOutsidePhase = true;
        g.submittedMask |= uint8(1 << a);
        g.order[g.submitted++] = actors[a];
    }

    function _lastRound(uint256 k) private view returns (uint64 study, uint32 round) {
        study = studies[k];
        (,, round,,,) = rounds.studyOf(study);
    }

    function _phase(uint256 k, uint32 round) private view returns (uint8) {
        (, ISecureRounds.SecurePhase phase) = rounds.secureRoundOf(studies[k], round);
        return uint8(phase);
    }
}
