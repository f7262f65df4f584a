"""``medshare keys``: the member's encryption key pair, and its publication in the key registry.

    medshare keys publish   create the keystore if needed, publish its current public key
    medshare keys show [ADDRESS]

The keystore (X25519 private keys, sealed under a passphrase with scrypt)
lives in ``$MEDSHARE_HOME/keys/<address>.json``; the passphrase comes from
``MEDSHARE_PASSPHRASE`` or a prompt. Keystore versions and on-chain key
versions stay equal: each keystore key is published once, in order.
"""

from __future__ import annotations

import click

from offchain.cli.record import ADDRESS
from offchain.cli.session import ChainOptions, chain_options, connected, keystore_path, passphrase, user_errors
from offchain.crypto import Keystore
from offchain.records import RecordError
from offchain.settings import Settings


@click.group()
def keys() -> None:
    """Create and publish your encryption key."""


@keys.command()
@chain_options
@user_errors
def publish(chain: ChainOptions) -> None:
    """Publish your keystore's current public key (creating the keystore on first use)."""
    settings = Settings.from_env()
    with connected(chain) as client:
        path = keystore_path(settings, client.address)
        created = not path.exists()
        if created:
            path.parent.mkdir(parents=True, exist_ok=True)
            keystore = Keystore.create(path, passphrase(confirm=True))
        else:
            keystore = Keystore.open(path, passphrase())
        published, version = client.encryption_key(client.address)
        if version == keystore.current_version and published == keystore.public_key():
            click.echo(f"{client.address}: key version {version} is already published")
            return
        if version + 1 != keystore.current_version:
            raise RecordError(
                f"the chain holds key version {version} for {client.address} but keystore {path} is at version "
                f"{keystore.current_version}; publish keys in order (one publication per keystore version)"
            )
        version = client.publish_encryption_key(keystore.public_key())
    click.echo(f"{client.address}: published key version {version}" + (f" (new keystore {path})" if created else ""))


@keys.command()
@chain_options
@click.argument("member", required=False, type=ADDRESS)
@user_errors
def show(chain: ChainOptions, member: str | None) -> None:
    """Show MEMBER's (default: your) published key and version."""
    with connected(chain) as client:
        member = member or client.address
        key, version = client.encryption_key(member)
    if version == 0:
        click.echo(f"{member}: no key published")
    else:
        click.echo(f"{member}: key version {version} 0x{key.hex()}")
