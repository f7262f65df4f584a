"""CSV batches: every row checked against the chain before any transaction, then sent in chunks that
fit a block, reported chunk by chunk, and resumed after the last confirmed chunk."""

import os

import pytest
from eth_account import Account

from offchain.batches import ChunkFailed, gas_budget
from offchain.chain.access import AccessClient
from offchain.errors import InvalidInput
from offchain.members import add_members, read_members_csv, remove_members
from offchain.chain.roles import Role


def _holders(access, addresses, role):
    held = []
    for start in range(0, len(addresses), 256):
        part = addresses[start:start + 256]
        bits = access.holdersOf(part, int(role))
        held += [bool(bits >> i & 1) for i in range(len(part))]
    return held


def _new_addresses(count):
    return [Account.create().address for _ in range(count)]


def test_a_thousand_row_members_file_goes_out_in_chunks_that_fit_a_block(access, admin, chain, tmp_path):
    gas_limit = chain.provider.web3.eth.get_block("latest")["gasLimit"]
    assert gas_limit == 30_000_000  # anvil's default block gas limit
    patients = _new_addresses(1000)
    path = tmp_path / "members.csv"
    path.write_text("role,address,label\n" + "".join(f"patient,{a},p{i}\n" for i, a in enumerate(patients)))
    client = AccessClient(access, admin)
    chunks = []
    outcomes = add_members(client, read_members_csv(path), on_chunk=chunks.append)
    assert all(outcome.changed for outcome in outcomes) and len(outcomes) == 1000
    assert len(chunks) >= 2 and chunks[-1].of == len(chunks)
    assert sorted(row for chunk in chunks for row in chunk.rows) == list(range(2, 1002))  # file rows 2..1001
    assert all(chunk.sent.gas_used <= gas_budget(client) for chunk in chunks)
    assert all(_holders(access, patients, Role.PATIENT))
    # Run again: the chain reflects every row, nothing is sent.
    blocks = chain.blocks.height
    again = add_members(client, read_members_csv(path))
    assert not any(outcome.changed for outcome in again) and chain.blocks.height == blocks


def test_a_members_file_cut_short_resumes_after_its_last_confirmed_chunk(access, admin, guardian, chain, tmp_path):
    doctors = _new_addresses(700)
    path = tmp_path / "members.csv"
    path.write_text("".join(f"doctor,{a}\n" for a in doctors))
    client = AccessClient(access, admin)

    def pause_after_the_first(chunk):
        if chunk.number == 1:  # the guardian pauses the contract between two chunks
            access.pause(sender=guardian)

    try:
        with pytest.raises(ChunkFailed) as failed:
            add_members(client, read_members_csv(path), on_chunk=pause_after_the_first)
        assert "chunk 2" in str(failed.value) and "EnforcedPause" in str(failed.value)
        done = failed.value.done
        assert done and done == tuple(range(1, len(done) + 1))
        assert _holders(access, doctors, Role.DOCTOR) == [True] * len(done) + [False] * (700 - len(done))
        # Paused: the whole file is refused before any transaction, naming the first row left.
        blocks = chain.blocks.height
        with pytest.raises(InvalidInput, match=f"row {len(done) + 1}: the contract is paused"):
            add_members(client, read_members_csv(path))
        assert chain.blocks.height == blocks
    finally:
        if access.paused():
            access.unpause(sender=guardian)
    chunks = []
    outcomes = add_members(client, read_members_csv(path), on_chunk=chunks.append)
    assert [outcome.changed for outcome in outcomes] == [False] * len(done) + [True] * (700 - len(done))
    assert min(chunk.rows[0] for chunk in chunks) == len(done) + 1
    assert all(_holders(access, doctors, Role.DOCTOR))


def test_bad_member_rows_refuse_the_whole_file(access, admin, chain, tmp_path):
    client = AccessClient(access, admin)
    path = tmp_path / "members.csv"
    fresh = _new_addresses(2)
    for text, expected in [
        (f'doctor,{fresh[0]}\ndoctor,"{fresh[1]}\n', "row 2: unexpected end of data"),
        (f"doctor,{fresh[0]}\ndoctor,{fresh[0]}\n", "repeats row 1"),
        (f"doctor,{fresh[0]}\nnurse,{fresh[1]}\n", "row 2, column 'role'"),
    ]:
        path.write_text(text)
        with pytest.raises(InvalidInput, match=expected):
            read_members_csv(path)
    # Removing every admin: refused, naming the row, before anything is sent.
    path.write_text(f"doctor,{fresh[0]}\nadmin,{admin.address}\n")
    blocks = chain.blocks.height
    with pytest.raises(InvalidInput, match=f"row 2: {admin.address} is the last consortium admin"):
        remove_members(client, read_members_csv(path))
    assert chain.blocks.height == blocks


