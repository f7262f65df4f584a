import dataclasses

import numpy as np
import pytest

from fl.secure_aggregation import (
    FixedPointCodec,
    RevealedShare,
    SecureAggregationClient,
    SecureAggregationError,
    SecureAggregationServer,
    SessionParameters,
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
    """The four rounds step by step, so tests can intercept messages between them."""

    def __init__(self, params, data):
        self.data = data
        self.clients = {c: SecureAggregationClient(c, params) for c in data}
        self.server = SecureAggregationServer(params)
        self.roster = self.server.collect_keys([c.advertise_keys() for c in self.clients.values()])
        self.share_messages = [c.share_keys(self.roster) for c in self.clients.values()]

    def route(self):
        self.inboxes = self.server.route_shares(self.share_messages)
        return self.inboxes

    def mask(self, senders):
        return [self.clients[c].masked_input(*self.data[c], self.inboxes[c]) for c in senders]

    def to_survivors(self, senders):
        self.route()
        self.masked = self.mask(senders)
        return self.server.collect_masked_inputs(self.masked)


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
    with pytest.raises(SecureAggregationError, match=r"3 of 5 clients dropped out; at most 2 may \(threshold 3\)"):
        secure_weighted_sum(inputs(), session(threshold=3), dropouts=IDS[:3])


def test_clients_that_never_share_keys_are_left_out_of_the_masks():
    run = Run(session(threshold=3), inputs())
    run.share_messages = run.share_messages[:4]  # hospital_5 vanished before sharing keys
    survivors = run.to_survivors(IDS[:4])
    result = run.server.unmask([run.clients[c].unmask(survivors) for c in survivors])
    integers, _ = plain_integer_sum(run.data, session().codec, IDS[:4])
    assert np.array_equal(result.integer_sum, integers)


def test_masked_vectors_look_random_and_unrelated_to_the_inputs():
    zeros = {c: (np.zeros(4096), 1) for c in IDS}
    run = Run(session(length=4096), zeros)
    run.route()
    masked = run.mask(IDS)
    vectors = [m.vector for m in masked]
    # Identical inputs, yet pairwise unrelated outputs (a coincidence has chance 2^-64 per entry).
    for i in range(len(vectors)):
        for j in range(i + 1, len(vectors)):
            assert np.count_nonzero(vectors[i] == vectors[j]) == 0
    # Every bit of the masked zeros is set about half the time.
    bits = np.unpackbits(vectors[0].view(np.uint8)).reshape(-1, 64).mean(axis=0)
    assert np.all(np.abs(bits - 0.5) < 0.05)
    encoded = run.server.session.codec.encode(np.zeros(4096), 1)
    assert np.count_nonzero(vectors[0] == encoded) == 0


def test_the_same_input_is_masked_differently_in_each_session():
    data = {c: (np.ones(LENGTH), 2) for c in IDS}
    first = Run(session(session_id=b"round-0000001"), data)
    first.route()
    second = Run(session(session_id=b"round-0000002"), data)
    second.route()
    assert np.count_nonzero(first.mask(IDS[:1])[0].vector == second.mask(IDS[:1])[0].vector) == 0


def test_a_tampered_encrypted_share_is_rejected():
    run = Run(session(), inputs())
    inboxes = run.route()
    victim = inboxes["hospital_2"]
    share = victim[0]
    flipped = bytes([share.ciphertext[-1] ^ 1])
    tampered = dataclasses.replace(share, ciphertext=share.ciphertext[:-1] + flipped)
    with pytest.raises(SecureAggregationError, match=f"share from '{share.sender}' to 'hospital_2' failed authentication"):
        run.clients["hospital_2"].masked_input(*run.data["hospital_2"], (tampered,) + victim[1:])
    misrouted = dataclasses.replace(inboxes["hospital_3"][0], recipient="hospital_2")
    with pytest.raises(SecureAggregationError, match="failed authentication"):
        run.clients["hospital_2"].masked_input(*run.data["hospital_2"], (misrouted,) + tuple(s for s in victim if s.sender != misrouted.sender))


def _corrupt(response, field, owner):
    shares = dict(getattr(response, field))
    share = shares[owner]
    shares[owner] = RevealedShare(share.index, bytes([share.share[0] ^ 0xFF]) + share.share[1:])
    return dataclasses.replace(response, **{field: shares})


@pytest.mark.parametrize(
    "field, owner, message",
    [
        ("self_mask_shares", "hospital_1", "self-mask seed of 'hospital_1' does not match its commitment"),
        ("masking_key_shares", "hospital_5", "masking key of dropped client 'hospital_5' does not match its public key"),
    ],
)
def test_a_tampered_revealed_share_is_detected(field, owner, message):
    run = Run(session(threshold=3), inputs())
    survivors = run.to_survivors(IDS[:4])
    responses = [run.clients[c].unmask(survivors) for c in survivors]
    responses[0] = _corrupt(responses[0], field, owner)
    with pytest.raises(SecureAggregationError, match=message):
        run.server.unmask(responses)


def test_unmasking_reveals_one_secret_per_peer_and_answers_only_once():
    run = Run(session(threshold=3), inputs())
    survivors = run.to_survivors(IDS[:4])
    response = run.clients["hospital_1"].unmask(survivors)
    assert set(response.self_mask_shares) == set(IDS[:4])
    assert set(response.masking_key_shares) == {"hospital_5"}
    with pytest.raises(SecureAggregationError, match="already answered"):
        run.clients["hospital_1"].unmask(IDS[:3])


def test_too_few_unmasking_responses_fail():
    run = Run(session(threshold=3), inputs())
    survivors = run.to_survivors(IDS)
    responses = [run.clients[c].unmask(survivors) for c in survivors[:2]]
    with pytest.raises(SecureAggregationError, match="only 2 unmasking responses; threshold 3"):
        run.server.unmask(responses)


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
    clients = [SecureAggregationClient(c, params) for c in ids]
    roster = [c.advertise_keys() for c in clients]
    with pytest.raises(SecureAggregationError, match=message):  # clients check too, not only the server
        clients[0].share_keys(roster)


def test_protocol_misuse_is_refused():
    params = session(threshold=3)
    with pytest.raises(ValueError, match="threshold must be at least 2"):
        session(threshold=1)
    with pytest.raises(ValueError, match="session_id must be at least 8 bytes"):
        session(session_id=b"r1")
    with pytest.raises(ValueError, match="vector_length must be at least 1"):
        session(length=0)
    outsider = SecureAggregationClient("outsider", params)
    run = Run(params, inputs())
    with pytest.raises(SecureAggregationError, match="'outsider' is missing from the roster"):
        outsider.share_keys(run.roster)
    with pytest.raises(SecureAggregationError, match="duplicate client ids"):
        run.server.collect_keys([run.roster[0], run.roster[0], run.roster[1], run.roster[2]])
    with pytest.raises(SecureAggregationError, match="only 2 of 5 clients shared keys"):
        run.server.route_shares(run.share_messages[:2])
    ghost_message = dataclasses.replace(run.share_messages[0], client_id="ghost")
    with pytest.raises(SecureAggregationError, match=r"share messages from clients that are not on the roster: \['ghost'\]"):
        run.server.route_shares(run.share_messages + [ghost_message])
    with pytest.raises(SecureAggregationError, match="did not send one share to each roster member"):
        run.server.route_shares([dataclasses.replace(run.share_messages[0], shares=run.share_messages[0].shares[:-1])] + run.share_messages[1:])
    with pytest.raises(SecureAggregationError, match="sent shares under another sender's name"):
        run.server.route_shares([run.share_messages[1]] + [dataclasses.replace(run.share_messages[1], client_id="hospital_1")] + run.share_messages[2:])
    with pytest.raises(SecureAggregationError, match="share_keys must run before masked_input"):
        outsider.masked_input(np.zeros(LENGTH), 1, ())
    with pytest.raises(SecureAggregationError, match="masked_input must run before unmask"):
        run.clients["hospital_1"].unmask(IDS)
    inboxes = run.route()
    with pytest.raises(ValueError, match=f"expected {LENGTH} values, got 3"):
        run.clients["hospital_1"].masked_input(np.zeros(3), 1, inboxes["hospital_1"])
    with pytest.raises(SecureAggregationError, match="did not receive its own share"):
        run.clients["hospital_1"].masked_input(np.zeros(LENGTH), 1, inboxes["hospital_2"][:0])
    masked = run.mask(IDS)
    with pytest.raises(SecureAggregationError, match="is not 65 uint64 values"):
        run.server.collect_masked_inputs([dataclasses.replace(masked[0], vector=masked[0].vector[:-1])] + masked[1:])
    with pytest.raises(SecureAggregationError, match=r"masked inputs from clients that did not share keys: \['ghost'\]"):
        run.server.collect_masked_inputs(masked + [dataclasses.replace(masked[0], client_id="ghost")])
    survivors = run.server.collect_masked_inputs(masked[:4])
    responses = [run.clients[c].unmask(survivors) for c in survivors]
    with pytest.raises(SecureAggregationError, match=r"unmasking responses from clients that are not survivors: \['hospital_5'\]"):
        run.server.unmask(responses + [dataclasses.replace(responses[0], client_id="hospital_5")])
    with pytest.raises(SecureAggregationError, match="duplicate client ids among the unmasking responses"):
        run.server.unmask(responses + responses[:1])
    with pytest.raises(SecureAggregationError, match=r"survivors \['ghost'\] never shared keys"):
        run.clients["hospital_5"].unmask(list(survivors) + ["ghost"])
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
    """Both inputs would carry the same masks, so their difference would reach the server unmasked."""
    run = Run(session(), inputs())
    inboxes = run.route()
    client = run.clients["hospital_1"]
    with pytest.raises(ValueError, match="exceeds value_bound"):  # a refused input may be retried...
        client.masked_input(np.full(LENGTH, 1e6), 1, inboxes["hospital_1"])
    first = client.masked_input(*run.data["hospital_1"], inboxes["hospital_1"])
    with pytest.raises(SecureAggregationError, match="'hospital_1' already sent its masked input in this session"):
        client.masked_input(np.zeros(LENGTH), 1, inboxes["hospital_1"])  # ...a sent one may not
    masked = [first] + run.mask(IDS[1:])
    survivors = run.server.collect_masked_inputs(masked)
    result = run.server.unmask([run.clients[c].unmask(survivors) for c in survivors])
    assert np.array_equal(result.integer_sum, plain_integer_sum(run.data, session().codec, IDS)[0])


def test_weights_summing_past_the_codec_bound_are_refused_not_wrapped():
    # Each weight 2 passes its own client's check (<= 4), but together they reach 8 and 8 * 3 * 2^3 = 192 >= 2^7.
    codec = FixedPointCodec(fractional_bits=3, modulus_bits=8, value_bound=3.0, max_total_weight=4)
    data = {c: (np.full(3, 3.0), 2) for c in ["a", "b", "c", "d"]}
    with pytest.raises(SecureAggregationError, match=r"weights sum to 8, outside \[1, 4\] \(max_total_weight\)"):
        secure_weighted_sum(data, session(length=3, codec=codec))
