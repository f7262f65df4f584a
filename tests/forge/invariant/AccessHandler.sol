// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Consortium} from "../utils/Consortium.sol";
import {Vm} from "../utils/Vm.sol";

/// @notice The actor forge's invariant runner drives: every call is one transaction of the admin, the
/// guardian, a hospital, a patient (directly or by a relayed signature), a reader or the stranger.
/// Most calls stay in the current block; {advance} alone moves to a later block and time, so several
/// transactions share a block, as on a real chain. Each successful step is written to a ghost history
/// (a step counter, not block numbers) that the invariants read: what the contract answers must follow
/// from that history, never from its packed storage.
contract AccessHandler is Consortium {
    Vm private constant vm = Vm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);

    /// @notice The ghost history of one (record, user) pair. Steps are numbered from 1; 0 is never.
    struct Pair {
        uint64 grantLanded; // step that wrote the current grant
        uint64 grantLandedBlock;
        uint64 grantIssued; // step at which its author decided it (signing, for a relayed signature)
        uint64 grantIssuedBlock;
        bool grantIssuedWithRole; // the grantee held a reading role when the grant was decided
        bool grantLandedAsDoctor; // the grantee held the doctor role when the grant was written
        uint64 expiry;
        uint64 revoked; // step of the last revocation
        uint64 consentLanded;
        uint64 consentIssued;
        uint64 consentBound; // expiry the patient agreed to with its consent (0: none stated)
        uint64 withdrawn; // step of the last withdrawal of consent (or revocation)
        uint64 emergencyOpened;
        uint64 emergencyExpiry;
        uint64 emergencyClosed;
    }

    /// @notice A patient's signature, issued now and relayed (or not, or cancelled) later.
    struct Signature {
        bool isGrant;
        uint8 record;
        uint8 reader;
        uint64 expiry; // for a consent, 0 withdraws
        bool cancelled;
        uint256 nonce;
        uint256 deadline;
        bytes signature;
        uint64 issued;
        uint64 issuedBlock;
        bool issuedWithRole;
    }

    uint256 internal constant DOCTOR_BIT = 1 << 3;
    uint256 internal constant RESEARCHER_BIT = 1 << 4;
    uint256 internal constant EMERGENCY_BIT = 1 << 6;
    uint256 internal constant READING_BITS = DOCTOR_BIT | RESEARCHER_BIT | EMERGENCY_BIT;
    bytes4 internal constant ENFORCED_PAUSE = bytes4(keccak256("EnforcedPause()"));

    /// @notice The accounts grants are made to and roles change for; the last is the stranger, who
    /// is granted access but never given a role.
    address[5] public readers;
    /// @notice Every account the invariants ask `checkAccess` about.
    address[9] public users;

    uint64 public step;
    uint256 public blockNow;
    uint256 public timeNow;
    mapping(uint256 record => bool) public retired;
    mapping(uint256 record => mapping(address user => Pair)) internal _pairs;
    mapping(address user => uint64) public lostAt;
    mapping(address user => uint64) public lostAtBlock;
    Signature[] internal _signatures;

    /// @notice Set when a key was shared with someone the policy did not let read at that moment.
    string public keyShareViolation;
    /// @notice Set when the pause refused a step that only reduces access (issue 11, item 6).
    string public pauseBlockedReduction;
    /// @notice Set when break-glass opened more often than allowed, or within the cooldown.
    string public breakGlassViolation;
    mapping(uint256 record => mapping(address user => uint256)) public emergencyOpenings;
    mapping(uint256 record => mapping(address user => uint256)) public emergencyClosedByOtherAt;
    /// @notice Set when a signature its patient had cancelled was relayed.
    string public cancelledSignatureRelayed;

    /// @notice How often each kind of step succeeded, to see that the campaign reaches every path.
    mapping(bytes32 kind => uint256) public successes;

    constructor() {
        _deployConsortium();
        readers = [doctor, researcher, medic, shifter, stranger];
        users = [doctor, researcher, medic, shifter, stranger, patient1, patient2, hospital, hospital2];
        blockNow = block.number;
        timeNow = block.timestamp;
    }

    // ----- views for the invariants -----

    function accessContract() external view returns (address) {
        return address(access);
    }

    function recordAt(uint256 i) external view returns (bytes32) {
        return records[i];
    }

    function pair(uint256 record, address user) external view returns (Pair memory) {
        return _pairs[record][user];
    }

    function strangerAccount() external view returns (address) {
        return stranger;
    }

    function roles(address user) public view returns (uint256) {
        return access.rolesOf(user);
    }

    /// @notice Whether the ghost history lets `user`'s break-glass access to `record` pass now.
    function emergencyLive(uint256 record, address user) public view returns (bool) {
        Pair memory p = _pairs[record][user];
        return p.emergencyOpened > p.emergencyClosed && p.emergencyOpened > lostAt[user]
            && p.emergencyExpiry > timeNow && roles(user) & EMERGENCY_BIT != 0;
    }

    /// @notice Whether the patient decided its consent (signed it, or sent it) after its last
    /// withdrawal and the researcher's last role loss, and it is within the expiry the patient set.
    function consentDecided(uint256 record, address user) public view returns (bool) {
        Pair memory p = _pairs[record][user];
        return p.consentIssued > p.withdrawn && p.consentIssued > lostAt[user]
            && (p.consentBound == 0 || p.consentBound > timeNow);
    }

    /// @notice Whether consent landed after the last withdrawal and the last role loss.
    function consentLanded(uint256 record, address user) public view returns (bool) {
        Pair memory p = _pairs[record][user];
        return p.consentLanded > p.withdrawn && p.consentLanded > lostAt[user];
    }

    // ----- the clock -----

    /// @notice Mine: the next block, `seconds_` later (1 s to 20 days).
    function advance(uint256 seconds_) external {
        blockNow += 1;
        timeNow += _bound(seconds_, 1, 20 days);
        _sync();
    }

    // ----- the admin: roles, one at a time or swapped in one multicall -----

    function grantRole(uint256 readerSeed, uint256 roleSeed) external {
        _sync();
        address account = _member(readerSeed);
        bytes32 role = _readingOrPatientRole(roleSeed);
        vm.prank(admin);
        try access.grantRole(role, account) {
            _count("grantRole");
        } catch {}
    }

    function revokeRole(uint256 readerSeed, uint256 roleSeed, bool renounce) external {
        _sync();
        address account = _member(readerSeed);
        bytes32 role = _readingOrPatientRole(roleSeed);
        uint256 before = roles(account);
        vm.prank(renounce ? account : admin);
        if (renounce) {
            try access.renounceRole(role, account) {} catch {}
        } else {
            try access.revokeRole(role, account) {} catch {}
        }
        _afterRoleChange(account, before, "revokeRole");
    }

    /// @notice Swap one reading role for another in one transaction (admin's multicall).
    function swapRole(uint256 readerSeed, uint256 fromSeed, uint256 toSeed) external {
        _sync();
        address account = _member(readerSeed);
        bytes[] memory calls = new bytes[](2);
        calls[0] = abi.encodeCall(access.revokeRole, (_readingOrPatientRole(fromSeed), account));
        calls[1] = abi.encodeCall(access.grantRole, (_readingOrPatientRole(toSeed), account));
        uint256 before = roles(account);
        vm.prank(admin);
        try access.multicall(calls) {
            _count("swapRole");
            // Revoking and re-granting the same role in one transaction still loses it for a moment.
            uint256 fromBit = _bitOf(fromSeed);
            if (before & fromBit & READING_BITS != 0) _lose(account);
        } catch {}
        _afterRoleChange(account, before, "roleChange");
    }

    // ----- the guardian -----

    function pause(uint256 seed) external {
        _sync();
        if (seed % 4 != 0) return; // pause shuts every pair off: keep it rare
        vm.prank(guardian);
        try access.pause() {
            _count("pause");
        } catch {}
    }

    function unpause() external {
        _sync();
        vm.prank(guardian);
        try access.unpause() {
            _count("unpause");
        } catch {}
    }

    // ----- the record's owner or patient -----

    function grant(uint256 recordSeed, uint256 readerSeed, uint256 duration, bool byPatient) external {
        _sync();
        (uint256 r, address reader) = (recordSeed % 3, readers[readerSeed % 5]);
        uint64 expiry = uint64(timeNow + _bound(duration, 1, 60 days));
        vm.prank(byPatient ? _patientOf(r) : _ownerOf(r));
        try access.grantAccess(records[r], reader, expiry) {
            _grantLanded(r, reader, expiry, byPatient, step, blockNow, _reads(reader));
            _count("grant");
        } catch {}
    }

    function grantBatch(uint256 recordSeed, uint256 readersMask, uint256 duration) external {
        _sync();
        uint256 r = recordSeed % 3;
        address[] memory batch = new address[](2);
        batch[0] = readers[readersMask % 5];
        batch[1] = readers[(readersMask >> 8) % 5];
        uint64 expiry = uint64(timeNow + _bound(duration, 1, 60 days));
        vm.prank(_ownerOf(r));
        try access.grantAccessBatch(records[r], batch, expiry) {
            for (uint256 i; i < 2; ++i) _grantLanded(r, batch[i], expiry, false, step, blockNow, _reads(batch[i]));
            _count("grantBatch");
        } catch {}
    }

    function revoke(uint256 recordSeed, uint256 readerSeed, bool byPatient) external {
        _sync();
        (uint256 r, address reader) = (recordSeed % 3, readers[readerSeed % 5]);
        vm.prank(byPatient ? _patientOf(r) : _ownerOf(r));
        try access.revokeAccess(records[r], reader) {
            Pair storage p = _pairs[r][reader];
            p.revoked = step;
            p.withdrawn = step;
            _count("revoke");
        } catch (bytes memory err) {
            _noteReductionRefused(err, "revokeAccess");
        }
    }

    function setConsent(uint256 recordSeed, uint256 readerSeed, bool given, uint256 duration) external {
        _sync();
        (uint256 r, address reader) = (recordSeed % 3, readers[readerSeed % 5]);
        uint64 expiry = given ? uint64(timeNow + _bound(duration, 1, 60 days)) : 0;
        vm.prank(_patientOf(r));
        try access.setConsent(records[r], reader, expiry) {
            _consentLanded(r, reader, given, step, expiry);
            _count(given ? bytes32("consent") : bytes32("withdraw"));
        } catch (bytes memory err) {
            if (!given) _noteReductionRefused(err, "setConsent(false)");
        }
    }

    function retire(uint256 recordSeed, uint256 seed) external {
        _sync();
        if (seed % 16 != 0) return; // a retired record is shut for good: keep it rare
        uint256 r = recordSeed % 3;
        vm.prank(_ownerOf(r));
        try access.retireRecord(records[r]) {
            retired[r] = true;
            _count("retire");
        } catch (bytes memory err) {
            _noteReductionRefused(err, "retireRecord");
        }
    }

    function rotate(uint256 recordSeed, uint256 cidSeed) external {
        _sync();
        uint256 r = recordSeed % 3;
        vm.prank(_ownerOf(r));
        try access.rotateRecord(records[r], cid(1000 + _bound(cidSeed, 0, 1 << 64))) {
            _count("rotate");
        } catch {}
    }

    /// @notice Share a data key, as the owner or the patient, with a reader, the owner or the patient;
    /// the owner may grant and share in one multicall. Whoever receives a key must be the owner, the
    /// patient, or pass `checkAccess` at that moment, and only the owner publishes into the owner's
    /// slot (issue 11, item 3).
    function shareKey(uint256 recordSeed, uint256 toSeed, bool byPatient, bool withGrant, uint256 duration)
        external
    {
        _sync();
        uint256 r = recordSeed % 3;
        uint256 t = toSeed % 7;
        address reader = t < 5 ? readers[t] : (t == 5 ? _ownerOf(r) : _patientOf(r));
        address sharer = byPatient ? _patientOf(r) : _ownerOf(r);
        withGrant = withGrant && t < 5;
        uint64 expiry = uint64(timeNow + _bound(duration, 1, 60 days));
        (bool ok, bytes[] memory calls) = _shareCalls(records[r], reader, withGrant, expiry);
        if (!ok) return;
        vm.prank(sharer);
        try access.multicall(calls) {
            if (withGrant) _grantLanded(r, reader, expiry, byPatient, step, blockNow, _reads(reader));
            _checkShare(r, reader, sharer, t < 5);
            _count(withGrant ? bytes32("grantAndShare") : bytes32("share"));
        } catch {}
    }

    function _shareCalls(bytes32 record, address reader, bool withGrant, uint64 expiry)
        internal
        view
        returns (bool ok, bytes[] memory calls)
    {
        uint32 version;
        try access.currentCid(record) returns (bytes memory, uint32 v) {
            version = v;
        } catch {
            return (false, calls);
        }
        address[] memory to = new address[](1);
        to[0] = reader;
        bytes[] memory wrapped = new bytes[](1);
        wrapped[0] = abi.encodePacked(bytes32(uint256(0xC0FFEE)));
        calls = new bytes[](withGrant ? 2 : 1);
        if (withGrant) calls[0] = abi.encodeCall(access.grantAccess, (record, reader, expiry));
        calls[calls.length - 1] = abi.encodeCall(access.shareDataKeys, (record, version, to, wrapped));
        return (true, calls);
    }

    /// @dev After a successful share: only the owner fills the owner's slot, and a reader who got a
    /// key passes now (the share ran last in its transaction, so the answer now is the answer then).
    function _checkShare(uint256 r, address reader, address sharer, bool isReader) internal {
        if (reader == _ownerOf(r) && sharer != reader) {
            keyShareViolation = "a key was published into the owner's slot by someone else";
        }
        if (isReader && !access.checkAccess(reader, records[r])) {
            keyShareViolation = "key shared with a reader without access";
        }
    }

    // ----- patients' signatures: issued now, relayed by the stranger now or much later -----

    /// @notice The patient signs a grant having seen the latest mined block (unordered nonce of its choosing).
    function patientSignsGrant(uint256 recordSeed, uint256 readerSeed, uint256 duration, uint256 nonce) external {
        _sync();
        uint64 expiry = uint64(timeNow + _bound(duration, 1, 60 days));
        _sign(true, recordSeed % 3, readerSeed % 5, expiry, nonce % 64);
        _count("signGrant");
    }

    /// @notice The patient signs a consent until some time, or a withdrawal.
    function patientSignsConsent(uint256 recordSeed, uint256 readerSeed, bool given, uint256 duration, uint256 nonce)
        external
    {
        _sync();
        uint64 expiry = given ? uint64(timeNow + _bound(duration, 1, 60 days)) : 0;
        _sign(false, recordSeed % 3, readerSeed % 5, expiry, nonce % 64);
        _count("signConsent");
    }

    /// @notice The patient cancels one of its outstanding signatures.
    function patientCancels(uint256 signatureSeed) external {
        _sync();
        if (_signatures.length == 0) return;
        Signature storage s = _signatures[signatureSeed % _signatures.length];
        vm.prank(_patientOf(s.record));
        try access.cancelSignature(s.nonce) {
            s.cancelled = true;
            _count("cancelSignature");
        } catch {}
    }

    function _sign(bool isGrant, uint256 r, uint256 readerIndex, uint64 expiry, uint256 nonce) internal {
        address patient = _patientOf(r);
        address reader = readers[readerIndex];
        uint256 deadline = timeNow + 30 days;
        bytes memory sig = isGrant
            ? signGrant(patient, records[r], reader, expiry, nonce, uint64(blockNow - 1), deadline)
            : signConsent(patient, records[r], reader, expiry, nonce, uint64(blockNow - 1), deadline);
        _signatures.push(
            Signature(
                isGrant,
                uint8(r),
                uint8(readerIndex),
                expiry,
                false,
                nonce,
                deadline,
                sig,
                step,
                uint64(blockNow - 1),
                _reads(reader)
            )
        );
    }

    function relay(uint256 signatureSeed) external {
        _sync();
        if (_signatures.length == 0) return;
        Signature memory s = _signatures[signatureSeed % _signatures.length];
        address reader = readers[s.reader];
        bytes32 record = records[s.record];
        vm.prank(stranger);
        if (s.isGrant) {
            try access.grantAccessBySig(record, reader, s.expiry, s.nonce, s.issuedBlock, s.deadline, s.signature) {
                _grantLanded(s.record, reader, s.expiry, true, s.issued, s.issuedBlock, s.issuedWithRole);
                _relayed(s, "relayGrant");
            } catch {}
        } else {
            try access.setConsentBySig(record, reader, s.expiry, s.nonce, s.issuedBlock, s.deadline, s.signature) {
                _consentLanded(s.record, reader, s.expiry != 0, s.issued, s.expiry);
                _relayed(s, "relayConsent");
            } catch (bytes memory err) {
                if (s.expiry == 0) _noteReductionRefused(err, "setConsentBySig(withdraw)");
            }
        }
    }

    function _relayed(Signature memory s, bytes32 kind) internal {
        if (s.cancelled) cancelledSignatureRelayed = "a cancelled signature was relayed";
        _count(kind);
    }

    // ----- break-glass -----

    function openEmergency(uint256 recordSeed, uint256 readerSeed, uint256 duration) external {
        _sync();
        (uint256 r, address reader) = (recordSeed % 3, readers[readerSeed % 5]);
        uint64 d = uint64(_bound(duration, 1, 12 hours));
        vm.prank(reader);
        try access.openEmergencyAccess(records[r], keccak256("reason"), d) {
            Pair storage p = _pairs[r][reader];
            p.emergencyOpened = step;
            p.emergencyExpiry = uint64(timeNow) + d;
            uint256 closedAt = emergencyClosedByOtherAt[r][reader];
            if (++emergencyOpenings[r][reader] > access.MAX_EMERGENCY_OPENINGS()) {
                breakGlassViolation = "break-glass opened more than MAX_EMERGENCY_OPENINGS times";
            }
            if (closedAt != 0 && timeNow < closedAt + access.EMERGENCY_COOLDOWN()) {
                breakGlassViolation = "break-glass reopened within the cooldown after its closing";
            }
            _count("openEmergency");
        } catch {}
    }

    function closeEmergency(uint256 recordSeed, uint256 readerSeed, uint256 bySeed) external {
        _sync();
        (uint256 r, address reader) = (recordSeed % 3, readers[readerSeed % 5]);
        address by = [reader, _ownerOf(r), _patientOf(r)][bySeed % 3];
        vm.prank(by);
        try access.closeEmergencyAccess(records[r], reader) {
            _pairs[r][reader].emergencyClosed = step;
            if (by != reader) emergencyClosedByOtherAt[r][reader] = timeNow;
            _count("closeEmergency");
        } catch (bytes memory err) {
            _noteReductionRefused(err, "closeEmergencyAccess");
        }
    }

    // ----- internals -----

    /// @dev Every call starts in the handler's block and time, and counts as one step.
    function _sync() internal {
        vm.roll(blockNow);
        vm.warp(timeNow);
        step += 1;
    }

    /// @dev A step that only reduces access failed: note it if the pause was the reason.
    function _noteReductionRefused(bytes memory err, string memory what) internal {
        if (err.length >= 4 && bytes4(err) == ENFORCED_PAUSE) pauseBlockedReduction = what;
    }

    function _count(bytes32 kind) internal {
        successes[kind] += 1;
    }

    function _afterRoleChange(address account, uint256 before, bytes32 kind) internal {
        uint256 after_ = roles(account);
        if (after_ != before) _count(kind);
        if (before & ~after_ & READING_BITS != 0) _lose(account);
    }

    function _lose(address account) internal {
        lostAt[account] = step;
        lostAtBlock[account] = uint64(blockNow);
    }

    function _bitOf(uint256 roleSeed) internal pure returns (uint256) {
        return [DOCTOR_BIT, RESEARCHER_BIT, EMERGENCY_BIT, uint256(1 << 5)][roleSeed % 4];
    }

    function _grantLanded(
        uint256 r,
        address reader,
        uint64 expiry,
        bool byPatient,
        uint64 issued,
        uint256 issuedBlock,
        bool issuedWithRole
    ) internal {
        Pair storage p = _pairs[r][reader];
        p.grantLanded = step;
        p.grantLandedBlock = uint64(blockNow);
        p.grantIssued = issued;
        p.grantIssuedBlock = uint64(issuedBlock);
        p.grantIssuedWithRole = issuedWithRole;
        p.grantLandedAsDoctor = roles(reader) & DOCTOR_BIT != 0;
        p.expiry = expiry;
        if (byPatient) _consentLanded(r, reader, true, issued, expiry);
    }

    function _consentLanded(uint256 r, address reader, bool given, uint64 issued, uint64 bound) internal {
        Pair storage p = _pairs[r][reader];
        if (given) {
            p.consentLanded = step;
            p.consentIssued = issued;
            p.consentBound = bound;
        } else {
            p.withdrawn = step;
        }
    }

    function _reads(address account) internal view returns (bool) {
        return roles(account) & READING_BITS != 0;
    }

    /// @dev A reader whose roles may change: never the stranger.
    function _member(uint256 seed) internal view returns (address) {
        return readers[seed % 4];
    }

    function _readingOrPatientRole(uint256 seed) internal view returns (bytes32) {
        uint256 i = seed % 4;
        if (i == 0) return access.DOCTOR_ROLE();
        if (i == 1) return access.RESEARCHER_ROLE();
        if (i == 2) return access.EMERGENCY_ROLE();
        return access.PATIENT_ROLE();
    }

    function _ownerOf(uint256 r) internal view returns (address) {
        return r == 2 ? hospital2 : hospital;
    }

    function _patientOf(uint256 r) internal view returns (address) {
        return r == 1 ? patient2 : patient1;
    }

    function _bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        return lo + x % (hi - lo + 1);
    }
}
