import base64
import dataclasses
import json

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fl.secure_aggregation import (
    GROUP_ORDER,
    BulletinBoardError,
    FixedPointCodec,
    InMemoryBulletinBoard,
    InvalidPublicKey,
    KeyAdvertisement,
    MalformedMessage,
    Complaint,
    MaskedInput,
    Phase,
    PostingUnavailable,
    SecureAggregationClient,
    SecureAggregationError,
    SecureAggregationServer,
    SessionParameters,
    ShareKeysMessage,
    SurvivorSetMismatch,
    UnmaskingResponse,
    board_roster,
    graph_failure_bounds,
    neighbourhoods,
    secure_sum_from_board,
    secure_weighted_sum,
)

LENGTH = 64
IDS = [f"hospital_{i}" for i in range(1, 6)]


def session(threshold=3, length=LENGTH, codec=FixedPointCodec(), session_id=b"round-0000001"):
    return SessionParameters(session_id=session_id, threshold=threshold, vector_length=length, codec=codec)


def inputs(seed=0, ids=IDS, length=LENGTH):
    rng = np.random.default_rng(seed)
    return {client: (rng.normal(scale=5.0, size=length), int(rng.integers(1, 200))) for client in ids}


def plain_integer_sum(data, codec, included):
    total = sum(codec.encode(values, weight) for client, (values, weight) in data.items() if client in included)
    return codec.decode_integers(total)


class Run:
    """The four rounds step by step over an in-memory board, so tests can act between them."""

    def __init__(self, params, data, advertise=None):
        self.params = params
        self.data = data
        self.board = InMemoryBulletinBoard()
        self.board.open_session(params.session_id, list(data))
        self.clients = {c: SecureAggregationClient(c, params, self.board) for c in data}
        self.server = SecureAggregationServer(params, self.board)
        for c in advertise or data:
            self.clients[c].advertise_keys()
        self.roster = self.server.close_keys()

    def share(self, senders=None):
        for c in senders or self.data:
            self.clients[c].share_keys()
        return self.server.close_shares()

    def mask(self, senders):
        return [self.clients[c].masked_input(*self.data[c]) for c in senders]

    def to_survivors(self, senders, sharers=None):
        self.share(sharers)
        self.masked = self.mask(senders)
        return self.server.close_masked_inputs()

    def post(self, phase, sender, message):
        self.board.post(self.params.session_id, phase, sender, message.to_bytes(self.params.session_id))


@pytest.mark.parametrize("modulus_bits", [64, 48])
def test_secure_sum_equals_the_plain_sum_exactly(modulus_bits):
    codec = FixedPointCodec(fractional_bits=16, modulus_bits=modulus_bits, value_bound=64.0, max_total_weight=1000)
    data = inputs()
    result = secure_weighted_sum(data, session(codec=codec))
    integers, weight = plain_integer_sum(data, codec, IDS)
    assert np.array_equal(result.integer_sum, integers)
    assert result.total_weight == weight == sum(w for _, w in data.values())
    float_sum = sum(w * v for v, w in data.values())
    # Only the fixed-point rounding separates it from the float sum: at most half a step per client.
    assert np.abs(result.weighted_sum - float_sum).max() <= weight * 2.0**-17
    assert np.allclose(result.mean, float_sum / weight, atol=1e-5)
    assert result.survivors == tuple(IDS) and result.dropped == ()


@pytest.mark.parametrize("dropped", [(), ("hospital_2",), ("hospital_1", "hospital_5")])
def test_up_to_n_minus_t_dropouts_are_recovered(dropped):
    codec = FixedPointCodec()
    data = inputs(seed=1)
    result = secure_weighted_sum(data, session(threshold=3, codec=codec), dropouts=dropped)
    survivors = [c for c in IDS if c not in dropped]
    integers, weight = plain_integer_sum(data, codec, survivors)
    assert np.array_equal(result.integer_sum, integers)
    assert result.total_weight == weight
    assert result.dropped == tuple(sorted(dropped))




def test_more_than_n_minus_t_dropouts_fail_clearly():
    with pytest.raises(
        SecureAggregationError, match=r"3 of 5 clients dropped out, leaving 2; at least 3 must survive"
    ):
        secure_weighted_sum(inputs(), session(threshold=3), dropouts=IDS[:3])


def test_clients_that_never_share_keys_are_left_out_of_the_masks():
    run = Run(session(threshold=3), inputs())
    survivors = run.to_survivors(IDS[:4], sharers=IDS[:4])  # hospital_5 vanished before sharing keys
    for c in survivors:
        run.clients[c].unmask(survivors)
    result = run.server.finish()
    integers, _ = plain_integer_sum(run.data, session().codec, IDS[:4])
    assert np.array_equal(result.integer_sum, integers)
    assert result.dropped == ()


