"""The end-to-end demo on the embedded defaults: a local anvil started by ape-foundry, the embedded
IPFS store, and the breast-cancer data split across three hospitals.

Run it with ``./run demo``. Its state (keystores, store, index) lives in a temporary folder that is
removed at the end, so every run starts clean.
"""

import hashlib
import os
import tempfile
from pathlib import Path

import click
from ape import accounts, chain, project

from fl.artifacts import artifact_digest, encode_artifact
from fl.data import federated_breast_cancer
from fl.simulation import FederatedConfig, run_federated, train_centralized
from offchain.chain import AccessClient
from offchain.crypto import KeySuite, Keystore
from offchain.deploy import deploy
from offchain.members import MemberChange, add_members
from offchain.roles import Role
from offchain.ipfs import EmbeddedStore
from offchain.records import AccessRefused, RecordIndex, RecordService

ONE_DAY = 24 * 3600
DEMO_PASSPHRASE = "demo passphrase (never use a fixed one for real keys)"


def step(text: str) -> None:
    click.secho(f"\n== {text}", bold=True)


def main() -> None:
    # The accounts hold the roles they hold in the tests and in README's command session.
    admin, hospital, doctor, patient, researcher = accounts.test_accounts[:5]
    stranger = accounts.test_accounts[9]
    with tempfile.TemporaryDirectory(prefix="medshare-demo-") as folder:
        home = Path(folder)
        step("Consortium: deploy MedicalAccess and hand out roles")
        deployed = {each.name: each for each in deploy(admin, admin.address, path=home / "deployments.json")}
        access = project.MedicalAccess.at(deployed["MedicalAccess"].address)
        click.echo(f"MedicalAccess deployed at {access.address} on chain {chain.chain_id}")
        members = [
            MemberChange(Role.DATA_OWNER, hospital.address, "hospital_1"),
            MemberChange(Role.DOCTOR, doctor.address, "doctor"),
            MemberChange(Role.PATIENT, patient.address, "patient_A"),
            MemberChange(Role.RESEARCHER, researcher.address, "researcher"),
        ]
        admin_client = AccessClient(access, admin)
        add_members(admin_client, members)
        for member in members:
            click.echo(f"  {member.label} ({member.role.label}): {member.address}")
        click.echo(f"  one transaction: {admin_client.sent[-1].tx_hash} (gas {admin_client.sent[-1].gas_used:,})")

        step("Members create keystores and publish their keys (the doctor's is hybrid post-quantum)")
        store = EmbeddedStore(home / "ipfs")
        services = {}
        for member in (hospital, patient, doctor, researcher, stranger):
            suite = KeySuite.MLKEM768_X25519 if member is doctor else KeySuite.X25519
            keystore = Keystore.create(home / f"{member.address}.keystore.json", DEMO_PASSPHRASE, suite=suite)
            client = AccessClient(access, member)
            if member is not stranger:
                client.publish_encryption_key(keystore.public_key(), keystore.suite())
            services[member] = RecordService(client, store, keystore, RecordIndex(home / f"{member.address}.index.json"))
        click.echo("  keys published for hospital_1, patient_A, doctor, researcher")

        step("Upload: hospital_1 encrypts patient_A's MRI scan, stores it, registers its CID")
        scan = home / "MRI_scan.dcm"
        scan.write_bytes(os.urandom(3 << 20))
        entry = services[hospital].upload(scan, patient.address, "MRI_scan")
        record_id = entry.record_bytes
        click.echo(f"  {entry.patient}/{entry.name} -> {entry.cid}")
        click.echo(f"  record {entry.record_id}, version {entry.version}")

        step("Grant: hospital_1 lets the doctor read it for a day")
        services[hospital].grant(record_id, [doctor.address], chain.pending_timestamp + ONE_DAY)
        click.echo(f"  checkAccess(doctor, record) -> {access.checkAccess(doctor, record_id)}")

        step("Fetch: the doctor's read is logged on chain, fetched, decrypted, verified")
        copy = home / "doctor_copy.dcm"
        fetched = services[doctor].fetch(record_id, copy)
        same = hashlib.sha256(copy.read_bytes()).digest() == hashlib.sha256(scan.read_bytes()).digest()
        click.echo(f"  {fetched.size} bytes, version {fetched.version}, identical to the original: {same}")
        if not same:
            raise click.ClickException("the fetched record differs from the original")

        step("A stranger asks for the same record")
        try:
            services[stranger].fetch(record_id, home / "stolen")
        except AccessRefused as refusal:
            click.echo(f"  refused: {refusal}")

        step("Revoke with rotation: the doctor loses access; the record is re-encrypted under a new key")
        rotated = services[hospital].revoke(record_id, doctor.address, rotate=True)
        click.echo(f"  record now at version {rotated.version}, {rotated.cid}")
        try:
            services[doctor].fetch(record_id, home / "after_revoke")
        except AccessRefused as refusal:
            click.echo(f"  doctor refused: {refusal}")
        reads = list(access.AccessLogged.range(0, None, search_topics={"record": record_id}))
        click.echo(f"  audit trail: {len(reads)} logged read(s): " + ", ".join(f"{r.reader} v{r.version}" for r in reads))

        step("Federated learning: three hospitals train a shared model; data never leaves them")
        dataset = federated_breast_cancer(num_hospitals=3, partition="dirichlet")
        result = run_federated(dataset, FederatedConfig(rounds=10, aggregator="fedavg"))
        for record in result.rounds[::3]:
            click.echo(f"  round {record.round_number:>2}: test accuracy {record.test.accuracy:.3f}")
        _, centralized = train_centralized(dataset, epochs=10)
        click.echo(f"  pooled-data baseline: {centralized.accuracy:.3f}")
        artifact = encode_artifact(result.parameters, {"round": str(len(result.rounds)), "aggregator": "fedavg"})
        click.echo(f"  global model artifact (safetensors) sha256 {artifact_digest(artifact)}")
