"""The ``medshare`` command line."""

import click


@click.group()
@click.version_option(package_name="medshare")
def main() -> None:
    """MedShare: encrypted medical records on IPFS under on-chain access control."""