def test_masked_vectors_look_random_and_unrelated_to_the_inputs():
    zeros = {c: (np.zeros(4096), 1) for c in IDS}
    run = Run(session(length=4096), zeros)
    run.share()
    vectors = [m.vector for m in run.mask(IDS)]
    # Identical inputs, yet pairwise unrelated outputs (a coincidence has chance 2^-64 per entry).
    for i in range(len(vectors)):
        for j in range(i + 1, len(vectors)):
            assert np.count_nonzero(vectors[i] == vectors[j]) == 0
    # Every bit of the masked zeros is set about half the time.
    bits = np.unpackbits(vectors[0].view(np.uint8)).reshape(-1, 64).mean(axis=0)
    assert np.all(np.abs(bits - 0.5) < 0.05)
    encoded = run.params.codec.encode(np.zeros(4096), 1)
    assert np.count_nonzero(vectors[0] == encoded) == 0


def test_the_same_input_is_masked_differently_in_each_session():
    data = {c: (np.ones(LENGTH), 2) for c in IDS}
    first = Run(session(session_id=b"round-0000001"), data)
    first.share()
    second = Run(session(session_id=b"round-0000002"), data)
    second.share()
    assert np.count_nonzero(first.mask(IDS[:1])[0].vector == second.mask(IDS[:1])[0].vector) == 0


class TamperingBoard(InMemoryBulletinBoard):
    """A board whose postings by one sender (or a tuple of them) in one phase pass through ``tamper``:
    clients that lie."""

    def __init__(self, sender, phase, tamper):
        super().__init__()
        self.targets, self.tamper = {(s, phase) for s in (sender if isinstance(sender, tuple) else (sender,))}, tamper

    def post(self, session_id, phase, sender, payload):
        if (sender, phase) in self.targets:
            payload = self.tamper(payload, session_id, sender)
        super().post(session_id, phase, sender, payload)


def tampered_run(params, data, sender, phase, tamper):
    run = Run.__new__(Run)
    run.params, run.data = params, data
    run.board = TamperingBoard(sender, phase, tamper)
    run.board.open_session(params.session_id, list(data))
    run.clients = {c: SecureAggregationClient(c, params, run.board) for c in data}
    run.server = SecureAggregationServer(params, run.board)
    for c in data:
        run.clients[c].advertise_keys()
    run.roster = run.server.close_keys()
    return run


def _rewrite_share(to_hospital_2):
    def tamper(payload, session_id, sender):
        message = ShareKeysMessage.from_bytes(payload, session_id, sender)
        shares = tuple(to_hospital_2(share, message) if share.recipient == "hospital_2" else share for share in message.shares)
        return dataclasses.replace(message, shares=shares).to_bytes(session_id)
    return tamper


class WrongShareClient(SecureAggregationClient):
    """Encrypts, for ``victim``, shares that are not on its committed polynomials (a lying dealer)."""

    victim = "hospital_2"

    def share_plaintext(self, recipient, x):
        plaintext = super().share_plaintext(recipient, x)
        return plaintext if recipient != self.victim else plaintext[:-1] + bytes([plaintext[-1] ^ 1])


def _excluded_run(run):
    run.share()
    run.masked = run.mask(IDS)
    survivors = run.server.close_masked_inputs()
    for c in survivors:
        run.clients[c].unmask(survivors)
    return survivors, run.server.finish()


@pytest.mark.parametrize(
    "to_hospital_2",
    [
        # a flipped bit in the ciphertext
        lambda share, message: dataclasses.replace(share, ciphertext=share.ciphertext[:-1] + bytes([share.ciphertext[-1] ^ 1])),
        # the share meant for hospital_3, addressed to hospital_2
        lambda share, message: dataclasses.replace(
            next(s for s in message.shares if s.recipient == "hospital_3"), recipient="hospital_2"),
    ],
)
def test_a_share_that_does_not_decrypt_is_a_checkable_complaint_and_its_sender_is_excluded(to_hospital_2):
    """Issue 18 item 4: the recipient goes on (it does not abandon the round), proves the share bad in its
    masked input, and every reader excludes the sender alike: recovered as a dropout, its input not counted."""
    run = tampered_run(session(), inputs(), "hospital_1", Phase.SHARES, _rewrite_share(to_hospital_2))
    survivors, result = _excluded_run(run)
    (complaint,) = run.masked[1].complaints
    assert complaint.accused == "hospital_1" and run.masked[1].client_id == "hospital_2"
    assert survivors == tuple(IDS[1:]) and result.excluded == ("hospital_1",) and result.dropped == ("hospital_1",)
    assert np.array_equal(result.integer_sum, plain_integer_sum(run.data, run.params.codec, IDS[1:])[0])
    # hospital_1's masked input is on the board, but no honest survivor revealed its self-mask share.
    for posting in run.board.read(run.params.session_id, Phase.UNMASKING):
        assert "hospital_1" not in UnmaskingResponse.from_bytes(posting.payload, run.params.session_id,
                                                                posting.sender).self_mask_shares


