"""``medshare keys``: the member's encryption key pair, and its publication in the key registry.

    medshare keys create [--kem x25519|mlkem768-x25519]   create the keystore with a key of that kind
    medshare keys publish   create the keystore if needed (X25519), publish its current public key
    medshare keys rotate [--kem ...]   a new key pair, published; the old private keys stay in the keystore
    medshare keys show [ADDRESS]
    medshare keys hsm create LABEL | import LABEL KEYFILE | list
                                        secp256k1 keys in the HSM token: Ethereum accounts hsm:LABEL
    medshare keys hsm seal-keystore [--key-label L] | unseal-keystore   convert the keystore to or from
                                        sealing by an AES key inside the token

The keystore (private keys, sealed under a passphrase with scrypt)
lives in ``$MEDSHARE_HOME/keys/<address>.json``; the passphrase comes from
``MEDSHARE_PASSPHRASE`` or a prompt; a keystore sealed by the HSM token needs
no passphrase, but the token's PIN (``MEDSHARE_HSM_PIN``, ``MEDSHARE_HSM_PIN_FILE``
or a prompt; :mod:`offchain.hsm.token`). Keystore versions and on-chain key
versions stay equal: each keystore key is published once, in order
(:mod:`offchain.records.member_keys`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from offchain.cli.record import ADDRESS
from offchain import hsm as tokens
from offchain.cli.session import (
    ChainOptions,
    chain_options,
    connected,
    connected_account,
    keystore_unlock,
    network_options,
    passphrase,
    user_errors,
)
from offchain.crypto import DEFAULT_SUITE, Keystore, KeySuite
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


def _key_label_option(help_text: str):
    return click.option("--key-label", default=tokens.DEFAULT_KEY_LABEL, show_default=True, metavar="LABEL",
                        help=help_text)


@keys.command()
@chain_options
@_kem_option(DEFAULT_SUITE)
@click.option("--hsm", "sealed_by_token", is_flag=True,
              help="Seal the keystore with an AES key inside the HSM token instead of a passphrase.")
@_key_label_option("With --hsm: the token's AES key to seal with (created if the token has none by that label).")
@user_errors
def create(chain: ChainOptions, suite: KeySuite, sealed_by_token: bool, key_label: str) -> None:
    """Create your keystore with a new key of the chosen kind (then run `medshare keys publish`)."""
    with connected(chain) as client:
        path = Settings.from_env().keystore_path(client.address)
        unlock = _token_sealer(key_label) if sealed_by_token else keystore_unlock(path)
        keystore = create_keystore(client, path, unlock, suite)
    sealed = " sealed by the HSM token" if sealed_by_token else ""
    click.echo(f"{client.address}: created keystore {path}{sealed} with a {suite.value} key "
               f"(version {keystore.current_version})")


def _token_sealer(key_label: str):
    """An unlock callable (as :func:`keystore_unlock`'s) giving the token's sealer, the AES key made if missing."""
    return lambda **_: tokens.TokenSealer(tokens.open_token(), key_label, create=True)


@keys.command()
@chain_options
@user_errors
def publish(chain: ChainOptions) -> None:
    """Publish your keystore's current public key (creating the keystore on first use)."""
    with connected(chain) as client:
        path = Settings.from_env().keystore_path(client.address)
        done = publish_key(client, path, keystore_unlock(path))
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
        path = Settings.from_env().keystore_path(client.address)
        version = rotate_key(client, path, keystore_unlock(path), suite)
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


KEYFILE_PASSPHRASE_ENV = "MEDSHARE_KEYFILE_PASSPHRASE"


@keys.group()
def hsm() -> None:
    """Keys inside an HSM token (PKCS#11): Ethereum accounts hsm:LABEL, and sealing your keystore.

    The token is named by MEDSHARE_HSM_TOKEN (its label; default medshare) or
    MEDSHARE_HSM_SLOT, in the PKCS#11 module MEDSHARE_PKCS11_MODULE (default:
    SoftHSM2's); its PIN comes from MEDSHARE_HSM_PIN, the file
    MEDSHARE_HSM_PIN_FILE, or a prompt, never from an option."""


@hsm.command("create")
@click.argument("label")
@user_errors
def hsm_create(label: str) -> None:
    """Generate a secp256k1 key pair in the token, usable as the account hsm:LABEL.

    The private key is made inside the token, sensitive and never
    extractable: nothing can copy it out, not even this command."""
    key = tokens.create_signing_key(tokens.open_token(), label)
    click.echo(f"hsm:{key.label} {key.address} (created in {tokens.open_token().settings.describe()})")


@hsm.command("import")
@click.argument("label")
@click.argument("keyfile", type=click.Path(dir_okay=False, path_type=Path))
@user_errors
def hsm_import(label: str, keyfile: Path) -> None:
    """Move the key of an encrypted Ethereum keyfile (an Ape account's ~/.ape/accounts/ALIAS.json) into the token.

    The keyfile's passphrase comes from MEDSHARE_KEYFILE_PASSPHRASE or a
    prompt. In the token the key is sensitive and never extractable; the
    keyfile is left as it is: once `--account hsm:LABEL` works, destroy it and
    its copies."""
    from eth_account import Account

    try:
        encrypted = json.loads(keyfile.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise tokens.HsmError(f"cannot read keyfile {keyfile}: {getattr(error, 'strerror', None) or 'not JSON'}") \
            from None
    secret = os.environ.get(KEYFILE_PASSPHRASE_ENV) or _prompt_keyfile_passphrase(keyfile)
    try:
        private_key = Account.decrypt(encrypted, secret)
    except (ValueError, KeyError, TypeError):
        raise tokens.HsmError(f"keyfile {keyfile} does not open: wrong passphrase, or not an Ethereum keyfile") \
            from None
    key = tokens.import_signing_key(tokens.open_token(), label, bytes(private_key))
    del private_key
    click.echo(f"hsm:{key.label} {key.address} (imported into {tokens.open_token().settings.describe()}; "
               f"{keyfile} still holds the key: destroy it once hsm:{key.label} works)")


def _prompt_keyfile_passphrase(keyfile: Path) -> str:
    if not sys.stdin.isatty():
        raise tokens.HsmError(f"keyfile {keyfile} needs its passphrase and this run cannot ask for one: "
                              f"set {KEYFILE_PASSPHRASE_ENV}")
    return click.prompt(f"Passphrase of {keyfile}", hide_input=True)


@hsm.command("list")
@user_errors
def hsm_list() -> None:
    """List the token's signing keys: each account alias and its address."""
    token = tokens.open_token()
    keys = tokens.signing_keys(token)
    if not keys:
        click.echo(f"{token.settings.describe()} holds no signing key (`medshare keys hsm create LABEL` makes one)")
    for key in keys:
        click.echo(f"hsm:{key.label} {key.address}")


@hsm.command("seal-keystore")
@network_options
@_key_label_option("The token's AES key to seal with (created if the token has none by that label).")
@user_errors
def seal_keystore(chain: ChainOptions, key_label: str) -> None:
    """Convert your keystore from a passphrase to an AES key inside the token.

    Opened with its passphrase, then sealed again by the token's key, in one
    atomic replace; every key version is kept. From then on it opens only with
    the token (and its PIN)."""
    path = _account_keystore(chain)
    keystore = Keystore.open(path, keystore_unlock(path)())
    if keystore.token_sealed:
        raise tokens.HsmError(f"keystore {path} is already sealed by the HSM token")
    keystore.reseal(tokens.TokenSealer(tokens.open_token(), key_label, create=True))
    click.echo(f"keystore {path} is now sealed by key {key_label!r} in {tokens.open_token().settings.describe()} "
               f"(versions {', '.join(map(str, keystore.versions))})")


@hsm.command("unseal-keystore")
@network_options
@user_errors
def unseal_keystore(chain: ChainOptions) -> None:
    """Convert your keystore back from the token's key to a passphrase (MEDSHARE_PASSPHRASE or a prompt)."""
    path = _account_keystore(chain)
    if not path.exists() or not Keystore.sealed_by_token(path):
        raise tokens.HsmError(f"keystore {path} is not sealed by the HSM token")
    keystore = Keystore.open(path, keystore_unlock(path)())
    keystore.reseal(passphrase(confirm=True))
    click.echo(f"keystore {path} is now sealed by a passphrase (versions {', '.join(map(str, keystore.versions))})")


def _account_keystore(chain: ChainOptions):
    with connected_account(chain) as account:
        path = Settings.from_env().keystore_path(account.address)
    if not path.exists():
        raise tokens.HsmError(f"there is no keystore at {path} (`medshare keys create` makes one)")
    return path
