"""The end-to-end demo on the embedded defaults: a local anvil started by ape-foundry.

Run it with ``./run demo``.
"""

import click
from ape import accounts, project

DEMO_CID = bytes.fromhex("01551220") + bytes.fromhex(
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
)


def main() -> None:
    hospital, doctor = accounts.test_accounts[0], accounts.test_accounts[1]

    access = hospital.deploy(project.MedicalAccess)
    click.echo(f"MedicalAccess deployed at {access.address}")

    record = access.registerRecord(DEMO_CID, sender=hospital).return_value
    click.echo(f"record {record.hex()} registered by hospital {hospital.address}")

    access.grantAccess(record, doctor, sender=hospital)
    allowed = access.checkAccess(doctor, record)
    click.echo(f"checkAccess(doctor {doctor.address}, record) -> {allowed}")
    if not allowed:
        raise click.ClickException("access check failed after grant")