def test_a_share_off_the_committed_polynomial_is_caught_by_feldmans_check_and_proven():
    params = session()
    run = Run.__new__(Run)
    run.params, run.data = params, inputs()
    run.board = InMemoryBulletinBoard()
    run.board.open_session(params.session_id, list(run.data))
    run.clients = {c: (WrongShareClient if c == "hospital_4" else SecureAggregationClient)(c, params, run.board)
                   for c in run.data}
    run.server = SecureAggregationServer(params, run.board)
    for client in run.clients.values():
        client.advertise_keys()
    run.server.close_keys()
    survivors, result = _excluded_run(run)
    assert result.excluded == ("hospital_4",) and "hospital_4" not in survivors
    assert np.array_equal(result.integer_sum, plain_integer_sum(run.data, params.codec,
                                                                [c for c in IDS if c != "hospital_4"])[0])


def test_a_false_complaint_excludes_no_one():
    """A complaint must prove the share bad: one against a good share (or with a forged channel point) is
    ignored by every reader."""
    def lie(payload, session_id, sender):
        message = MaskedInput.from_bytes(payload, session_id, sender, LENGTH + 1)
        client = run.clients[sender]
        accused = "hospital_1"
        point, proof = client_proof(client, accused, session_id)
        forged = bytes([point[0]]) + bytes(31) + b"\x01"
        complaints = (Complaint(accused, point, proof), Complaint("hospital_4", forged, proof))
        return dataclasses.replace(message, complaints=complaints).to_bytes(session_id)

    run = tampered_run(session(), inputs(), "hospital_3", Phase.MASKED_INPUTS, lie)
    survivors, result = _excluded_run(run)
    assert result.excluded == () and survivors == tuple(IDS)
    assert np.array_equal(result.integer_sum, plain_integer_sum(run.data, run.params.codec, IDS)[0])


def client_proof(client, accused, session_id):
    from fl.secure_aggregation import _prove_channel
    return _prove_channel(client._encryption_key, client._roster[accused].encryption_public_key, session_id)


def _corrupt(field, owner):
    def tamper(payload, session_id, sender):
        response = UnmaskingResponse.from_bytes(payload, session_id, sender)
        shares = dict(getattr(response, field))
        shares[owner] = (shares[owner] + 1) % GROUP_ORDER
        return dataclasses.replace(response, **{field: shares}).to_bytes(session_id)
    return tamper


def _unmask_four_of_five(run):
    run.share()
    run.mask(IDS[:4])
    survivors = run.server.close_masked_inputs()
    for c in survivors:
        run.clients[c].unmask(survivors)
    return run.server.finish


@pytest.mark.parametrize("field, owner", [("self_mask_shares", "hospital_1"), ("masking_key_shares", "hospital_5")])
def test_a_corrupt_revealed_share_cannot_stall_or_skew_the_sum(field, owner):
    """One survivor (the first to answer) reveals a corrupt share of a survivor's seed or of the dropout's
    key: Feldman's check drops it on sight and the next honest share takes its place; the sum is exact."""
    run = tampered_run(session(threshold=3), inputs(), "hospital_1", Phase.UNMASKING, _corrupt(field, owner))
    result = _unmask_four_of_five(run)()
    assert np.array_equal(result.integer_sum, plain_integer_sum(run.data, run.params.codec, IDS[:4])[0])
    assert result.survivors == tuple(IDS[:4]) and result.dropped == ("hospital_5",)


@pytest.mark.parametrize(
    "field, owner, message",
    [
        ("self_mask_shares", "hospital_1", "only 2 valid self-mask shares of 'hospital_1'; threshold 3 needs more "
                                           r"\(corrupt shares from hospital_2, hospital_3 were dropped\)"),
        ("masking_key_shares", "hospital_5", "only 2 valid masking-key shares of 'hospital_5'; threshold 3"),
    ],
)
def test_too_many_corrupt_revealed_shares_fail_clearly(field, owner, message):
    """Two liars of four survivors at t = 3: two honest shares are left, and no wrong secret is accepted."""
    run = tampered_run(session(threshold=3), inputs(), ("hospital_2", "hospital_3"), Phase.UNMASKING,
                       _corrupt(field, owner))
    with pytest.raises(SecureAggregationError, match=message):
        _unmask_four_of_five(run)()


def test_reconstruction_is_linear_n14_t8_one_corrupt_responder():
    """Issue 18: n = 14 failed outright under subset search; each share is now checked once."""
    ids = [f"h{i:02d}" for i in range(14)]
    data = inputs(ids=ids, length=8)
    run = tampered_run(session(threshold=8, length=8), data, "h00", Phase.UNMASKING,
                       lambda payload, sid, sender: _corrupt_all(payload, sid, sender))
    run.share()
    run.mask(ids[:13])
    survivors = run.server.close_masked_inputs()
    for c in survivors:
        run.clients[c].unmask(survivors)
    result = run.server.finish()
    assert np.array_equal(result.integer_sum, plain_integer_sum(data, run.params.codec, ids[:13])[0])


