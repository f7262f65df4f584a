"""Federated rounds on chain: what a round costs beyond training, and a large model's round.

Figures (last line, JSON):
- ``round_overhead_ms_3`` and ``round_overhead_ms_10``: median wall time of a
  round with 3 and 10 hospitals on a local anvil, minus the hospitals'
  training (so: fetching and checking the base, sealing and storing updates,
  the chain's transactions, fetching and checking updates, aggregating,
  sealing and committing the aggregate, which opens the next round in the
  same transaction); targets <= 1,000 and <= 2,000. The
  parties run one after another in this process, through the same steps
  (``Coordinator.step``, ``HospitalNode.step``) the node processes run, so
  the figure holds no polling delay and no process start-up.
- ``secagg_round_overhead_ms_5``: the same for a round of 5 hospitals under
  secure aggregation (threshold 3), every phase through the chain and the
  store: key advertisements, encrypted shares, masked inputs, unmasking
  responses, the coordinator closing each phase, deriving the sum and
  committing it; target <= 3,000. The coordinator closes each phase as soon
  as every expected party posted, so no phase waits out its timeout.
- ``secagg_round_overhead_ms_20``: the same for 20 hospitals on a SecAgg+
  graph (degree 10, threshold 6: each hospital shares with and masks against
  10 neighbours drawn from the opening block's hash); target <= 12,000.
- ``secagg_reconstruct_ms_16_one_corrupt``: deriving the sum of a 16-hospital
  session (threshold 9, the logistic model's 31 values) from the board, when
  the first survivor to answer reveals a corrupt share of every secret: each
  share is checked once against its Feldman commitments and the corrupt ones
  dropped on sight (median of 5, in memory, no chain); target <= 2,000.
- ``secagg_round_gas_per_participant``: all the gas one hospital spends on
  one secure round (every transaction it signs: key advertisement, shares,
  masked input, unmasking response), read from the receipts of the blocks
  the round spans; the largest over the hospitals and timed rounds; target
  <= 160,000.
- ``large_model_round_s``: one round of 5 hospitals each submitting a
  25.6 M-parameter float32 update (about 100 MB; random tensors, training
  skipped), from the first submission to the committed aggregate (the
  coordinator fetching, decrypting and checking the five updates, FedAvg,
  sealing and storing the aggregate, the commit); target <= 6. Beside it,
  ``large_model_floor_s``, the floor this machine gives, measured in the
  same run: encrypt-and-add of the aggregate's bytes, fetch-and-decrypt of
  the five updates' bytes (the speeds ``bench/storage`` measures, single
  threaded) and FedAvg's read pass over the five updates; and
  ``large_model_over_floor``, their ratio.
- ``cnn_round_s_3``: the built-in CNN's study (16x16 grayscale images, 3
  classes), one round of 3 hospitals, wall seconds with the hospitals'
  training excluded (median); its training, ``cnn_training_s_3``, apart.

Run: ./run bench rounds [--rounds N]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

from measure import MB, peak_rss_mib, print_figures, print_table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LARGE_PARAMETERS = 25_600_000
LARGE_HOSPITALS = 5
PASSPHRASE = "bench passphrase (never use a fixed one for real keys)"


def consortium(home: Path, hospitals: int, spec, *, round_seconds: int | None = None, **options):
    """A fresh deployment, a coordinator, ``hospitals`` hospitals and an auditor, and a study for them."""
    from ape import accounts

    from offchain.rounds.config import StudyConfig
    from offchain.consortium import deploy_contracts, enrol
    from offchain.settings import Settings

    test_accounts = accounts.test_accounts
    admin, coordinator, auditor = test_accounts[0], test_accounts[1], test_accounts[2]
    nodes = [test_accounts[3 + i] for i in range(min(hospitals, len(test_accounts) - 3))]
    while len(nodes) < hospitals:  # past the node's funded accounts: more from the mnemonic, funded by the admin
        extra = test_accounts.generate_test_account()
        admin.transfer(extra, 10**20)
        nodes.append(extra)
    contracts = deploy_contracts(admin, record=False)
    access, registry = contracts.access, contracts.registry
    members = enrol(access, registry, admin, coordinator, nodes, [auditor], Settings(home=home), PASSPHRASE)
    config = StudyConfig.from_options(tuple(n.address for n in nodes), (auditor.address,), model=spec,
                                      round_seconds=round_seconds, **options)
    study = members[coordinator.address].create_study(config, min_updates=hospitals)
    return members[coordinator.address], [members[n.address] for n in nodes], study.number


def measure_round_overhead(home: Path, hospitals: int, rounds: int) -> float:
    """Median ms per round, training excluded, with ``hospitals`` hospitals on the bundled data."""
    from fl.data import federated_breast_cancer
    from fl.models import ModelSpec
    from offchain.rounds.coordinator import Coordinator
    from offchain.rounds.participant import HospitalNode

    data = federated_breast_cancer(hospitals)
    coordinator_member, hospital_members, study = consortium(home, hospitals, ModelSpec("logistic", data.num_features))
    coordinator = Coordinator(coordinator_member, study, target_rounds=rounds + 2)  # each commit opens the next
    training: list[float] = []
    nodes = [HospitalNode(member, study, share, training_time=training.append)
             for member, share in zip(hospital_members, data.hospitals)]
    overheads = []
    assert coordinator.step().action == "opened"
    for _ in range(rounds + 1):  # the first round warms Ape's and web3's caches up
        training.clear()
        start = time.perf_counter()
        for node in nodes:
            assert node.step().action == "submitted"
        assert coordinator.step().action == "committed"  # and opens the next round, in one transaction
        overheads.append((time.perf_counter() - start - sum(training)) * 1000)
    return statistics.median(overheads[1:])


def measure_secure_round(home: Path, hospitals: int, rounds: int, degree: int = 0) -> tuple[float, int, dict[str, int]]:
    """Median ms per secure round, training excluded; the most gas one hospital spent on one round, and
    that hospital's gas by transaction kind. ``degree``: the SecAgg+ graph's (0: complete)."""
    from ape import chain

    from fl.data import federated_breast_cancer
    from fl.models import ModelSpec
    from offchain.rounds.config import default_threshold
    from offchain.rounds.coordinator import Coordinator
    from offchain.rounds.participant import HospitalNode

    data = federated_breast_cancer(hospitals)
    coordinator_member, hospital_members, study = consortium(
        home, hospitals, ModelSpec("logistic", data.num_features), secure=True, graph_degree=degree,
        threshold=default_threshold(degree + 1 if degree else hospitals))
    coordinator = Coordinator(coordinator_member, study, target_rounds=rounds + 2)  # each commit opens the next
    training: list[float] = []
    nodes = [HospitalNode(member, study, share, training_time=training.append)
             for member, share in zip(hospital_members, data.hospitals)]
    hospitals_by_address = {member.address.lower() for member in hospital_members}
    overheads, gas, worst = [], 0, {}
    assert coordinator.step().action == "opened"
    for timed in range(rounds + 1):  # the first round warms Ape's and web3's caches up
        training.clear()
        first_block = chain.blocks.height + 1
        start = time.perf_counter()
        for _ in range(20):  # a phase per pass: keys, shares, masked inputs, unmasking
            for node in nodes:
                node.step()
            if coordinator.step().action == "committed":  # and opens the next round, in one transaction
                break
        else:
            raise AssertionError("the secure round did not commit in 20 passes")
        overheads.append((time.perf_counter() - start - sum(training)) * 1000)
        if timed:
            for account, kinds in _gas_by_sender(first_block, chain.blocks.height, hospitals_by_address).items():
                if sum(kinds.values()) > gas:
                    gas, worst = sum(kinds.values()), kinds
    return statistics.median(overheads[1:]), gas, worst


def measure_reconstruction(hospitals: int = 16, threshold: int = 9, length: int = 31, repeats: int = 5) -> float:
    """Median ms to derive a session's sum from its board when the first responder's shares are all corrupt."""
    import numpy as np

    from fl.secure_aggregation import (
        GROUP_ORDER,
        InMemoryBulletinBoard,
        Phase,
        SecureAggregationClient,
        SessionParameters,
        UnmaskingResponse,
        secure_sum_from_board,
    )

    class CorruptFirst(InMemoryBulletinBoard):
        def post(self, session_id, phase, sender, payload):
            if phase is Phase.UNMASKING and not self.read_count(session_id):
                response = UnmaskingResponse.from_bytes(payload, session_id, sender)
                payload = UnmaskingResponse(
                    sender, response.survivors_digest,
                    {peer: (v + 1) % GROUP_ORDER for peer, v in response.self_mask_shares.items()},
                    {peer: (v + 1) % GROUP_ORDER for peer, v in response.masking_key_shares.items()},
                ).to_bytes(session_id)
            super().post(session_id, phase, sender, payload)

        def read_count(self, session_id):
            return len(self._session(session_id).postings[Phase.UNMASKING])

    ids = [f"hospital_{i:02d}" for i in range(hospitals)]
    session = SessionParameters(b"bench-reconstruct", threshold, length)
    board = CorruptFirst()
    board.open_session(session.session_id, ids)
    clients = [SecureAggregationClient(c, session, board) for c in ids]
    rng = np.random.default_rng(0)
    for phase, act in ((Phase.KEYS, lambda c: c.advertise_keys()), (Phase.SHARES, lambda c: c.share_keys()),
                       (Phase.MASKED_INPUTS, lambda c: c.masked_input(rng.normal(size=length), 10)),
                       (Phase.UNMASKING, lambda c: c.unmask())):
        for client in clients:
            act(client)
        board.close(session.session_id, phase)
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        secure_sum_from_board(board, session)
        timings.append((time.perf_counter() - start) * 1000)
    return statistics.median(timings)


def _gas_by_sender(first: int, last: int, senders: set[str]) -> dict[str, dict[str, int]]:
    """Gas used by each of ``senders`` in blocks ``first`` to ``last``, by the method each transaction called."""
    from ape import chain, project
    from eth_utils import function_signature_to_4byte_selector

    web3 = chain.provider.web3
    selectors = {function_signature_to_4byte_selector(abi.selector): abi.name
                 for abi in project.RoundRegistry.contract_type.mutable_methods}
    spent: dict[str, dict[str, int]] = {}
    for number in range(first, last + 1):
        for transaction in web3.eth.get_block(number, full_transactions=True).transactions:
            sender = transaction["from"].lower()
            if sender not in senders:
                continue
            receipt = web3.eth.get_transaction_receipt(transaction["hash"])
            kind = selectors.get(bytes(transaction["input"][:4]), "other")
            kinds = spent.setdefault(sender, {})
            kinds[kind] = kinds.get(kind, 0) + int(receipt["gasUsed"])
    return spent


def measure_large_round(home: Path) -> tuple[float, float, dict[str, float]]:
    """Seconds from the first submission to the committed aggregate, and the floor, with its parts."""
    import torch

    from fl.aggregation import ClientModel, aggregate_models
    from fl.artifacts import encode_client_model
    from fl.models import ModelSpec
    from offchain.crypto import decrypt_stream, encrypt_stream, new_data_key
    from offchain.ipfs.store import open_cat
    from offchain.rounds.coordinator import Coordinator

    spec = ModelSpec("logistic", LARGE_PARAMETERS - 1)  # weight 1 x (N - 1) and one bias: N parameters
    coordinator_member, hospital_members, study = consortium(home, LARGE_HOSPITALS, spec)
    coordinator = Coordinator(coordinator_member, study)
    assert coordinator.step().action == "opened"
    updates = []
    for index, member in enumerate(hospital_members):
        parameters = {"0.weight": torch.randn(1, LARGE_PARAMETERS - 1), "0.bias": torch.randn(1)}
        model = ClientModel(client_id=member.address, parameters=parameters, data_samples=100 + index)
        view = member.study(study)
        updates.append((member, view.seal_update(1, encode_client_model(model, 1)), model))
    start = time.perf_counter()
    for member, ref, model in updates:
        member.rounds.submit_update(study, 1, ref, model.data_samples)
    step = coordinator.step()
    elapsed = time.perf_counter() - start
    assert step.action == "committed", step

    # The floor, on the same bytes: one encrypt-and-add, five fetch-and-decrypts, one FedAvg pass.
    store = coordinator_member.store
    plaintext = encode_client_model(updates[0][2], 1)
    size = len(plaintext)
    key, bound = new_data_key(), bytes(32)
    begin = time.perf_counter()
    with store.writer() as sink:
        encrypt_stream(io.BytesIO(plaintext), sink, key, bound, 1)
    encrypt_add = time.perf_counter() - begin
    begin = time.perf_counter()
    with open_cat(store, sink.cid) as source:
        decrypt_stream(source, io.BytesIO(), key, bound, 1)
    fetch_decrypt = time.perf_counter() - begin
    begin = time.perf_counter()
    aggregate_models([model for _, _, model in updates], "fedavg")
    fedavg = time.perf_counter() - begin
    floor = encrypt_add + LARGE_HOSPITALS * fetch_decrypt + fedavg
    parts = {"encrypt_add_mb_s": size / MB / encrypt_add, "fetch_decrypt_mb_s": size / MB / fetch_decrypt,
             "fedavg_pass_s": fedavg, "update_mb": size / MB}
    return elapsed, floor, parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per hospital count")
    arguments = parser.parse_args()
    from ape import networks

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="medshare-bench-rounds-") as folder:
        with networks.parse_network_choice("ethereum:local:foundry", disconnect_after=True):
            for hospitals in (3, 10):
                home = Path(folder) / f"k{hospitals}"
                figures[f"round_overhead_ms_{hospitals}"] = measure_round_overhead(home, hospitals, arguments.rounds)
            overhead, gas, gas_by_kind = measure_secure_round(Path(folder) / "secure5", 5, arguments.rounds)
            figures["secagg_round_overhead_ms_5"] = overhead
            figures["secagg_round_gas_per_participant"] = gas
            figures["secagg_round_overhead_ms_20"], _, _ = measure_secure_round(
                Path(folder) / "secure20", 20, max(1, arguments.rounds // 2), degree=10)
            elapsed, floor, parts = measure_large_round(Path(folder) / "large")
    figures["secagg_reconstruct_ms_16_one_corrupt"] = measure_reconstruction()
    figures["large_model_round_s"] = elapsed
    figures["large_model_floor_s"] = floor
    figures["large_model_over_floor"] = elapsed / floor
    figures.update(cnn_figures(arguments.rounds))
    figures["peak_rss_mib"] = peak_rss_mib()
    print_table("federated rounds on a local anvil (targets: 1,000 ms, 2,000 ms, 3,000 ms, 160,000 gas, 12,000 ms, "
                "2,000 ms, 6 s)", [
        ("round overhead, 3 hospitals", figures["round_overhead_ms_3"], "ms"),
        ("round overhead, 10 hospitals", figures["round_overhead_ms_10"], "ms"),
        ("secure round overhead, 5 hospitals", overhead, "ms"),
        ("secure round gas, one hospital", gas, "gas"),
        *((f"  {kind}", used, "gas") for kind, used in sorted(gas_by_kind.items())),
        ("secure round overhead, 20 hospitals (SecAgg+, degree 10)", figures["secagg_round_overhead_ms_20"], "ms"),
        ("secure sum, 16 hospitals, one corrupt responder", figures["secagg_reconstruct_ms_16_one_corrupt"], "ms"),
        ("large-model round (5 x 25.6 M params)", elapsed, "s"),
        ("  its floor on this machine", floor, "s"),
        ("  encrypt+add", parts["encrypt_add_mb_s"], "MB/s"),
        ("  fetch+decrypt", parts["fetch_decrypt_mb_s"], "MB/s"),
        ("  FedAvg pass over 5 updates", parts["fedavg_pass_s"], "s"),
        ("peak memory", figures["peak_rss_mib"], "MiB"),
    ])
    print_figures({name: round(value, 3) for name, value in figures.items()})


CNN_SHAPE = (1, 16, 16)
CNN_IMAGES_PER_HOSPITAL = 60


def measure_cnn_round(home: Path, rounds: int, hospitals: int = 3) -> tuple[float, float]:
    """The built-in CNN's study (3 classes, 16x16 grayscale, random images: the round's cost, not its
    quality): median wall seconds per round with training excluded, and the median training seconds
    a round (every hospital's, summed) printed apart."""
    import numpy as np
    import torch

    from fl.data import Dataset, HospitalData
    from fl.models import ModelSpec
    from offchain.rounds.coordinator import Coordinator
    from offchain.rounds.participant import HospitalNode

    spec = ModelSpec("cnn", input_shape=CNN_SHAPE, task="multiclass", classes=3)
    coordinator_member, hospital_members, study = consortium(home, hospitals, spec)
    coordinator = Coordinator(coordinator_member, study, target_rounds=rounds + 2)
    rng = np.random.default_rng(0)
    training: list[float] = []
    nodes = []
    for i, member in enumerate(hospital_members):
        images = torch.from_numpy(rng.random((CNN_IMAGES_PER_HOSPITAL, *CNN_SHAPE), dtype=np.float32))
        labels = torch.from_numpy((np.arange(CNN_IMAGES_PER_HOSPITAL) % 3).astype(np.float32))
        nodes.append(HospitalNode(member, study, HospitalData(f"hospital-{i + 1}", Dataset(images, labels)),
                                  training_time=training.append))
    walls, trainings = [], []
    assert coordinator.step().action == "opened"
    for _ in range(rounds + 1):  # the first round warms the caches up
        training.clear()
        start = time.perf_counter()
        for node in nodes:
            assert node.step().action == "submitted"
        assert coordinator.step().action == "committed"
        walls.append(time.perf_counter() - start - sum(training))
        trainings.append(sum(training))
    return statistics.median(walls[1:]), statistics.median(trainings[1:])


def cnn_figures(rounds: int) -> dict[str, float]:
    """``cnn_round_s_3`` on its own anvil, its training time printed apart."""
    from ape import networks

    with tempfile.TemporaryDirectory(prefix="medshare-bench-cnn-") as folder, \
            networks.parse_network_choice("ethereum:local:foundry", disconnect_after=True):
        wall, training = measure_cnn_round(Path(folder) / "cnn3", rounds)
    print_table("the built-in CNN's round, 3 hospitals (training excluded)", [
        ("CNN round, 3 hospitals, training excluded", wall, "s"),
        ("  training, 3 hospitals (apart)", training, "s"),
    ])
    return {"cnn_round_s_3": wall, "cnn_training_s_3": training}


if __name__ == "__main__":
    main()
