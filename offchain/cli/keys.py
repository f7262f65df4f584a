"""``medshare keys``: the member's encryption key pair, and its publication in the key registry.

    medshare keys publish   create the keystore if needed, publish its current public key
    medshare keys rotate    a new key pair, published; the old private keys stay in the keystore
    medshare keys show [ADDRESS]

The keystore (X25519 private keys, sealed under a passphrase with scrypt)
lives in ``$MEDSHARE_HOME/keys/<address>.json``; the passphrase comes from
``MEDSHARE_PASSPHRASE`` or a prompt. Keystore versions and on-chain key
versions stay equal: each keystore key is published once, in order
(:mod:`offchain.records.member_keys`).
"""

from __future__ import annotations

import click

from offchain.cli.record import ADDRESS
from offchain.cli.session import ChainOptions, chain_options, connected, keystore_path, passphrase, user_errors
from offchain.records.member_keys import publish_key, rotate_key
from offchain.settings import Settings


@click.group()
def keys() -> None:
    """Create, publish and rotate your encryption key."""


@keys.command()
@chain_options
@user_errors
def publish(chain: ChainOptions) -> None:
    """Publish your keystore's current public key (creating the keystore on first use)."""
    with connected(chain) as client:
        path = keystore_path(Settings.from_env(), client.address)
        done = publish_key(client, path, passphrase)
    if not done.published:
        click.echo(f"{client.address}: key version {done.version} is already published")
    else:
        created = f" (new keystore {path})" if done.created else ""
        click.echo(f"{client.address}: published key version {done.version}{created}")


@keys.command()
@chain_options
@user_errors
def rotate(chain: ChainOptions) -> None:
    """Make a new key pair and publish it; older keys stay in the keystore, so older shares still open."""
    with connected(chain) as client:
        path = keystore_path(Settings.from_env(), client.address)
        version = rotate_key(client, path, passphrase)
    click.echo(f"{client.address}: published key version {version} (earlier versions kept in {path})")


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