def _corrupt_all(payload, session_id, sender):
    response = UnmaskingResponse.from_bytes(payload, session_id, sender)
    bump = {peer: (value + 1) % GROUP_ORDER for peer, value in response.self_mask_shares.items()}
    flip = {peer: (value + 1) % GROUP_ORDER for peer, value in response.masking_key_shares.items()}
    return dataclasses.replace(response, self_mask_shares=bump, masking_key_shares=flip).to_bytes(session_id)


def test_an_answer_for_another_survivor_set_is_dropped_by_every_reader():
    """Bonawitz et al.'s consistency check: each response names the survivor set it answers by its hash."""
    def other_set(payload, session_id, sender):
        response = UnmaskingResponse.from_bytes(payload, session_id, sender)
        return dataclasses.replace(response, survivors_digest=bytes(32)).to_bytes(session_id)

    run = tampered_run(session(threshold=3), inputs(), "hospital_2", Phase.UNMASKING, other_set)
    result = _unmask_four_of_five(run)()
    assert np.array_equal(result.integer_sum, plain_integer_sum(run.data, run.params.codec, IDS[:4])[0])
    run = tampered_run(session(threshold=3), inputs(), ("hospital_2", "hospital_3"), Phase.UNMASKING, other_set)
    with pytest.raises(SecureAggregationError, match="only 2 unmasking responses for the board's survivor set"):
        _unmask_four_of_five(run)()


class FlakyBoard(InMemoryBulletinBoard):
    """A board whose reads of the masked inputs fail ``failures`` times (a store that is down a while)."""

    def __init__(self, failures):
        super().__init__()
        self.failures = failures

    def read(self, session_id, phase):
        if phase is Phase.MASKED_INPUTS and self.failures:
            self.failures -= 1
            raise PostingUnavailable("the store is down")
        return super().read(session_id, phase)


def test_a_client_missing_a_masked_inputs_bytes_reveals_nothing_and_asks_again():
    """Issue 18 item 2: never guess the survivor set from a partial view."""
    params = session(threshold=3)
    run = Run.__new__(Run)
    run.params, run.data = params, inputs()
    run.board = FlakyBoard(0)
    run.board.open_session(params.session_id, list(run.data))
    run.clients = {c: SecureAggregationClient(c, params, run.board) for c in run.data}
    run.server = SecureAggregationServer(params, run.board)
    for client in run.clients.values():
        client.advertise_keys()
    run.server.close_keys()
    survivors = run.to_survivors(IDS[:4])
    run.board.failures = 2
    for _ in range(2):
        with pytest.raises(PostingUnavailable):
            run.clients["hospital_1"].unmask()
    assert run.board._sessions[params.session_id].postings[Phase.UNMASKING] == []
    for c in survivors:
        run.clients[c].unmask(survivors)
    assert np.array_equal(run.server.finish().integer_sum, plain_integer_sum(run.data, params.codec, IDS[:4])[0])


def test_share_indices_are_roster_positions_not_declared():
    run = Run(session(threshold=3), inputs())
    survivors = run.to_survivors(IDS)
    response = run.clients["hospital_3"].unmask(survivors)
    payload = json.loads(response.to_bytes(run.params.session_id))
    assert "index" not in json.dumps(payload["self_mask_shares"])
    assert set(payload) == {"kind", "session", "client", "survivors", "self_mask_shares", "masking_key_shares"}


@pytest.mark.parametrize("dropped", [(), ("h03", "h11", "h17")])
def test_secagg_plus_shares_only_with_graph_neighbours_and_sums_exactly(dropped):
    ids = [f"h{i:02d}" for i in range(20)]
    data = inputs(ids=ids, length=16)
    params = SessionParameters(b"round-0000001", 5, 16, graph_degree=8, graph_seed=b"block hash")
    result = secure_weighted_sum(data, params, dropouts=dropped)
    survivors = [c for c in ids if c not in dropped]
    assert np.array_equal(result.integer_sum, plain_integer_sum(data, params.codec, survivors)[0])
    assert result.dropped == tuple(dropped)
    graph = neighbourhoods(ids, 8, b"block hash")
    assert all(len(near) == 9 and member in near for member, near in graph.items())
    assert all(member in graph[peer] for member, near in graph.items() for peer in near)  # symmetric
    assert graph != neighbourhoods(ids, 8, b"another block"), "the graph follows the chain's seed"
    assert neighbourhoods(ids, 0, b"") == {member: tuple(ids) for member in ids}


