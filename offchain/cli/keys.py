"""``medshare keys``: the member's encryption key pair, and its publication in the key registry.

    medshare keys create [--kem x25519|mlkem768-x25519]   create the keystore with a key of that kind
    medshare keys publish   create the keystore if needed (X25519), publish its current public key
    medshare keys rotate [--kem ...]   a new key pair, published; the old private keys stay in the keystore
    medshare keys show [ADDRESS]

The keystore (private keys, sealed under a passphrase with scrypt)
lives in ``$MEDSHARE_HOME/keys/<address>.json``; the passphrase comes from
``MEDSHARE_PASSPHRASE`` or a prompt. Keystore versions and on-chain key
versions stay equal: each keystore key is published once, in order
(:mod:`offchain.records.member_keys`).
"""

from __future__ import annotations

import click

from offchain.cli.record import ADDRESS
from offchain.cli.session import ChainOptions, chain_options, connected, keystore_path, passphrase, user_errors
from offchain.crypto import DEFAULT_SUITE, KeySuite
from offchain.records.member_keys import create_keystore, publish_key, rotate_key
from offchain.settings import Settings


@click.group()
def keys() -> None:
    """Create, publish and rotate your encryption key."""


def _kem_option(default: KeySuite | None):
    return click.option(
        "--kem", "suite", type=click.Choice([suite.value for suite in KeySuite]),
        default=default.value if default else None, show_default=bool(default),
        callback=lambda _ctx, _param, value: KeySuite(value) if value else None,
        help="The key's kind: X25519, or the hybrid post-quantum MLKEM768-X25519 (for records that must stay "
        "secret for decades; 1,216-byte public key, 1,183-byte wrapped keys)."
        + ("" if default else " Default: the current key's kind."),
    )


@keys.command()
@chain_options
@_kem_option(DEFAULT_SUITE)
@user_errors
def create(chain: ChainOptions, suite: KeySuite) -> None:
    """Create your keystore with a new key of the chosen kind (then run `medshare keys publish`)."""
    with connected(chain) as client:
        path = keystore_path(Settings.from_env(), client.address)
        keystore = create_keystore(client, path, passphrase, suite)
    click.echo(f"{client.address}: created keystore {path} with a {suite.value} key (version {keystore.current_version})")


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
@_kem_option(None)
@user_errors
def rotate(chain: ChainOptions, suite: KeySuite | None) -> None:
    """Make a new key pair and publish it; older keys stay in the keystore, so older shares still open."""
    with connected(chain) as client:
        path = keystore_path(Settings.from_env(), client.address)
        version = rotate_key(client, path, passphrase, suite)
    click.echo(f"{client.address}: published key version {version} (earlier versions kept in {path})")


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
