"""``medshare keys``: the member's encryption key pair, and its publication in the key registry.

    medshare keys create [--kem x25519|mlkem768-x25519]   create the keystore with a key of that kind
    medshare keys publish   create the keystore if needed (X25519), publish its current public key
    medshare keys show [ADDRESS]

The keystore (private keys, sealed under a passphrase with scrypt)
lives in ``$MEDSHARE_HOME/keys/<address>.json``; the passphrase comes from
``MEDSHARE_PASSPHRASE`` or a prompt. Keystore versions and on-chain key
versions stay equal: each keystore key is published once, in order.
"""

from __future__ import annotations

import click

from offchain.cli.record import ADDRESS
from offchain.cli.session import ChainOptions, chain_options, connected, keystore_path, passphrase, user_errors
from offchain.crypto import DEFAULT_SUITE, KeySuite, Keystore
from offchain.records import RecordError
from offchain.settings import Settings


@click.group()
def keys() -> None:
    """Create and publish your encryption key."""


@keys.command()
@chain_options
@click.option(
    "--kem", "suite", type=click.Choice([suite.value for suite in KeySuite]), default=DEFAULT_SUITE.value,
    show_default=True, callback=lambda _ctx, _param, value: KeySuite(value),
    help="The key's kind: X25519, or the hybrid post-quantum MLKEM768-X25519 (for records that must stay "
    "secret for decades; 1,216-byte public key, 1,183-byte wrapped keys).",
)
@user_errors
def create(chain: ChainOptions, suite: KeySuite) -> None:
    """Create your keystore with a new key of the chosen kind (then run `medshare keys publish`)."""
    settings = Settings.from_env()
    with connected(chain) as client:
        path = keystore_path(settings, client.address)
    path.parent.mkdir(parents=True, exist_ok=True)
    keystore = Keystore.create(path, passphrase(confirm=True), suite=suite)
    click.echo(f"{client.address}: created keystore {path} with a {suite.value} key (version {keystore.current_version})")


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
        published = client.encryption_key(client.address)
        version = published.version
        if version == keystore.current_version and published.public_key == keystore.public_key():
            click.echo(f"{client.address}: key version {version} is already published")
            return
        if version + 1 != keystore.current_version:
            raise RecordError(
                f"the chain holds key version {version} for {client.address} but keystore {path} is at version "
                f"{keystore.current_version}; publish keys in order (one publication per keystore version)"
            )
        version = client.publish_encryption_key(keystore.public_key(), keystore.suite())
    click.echo(f"{client.address}: published key version {version}" + (f" (new keystore {path})" if created else ""))


@keys.command()
@chain_options
@click.argument("member", required=False, type=ADDRESS)
@user_errors
def show(chain: ChainOptions, member: str | None) -> None:
    """Show MEMBER's (default: your) published key and version."""
    with connected(chain) as client:
        member = member or client.address
        key = client.encryption_key(member)
    if not key.published:
        click.echo(f"{member}: no key published")
    else:
        click.echo(f"{member}: key version {key.version} 0x{key.public_key.hex()} ({key.suite.description})")