def test_secagg_plus_states_its_failure_probability():
    bounds = graph_failure_bounds(20, 8, 5, dropout=0.1, corrupt=0.05)
    assert bounds["correctness"] < 0.02 and bounds["privacy"] < 1e-3
    assert graph_failure_bounds(20, 0, 11)["disconnection"] == 0.0
    with pytest.raises(SecureAggregationError, match=r"threshold 4 must exceed half of each neighbourhood of 9"):
        SessionParameters(b"round-0000001", 4, 1, graph_degree=8).check_roster_size(20)
    with pytest.raises(ValueError, match="graph_degree must be 0"):
        SessionParameters(b"round-0000001", 4, 1, graph_degree=7)


def test_unmasking_reveals_one_secret_per_peer_and_answers_only_once():
    run = Run(session(threshold=3), inputs())
    survivors = run.to_survivors(IDS[:4])
    response = run.clients["hospital_1"].unmask(survivors)
    assert set(response.self_mask_shares) == set(IDS[:4])
    assert set(response.masking_key_shares) == {"hospital_5"}
    with pytest.raises(SecureAggregationError, match="already answered"):
        run.clients["hospital_1"].unmask()


def test_a_survivor_that_goes_silent_after_its_masked_input_still_counts():
    run = Run(session(threshold=3), inputs(seed=2))
    survivors = run.to_survivors(IDS)
    for c in survivors[:-1]:  # hospital_5 sent its masked input, then went silent
        run.clients[c].unmask()
    result = run.server.finish()
    assert np.array_equal(result.integer_sum, plain_integer_sum(run.data, run.params.codec, IDS)[0])
    assert result.survivors == tuple(IDS) and result.dropped == ()


def test_too_few_unmasking_responses_fail():
    run = Run(session(threshold=3), inputs())
    survivors = run.to_survivors(IDS)
    for c in survivors[:2]:
        run.clients[c].unmask()
    with pytest.raises(SecureAggregationError, match="only 2 unmasking responses for the board's survivor set; threshold 3"):
        run.server.finish()


@pytest.mark.parametrize(
    "num_clients, threshold, message",
    [
        (5, 6, "threshold 6 exceeds the 5 clients"),
        (6, 3, "threshold 3 must exceed half of the 6 clients"),
        (2, 2, "at least 3 clients"),
    ],
)
def test_wrong_threshold_or_too_few_clients_are_refused(num_clients, threshold, message):
    ids = [f"h{i}" for i in range(num_clients)]
    with pytest.raises(SecureAggregationError, match=message):
        secure_weighted_sum(inputs(ids=ids), session(threshold=threshold))
    params = session(threshold=threshold)
    board = InMemoryBulletinBoard()
    board.open_session(params.session_id, ids)
    clients = [SecureAggregationClient(c, params, board) for c in ids]
    for client in clients:
        client.advertise_keys()
    board.close(params.session_id, Phase.KEYS)  # whoever closes the phase, clients check too
    with pytest.raises(SecureAggregationError, match=message):
        clients[0].share_keys()


def test_split_survivor_views_are_refused_n7_t4():
    """Issue 10: with n=7, t=4 a server that showed the victim only a1..a3 as holders, told a1..a3 that
    b1..b3 dropped and b1..b3 that a1..a3 dropped, collected 4 self-mask shares of the victim and 4 masking-key
    shares of each a_i, and so unmasked the victim's input alone. With the board every client reads one set of
    holders and one survivor set, and refuses any other."""
    ids = ["v", "a1", "a2", "a3", "b1", "b2", "b3"]
    params = session(threshold=4)
    run = Run(params, inputs(ids=ids))
    survivors = run.to_survivors(ids)
    assert survivors == tuple(sorted(ids))
    victim_holders = run.clients["v"]._share_holders
    assert victim_holders == tuple(sorted(ids))  # the victim masked with everyone on the board
    split_views = {
        "v": ["v", "a1", "a2", "a3"],
        **{a: [a, "v", "b1", "b2", "b3"] for a in ("a1", "a2", "a3")},
        **{b: ["b1", "b2", "b3", "v"] for b in ("b1", "b2", "b3")},
    }
    for client, view in split_views.items():
        with pytest.raises(SurvivorSetMismatch, match=f"'{client}' was asked to unmask for survivors"):
            run.clients[client].unmask(view)
    # Nothing was revealed: every client still answers, for the board's set only.
    for client in ids:
        response = run.clients[client].unmask(list(reversed(survivors)))  # order does not matter
        assert response.masking_key_shares == {}
    result = run.server.finish()
    assert np.array_equal(result.integer_sum, plain_integer_sum(run.data, params.codec, ids)[0])


def test_two_survivors_of_three_are_refused():
    """Issue 10: the sum of two inputs hands each survivor the other's input."""
    ids = ["h1", "h2", "h3"]
    with pytest.raises(SecureAggregationError, match="leaving 2; at least 3 must survive"):
        secure_weighted_sum(inputs(ids=ids), session(threshold=2), dropouts=["h3"])
    run = Run(session(threshold=2), inputs(ids=ids))
    run.share()
    run.mask(["h1", "h2"])
    run.board.close(run.params.session_id, Phase.MASKED_INPUTS)  # a coordinator that does not check
    with pytest.raises(SecureAggregationError, match="leaving 2; at least 3 must survive"):
        run.clients["h1"].unmask()


