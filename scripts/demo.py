"""The end-to-end demo on the embedded defaults: a local anvil started by ape-foundry.

Run it with ``./run demo``.
"""

import click
from ape import accounts, chain, project

DEMO_CID = bytes.fromhex("01551220") + bytes.fromhex(
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
)
ONE_DAY = 24 * 3600


def main() -> None:
    admin, hospital, patient, doctor = accounts.test_accounts[:4]

    access = admin.deploy(project.MedicalAccess, admin)
    click.echo(f"MedicalAccess deployed at {access.address}")
    access.grantRole(access.DATA_OWNER_ROLE(), hospital, sender=admin)
    access.grantRole(access.PATIENT_ROLE(), patient, sender=admin)
    access.grantRole(access.DOCTOR_ROLE(), doctor, sender=admin)

    record = access.registerRecord(DEMO_CID, patient, sender=hospital).return_value
    click.echo(f"record 0x{record.hex()} registered by hospital {hospital.address} for patient {patient.address}")

    expiry = chain.pending_timestamp + ONE_DAY
    access.grantAccess(record, doctor, expiry, sender=hospital)
    allowed = access.checkAccess(doctor, record)
    click.echo(f"checkAccess(doctor {doctor.address}, record) -> {allowed} (until {expiry})")
    if not allowed:
        raise click.ClickException("access check failed after grant")