def _upload(medshare, patient, tmp_path):
    for index in (1, 2, 3, 4):
        medshare(index, "keys", "publish")
    scan = tmp_path / "scan.bin"
    scan.write_bytes(os.urandom(5_000))
    uploaded = medshare(1, "record", "upload", str(scan), "--patient", patient.address, "--name", "scan")
    return uploaded.split("record ")[1].split()[0]


def test_a_grant_or_revoke_file_with_one_bad_row_sends_nothing(medshare, access, chain, patient, doctor,
                                                                researcher, stranger, tmp_path):
    record = _upload(medshare, patient, tmp_path)
    grants = tmp_path / "grants.csv"
    for bad, why in [(stranger.address, "the doctor or researcher role"), (researcher.address, "consent")]:
        grants.write_text(f"{record},{doctor.address},1\n{record},{bad},1\n")
        blocks = chain.blocks.height
        output = medshare(1, "record", "grant", "--csv", str(grants), ok=False)
        assert "row 2:" in output and why in output and "nothing was sent" in output, output
        assert "Traceback" not in output and chain.blocks.height == blocks
        assert access.grantOf(record, doctor)[0] == 0  # row 1 was not sent either

    grants.write_text(f"{record},{doctor.address},1\n")
    output = medshare(1, "record", "grant", "--csv", str(grants))
    assert "chunk 1/1: row 1 (1) confirmed" in output
    revokes = tmp_path / "revokes.csv"
    revokes.write_text(f"{record},{doctor.address}\n{record},{researcher.address}\n")
    blocks = chain.blocks.height
    output = medshare(1, "record", "revoke", "--csv", str(revokes), ok=False)
    assert "row 2:" in output and "holds no grant" in output and chain.blocks.height == blocks
    assert access.grantOf(record, doctor)[0] != 0
    revokes.write_text(f"{record},{doctor.address}\n")
    output = medshare(1, "record", "revoke", "--csv", str(revokes))
    assert "revoked" in output and access.grantOf(record, doctor)[0] == 0


def test_a_grant_file_cut_short_resumes_from_its_journal(medshare, access, chain, patient, doctor, researcher,
                                                        guardian, tmp_path):
    record = _upload(medshare, patient, tmp_path)
    access.setConsent(record, researcher, chain.pending_timestamp + 86_400, sender=patient)
    medic = researcher
    from offchain import batches

    grants = tmp_path / "grants.csv"
    grants.write_text(f"{record},{doctor.address},1\n{record},{medic.address},1\n")
    real = batches.plan_chunks
    one_row_chunks = []

    def one_per_chunk(client, calls, budget=None):  # two chunks, so one can fail after the other
        one_row_chunks.append(len(calls))
        return [[call] for call in calls]

    batches_send = batches.send_chunks

    def pause_between(client, chunks, **options):
        chunk_callback = options.pop("on_chunk")

        def then_pause(chunk):
            chunk_callback(chunk)
            if chunk.number == 1:
                access.pause(sender=guardian)
        return batches_send(client, chunks, on_chunk=then_pause, **options)

    import offchain.records.batch as batch_module
    try:
        batch_module.plan_chunks, batch_module.send_chunks = one_per_chunk, pause_between
        output = medshare(1, "record", "grant", "--csv", str(grants), ok=False)
    finally:
        batch_module.plan_chunks, batch_module.send_chunks = real, batches_send
        access.unpause(sender=guardian)
    assert "chunk 1/2: row 1 (1) confirmed" in output and "chunk 2 (rows 2)" in output, output
    assert "rows 1 were done before it" in output
    first_expiry = access.grantOf(record, doctor)[0]
    assert first_expiry != 0 and access.grantOf(record, medic)[0] == 0
    output = medshare(1, "record", "grant", "--csv", str(grants))
    assert "row 1: granted" in output and "before" in output.split("row 1:")[1].splitlines()[0]
    assert access.grantOf(record, doctor)[0] == first_expiry  # not sent again
    assert access.grantOf(record, medic)[0] != 0
    assert not list((tmp_path / "home" / "batches").glob("*.json"))  # done: the journal is gone