def test_a_low_order_key_is_a_clear_domain_error():
    def low_order(payload, session_id, sender):
        advertisement = KeyAdvertisement.from_bytes(payload, session_id, sender, 3)
        return dataclasses.replace(advertisement, masking_public_key=bytes(32)).to_bytes(session_id)

    with pytest.raises(InvalidPublicKey, match="masking key advertised by 'hospital_4' is a low-order X25519 point"):
        tampered_run(session(), inputs(), "hospital_4", Phase.KEYS, low_order)

    def off_curve(payload, session_id, sender):
        advertisement = KeyAdvertisement.from_bytes(payload, session_id, sender, 3)
        return dataclasses.replace(advertisement, encryption_public_key=b"\x02" + bytes(32)).to_bytes(session_id)

    with pytest.raises(InvalidPublicKey, match="encryption key advertised by 'hospital_4' is not a compressed"):
        tampered_run(session(), inputs(), "hospital_4", Phase.KEYS, off_curve)

    def short_commitments(payload, session_id, sender):
        advertisement = KeyAdvertisement.from_bytes(payload, session_id, sender, 3)
        return dataclasses.replace(advertisement, seed_commitments=advertisement.seed_commitments[:2]).to_bytes(session_id)

    with pytest.raises(MalformedMessage, match="'seed_commitments' must list 3 commitments, got 2"):
        tampered_run(session(), inputs(), "hospital_4", Phase.KEYS, short_commitments)


def test_key_advertisements_are_bound_to_the_identity_that_posted_them():
    params = session()
    board = InMemoryBulletinBoard()
    board.open_session(params.session_id, IDS)
    clients = {c: SecureAggregationClient(c, params, board) for c in IDS}
    for c in IDS[1:]:
        clients[c].advertise_keys()
    # hospital_2 (or a server that could post) advertises its own keys under hospital_1's name.
    impostor = dataclasses.replace(clients["hospital_2"].key_advertisement, client_id="hospital_1")
    with pytest.raises(BulletinBoardError, match="'hospital_2' already posted"):
        board.post(params.session_id, Phase.KEYS, "hospital_2", impostor.to_bytes(params.session_id))
    with pytest.raises(BulletinBoardError, match="'server' is not on the roster"):
        board.post(params.session_id, Phase.KEYS, "server", impostor.to_bytes(params.session_id))
    other = InMemoryBulletinBoard()
    other.open_session(params.session_id, IDS)
    other.post(params.session_id, Phase.KEYS, "hospital_2", impostor.to_bytes(params.session_id))
    other.close(params.session_id, Phase.KEYS)
    with pytest.raises(MalformedMessage, match="key-advertisement posted by 'hospital_2' claims to come from 'hospital_1'"):
        board_roster(other, params)


def test_the_board_keeps_phases_in_order_and_reads_only_closed_ones():
    params = session()
    board = InMemoryBulletinBoard()
    board.open_session(params.session_id, IDS)
    sid = params.session_id
    with pytest.raises(BulletinBoardError, match="already open"):
        board.open_session(sid, IDS)
    with pytest.raises(BulletinBoardError, match="distinct non-empty identities"):
        board.open_session(b"round-0000009", ["a", "a"])
    with pytest.raises(BulletinBoardError, match="no session"):
        board.post(b"round-0000009", Phase.KEYS, "hospital_1", b"{}")
    with pytest.raises(BulletinBoardError, match="phase 'shares' is not open yet: 'keys' is still open"):
        board.post(sid, Phase.SHARES, "hospital_1", b"{}")
    with pytest.raises(BulletinBoardError, match="phase 'keys' is still open: its postings are not final"):
        board.read(sid, Phase.KEYS)
    with pytest.raises(BulletinBoardError, match="payloads are bytes"):
        board.post(sid, Phase.KEYS, "hospital_1", "text")
    board.post(sid, Phase.KEYS, "hospital_1", b"{}")
    board.close(sid, Phase.KEYS)
    with pytest.raises(BulletinBoardError, match="phase 'keys' is closed"):
        board.post(sid, Phase.KEYS, "hospital_2", b"{}")
    with pytest.raises(BulletinBoardError, match="phase 'keys' is closed"):
        board.close(sid, Phase.KEYS)
    assert [p.sender for p in board.read(sid, Phase.KEYS)] == ["hospital_1"]
    with pytest.raises(MalformedMessage, match="key-advertisement posted by 'hospital_1' is not a key-advertisement"):
        KeyAdvertisement.from_bytes(b"{}", sid, "hospital_1", 3)


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"\xff\xfe", "is not JSON"),
        (b"[]", "is not a masked-input"),
        (b'{"kind":"masked-input","session":"00"}', "belongs to another session"),
        (b'{"kind":"masked-input","session":"%s","client":"h1","vector":"!!"}', "'vector' is not base64"),
        (b'{"kind":"masked-input","session":"%s","client":"h1","vector":"AAAA"}', "'vector' must be 16 bytes, got 3"),
        (b'{"kind":"masked-input","session":"%s","client":7,"vector":"AAAA"}', "'client' must be a str"),
    ],
)
def test_malformed_messages_are_refused_clearly(payload, message):
    sid = session().session_id
    if b"%s" in payload:
        payload = payload.replace(b"%s", sid.hex().encode())
    with pytest.raises(MalformedMessage, match=message):
        MaskedInput.from_bytes(payload, sid, "h1", length=2)


_FIELD = st.sampled_from(["encryption_key", "masking_key", "masking_commitments", "seed_commitments", "shares",
                          "vector", "complaints", "accused", "channel_point", "proof", "survivors",
                          "self_mask_shares", "masking_key_shares", "recipient", "ciphertext"])
_B64 = st.binary(max_size=40).map(lambda raw: base64.b64encode(raw).decode())
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | _B64,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_FIELD | st.text(max_size=4), children, max_size=3),
    max_leaves=10,
)
_SID = b"round-0000001"


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["key-advertisement", "share-keys", "masked-input", "unmasking"]),
    body=st.dictionaries(_FIELD, _JSON),
    junk=st.binary(max_size=30),
    raw=st.booleans(),
)
@example(kind="masked-input", body={"vector": "\x80"}, junk=b"", raw=False)  # not ASCII, so not base64
def test_any_payload_parses_or_is_a_clear_refusal(kind, body, junk, raw):
    payload = junk if raw else json.dumps({"kind": kind, "session": _SID.hex(), "client": "h1", **body}).encode()
    for parse in (
        lambda p, s, c: KeyAdvertisement.from_bytes(p, s, c, 2),
        ShareKeysMessage.from_bytes,
        lambda p, s, c: MaskedInput.from_bytes(p, s, c, length=2),
        UnmaskingResponse.from_bytes,
    ):
        try:
            parse(payload, _SID, "h1")
        except SecureAggregationError:
            pass


@pytest.mark.parametrize("value", [GROUP_ORDER, (1 << 256) - 1])
def test_a_revealed_share_not_below_the_group_order_is_refused(value):
    share = base64.b64encode(value.to_bytes(32, "big")).decode()
    payload = json.dumps({"kind": "unmasking", "session": _SID.hex(), "client": "h1", "survivors": "00" * 32,
                          "self_mask_shares": {"h2": share}, "masking_key_shares": {}}).encode()
    with pytest.raises(MalformedMessage, match="the share of 'h2' is not below the group order"):
        UnmaskingResponse.from_bytes(payload, _SID, "h1")


def test_messages_round_trip_as_bytes_and_anyone_can_derive_the_sum_from_the_board():
    run = Run(session(threshold=3), inputs(seed=4))
    survivors = run.to_survivors(IDS[:4])
    responses = [run.clients[c].unmask(survivors) for c in survivors]
    sid = run.params.session_id
    run.server.finish()
    for phase, parse in (
        (Phase.KEYS, lambda p, s, c: KeyAdvertisement.from_bytes(p, s, c, 3)),
        (Phase.SHARES, ShareKeysMessage.from_bytes),
        (Phase.UNMASKING, UnmaskingResponse.from_bytes),
    ):
        for posting in run.board.read(sid, phase):
            assert parse(posting.payload, sid, posting.sender).to_bytes(sid) == posting.payload
    assert [UnmaskingResponse.from_bytes(p.payload, sid, p.sender) for p in run.board.read(sid, Phase.UNMASKING)] == responses
    # A verifier with no key at all recomputes the exact sum from the board.
    verified = secure_sum_from_board(run.board, run.params)
    integers, weight = plain_integer_sum(run.data, run.params.codec, IDS[:4])
    assert np.array_equal(verified.integer_sum, integers) and verified.total_weight == weight
    assert verified.survivors == tuple(IDS[:4]) and verified.dropped == ("hospital_5",)


def test_protocol_misuse_is_refused():
    params = session(threshold=3)
    with pytest.raises(ValueError, match="threshold must be at least 2"):
        session(threshold=1)
    with pytest.raises(ValueError, match="session_id must be at least 8 bytes"):
        session(session_id=b"r1")
    with pytest.raises(ValueError, match="vector_length must be at least 1"):
        session(length=0)
    run = Run(params, inputs(), advertise=IDS[1:])
    late = run.clients["hospital_1"]
    with pytest.raises(BulletinBoardError, match="phase 'keys' is closed"):
        late.advertise_keys()
    with pytest.raises(SecureAggregationError, match="'hospital_1' is missing from the roster"):
        late.share_keys()
    with pytest.raises(SecureAggregationError, match="share_keys must run before masked_input"):
        late.masked_input(np.zeros(LENGTH), 1)
    with pytest.raises(SecureAggregationError, match="masked_input must run before unmask"):
        run.clients["hospital_2"].unmask(IDS)
    with pytest.raises(BulletinBoardError, match="phase 'masked-inputs' is not open yet: 'shares' is still open"):
        run.board.post(params.session_id, Phase.MASKED_INPUTS, "hospital_2", b"{}")
    run.share(IDS[1:])
    with pytest.raises(ValueError, match=f"expected {LENGTH} values, got 3"):
        run.clients["hospital_2"].masked_input(np.zeros(3), 1)
    masked = run.mask(IDS[1:])
    with pytest.raises(SecureAggregationError, match="already sent its masked input"):
        run.clients["hospital_2"].masked_input(*run.data["hospital_2"])
    survivors = run.server.close_masked_inputs()
    assert survivors == tuple(IDS[1:]) and len(masked) == 4
    with pytest.raises(SecureAggregationError, match=r"unmasking postings from clients that are not survivors"):
        run.post(Phase.UNMASKING, "hospital_1", UnmaskingResponse("hospital_1", bytes(32), {}, {}))
        run.server.finish()
    with pytest.raises(ValueError, match="cannot drop unknown clients"):
        secure_weighted_sum(inputs(), params, dropouts=["ghost"])


def test_fixed_point_bound_is_enforced_and_tight():
    # 2^(k-1) = 128: weight 4 * (value 3 * 2^3 + 1/2) = 98 fits; value bound 4 would allow 130.
    codec = FixedPointCodec(fractional_bits=3, modulus_bits=8, value_bound=3.0, max_total_weight=4)
    with pytest.raises(ValueError, match=r"past 2\^7"):
        FixedPointCodec(fractional_bits=3, modulus_bits=8, value_bound=4.0, max_total_weight=4)
    # The extremes at the full weight decode without wrapping, both signs.
    for sign in (1.0, -1.0):
        data = {c: (np.full(3, sign * 3.0), 1) for c in ["a", "b", "c", "d"]}
        result = secure_weighted_sum(data, session(length=3, codec=codec))
        assert np.array_equal(result.weighted_sum, np.full(3, sign * 12.0))
        assert result.total_weight == 4


@pytest.mark.parametrize(
    "values, weight, message",
    [
        (np.array([2000.0]), 1, "exceeds value_bound"),
        (np.array([np.nan]), 1, "NaN or infinity"),
        (np.zeros((2, 2)), 1, "1-D vector"),
        (np.zeros(1), 0, "weight must be an integer"),
        (np.zeros(1), 1.5, "weight must be an integer"),
        (np.zeros(1), True, "weight must be an integer"),
        (np.zeros(1), 1 << 21, "weight must be an integer"),
    ],
)
def test_codec_rejects_bad_values_and_weights(values, weight, message):
    with pytest.raises(ValueError, match=message):
        FixedPointCodec().encode(values, weight)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"modulus_bits": 65}, "modulus_bits must be between 2 and 64"),
        ({"fractional_bits": -1}, "fractional_bits must be non-negative"),
        ({"value_bound": 0.0}, "value_bound must be a positive"),
        ({"max_total_weight": 0}, "max_total_weight must be at least 1"),
    ],
)
def test_codec_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FixedPointCodec(**kwargs)


def test_a_second_masked_input_in_one_session_is_refused():
    """Both inputs would carry the same masks, so their difference would reach the aggregator unmasked."""
    run = Run(session(), inputs())
    run.share()
    client = run.clients["hospital_1"]
    with pytest.raises(ValueError, match="exceeds value_bound"):  # a refused input may be retried...
        client.masked_input(np.full(LENGTH, 1e6), 1)
    client.masked_input(*run.data["hospital_1"])
    with pytest.raises(SecureAggregationError, match="'hospital_1' already sent its masked input in this session"):
        client.masked_input(np.zeros(LENGTH), 1)  # ...a sent one may not
    run.mask(IDS[1:])
    survivors = run.server.close_masked_inputs()
    for c in survivors:
        run.clients[c].unmask(survivors)
    result = run.server.finish()
    assert np.array_equal(result.integer_sum, plain_integer_sum(run.data, session().codec, IDS)[0])


def test_weights_summing_past_the_codec_bound_are_refused_not_wrapped():
    # Each weight 2 passes its own client's check (<= 4), but together they reach 8 and 8 * 3 * 2^3 = 192 >= 2^7.
    codec = FixedPointCodec(fractional_bits=3, modulus_bits=8, value_bound=3.0, max_total_weight=4)
    data = {c: (np.full(3, 3.0), 2) for c in ["a", "b", "c", "d"]}
    with pytest.raises(SecureAggregationError, match=r"weights sum to 8, outside \[1, 4\] \(max_total_weight\)"):
        secure_weighted_sum(data, session(length=3, codec=codec))
