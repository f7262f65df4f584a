"""A member's encryption key on chain: publish the keystore's key, rotate to a new one.

Keystore versions and on-chain key versions stay equal: each keystore key is
published once, in order. Everything the chain would refuse, and everything
that would leave a keystore the chain disagrees with, is checked before a
keystore is created or changed and before anything is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from offchain.chain.access import AccessClient
from offchain.chain.contract import ChainRefusal
from offchain.crypto import KeySuite, Keystore
from offchain.crypto.keystore import Unlock, keystore_lock
from offchain.records.service import RecordError

# Asked for the passphrase (or the HSM token's sealer, for a token-sealed keystore) only when it is needed;
# ``confirm`` when it seals a new keystore.
Passphrase = Callable[..., Unlock]


@dataclass(frozen=True)
class Publication:
    """What publishing did: the version on chain now, and whether anything new happened."""

    version: int
    published: bool  # False: that key was already the published one
    created: bool  # a new keystore was made


def create_keystore(client: AccessClient, path: Path, passphrase: Passphrase, suite: KeySuite) -> Keystore:
    """Create the member's keystore with a first key of ``suite``, unpublished (``publish_key`` publishes it).

    Refuses, before creating any file, when the account holds no role, when the
    chain already holds a key for it (restore that key's keystore instead), or
    when a keystore exists already.
    """
    _require_member(client)
    version = client.encryption_key_version(client.address)
    _require_unpaused_for_a_first_key(client, version)
    if version:
        raise RecordError(
            f"the chain already holds key version {version} for {client.address}; keep using the keystore that "
            "key came from (`medshare keys rotate` moves to a key of another kind)"
        )
    if path.exists():
        raise RecordError(
            f"keystore {path} already exists; refusing to overwrite it (`medshare keys publish` publishes its key)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    return Keystore.create(path, passphrase(confirm=True), suite=suite)


def publish_key(client: AccessClient, path: Path, passphrase: Passphrase) -> Publication:
    """Publish the keystore's current key, creating the keystore (key version 1) if there is none.

    Refuses, before creating any file, when the account holds no role or the
    chain already holds a key for it (the keystore that key came from is the
    one to restore).
    """
    address = client.address
    _require_member(client)
    on_chain = client.encryption_key(address)
    published, version = on_chain.public_key, on_chain.version
    _require_unpaused_for_a_first_key(client, version)
    created = not path.exists()
    if created:
        if version:
            raise RecordError(
                f"the chain already holds key version {version} for {address}, but there is no keystore at {path}; "
                "restore the keystore that key came from (a new key could not open what was shared with it)"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        keystore = Keystore.create(path, passphrase(confirm=True))
    else:
        keystore = Keystore.open(path, passphrase())
    if version == keystore.current_version:
        if published != keystore.public_key():
            raise RecordError(
                f"the key version {version} published for {address} is not the one in keystore {path}; "
                "is this the account's keystore?"
            )
        return Publication(version, published=False, created=False)
    if version + 1 != keystore.current_version:
        raise RecordError(
            f"the chain holds key version {version} for {address} but keystore {path} is at version "
            f"{keystore.current_version}; publish keys in order (one publication per keystore version)"
        )
    version = client.publish_encryption_key(keystore.public_key(), keystore.suite())
    return Publication(version, published=True, created=created)


def rotate_key(client: AccessClient, path: Path, passphrase: Passphrase, suite: KeySuite | None = None) -> int:
    """Add a new key pair (of ``suite``, default the current key's) to the keystore and publish it; returns
    its version.

    The old private keys stay in the keystore, so data keys wrapped for them
    still open. The keystore's lock is held from the check to the
    publication, so two rotations at once publish in keystore order.
    """
    address = client.address
    _require_member(client)
    if not path.exists():
        raise RecordError(f"there is no keystore at {path}; create and publish one with `medshare keys publish`")
    with keystore_lock(path):
        keystore = Keystore.open(path, passphrase())
        on_chain = client.encryption_key(address)
        published, version = on_chain.public_key, on_chain.version
        if version != keystore.current_version or published != keystore.public_key():
            raise RecordError(
                f"keystore {path} is at key version {keystore.current_version} but the chain holds version {version} "
                f"for {address}; run `medshare keys publish` first, so that every key is published in order"
            )
        new_version = keystore.rotate(suite)
        try:
            numbered = client.publish_encryption_key(keystore.public_key(new_version), keystore.suite(new_version))
        except ChainRefusal as refusal:
            raise RecordError(
                f"the chain refused the new key ({refusal}); key version {new_version} is saved in {path} "
                "but not published: `medshare keys publish` publishes it"
            ) from None
    if numbered != new_version:
        raise RecordError(f"the chain numbered the new key {numbered}, but keystore {path} holds it as {new_version}")
    return new_version


def _require_member(client: AccessClient) -> None:
    """What the key registry itself checks, checked first so that no keystore is made or changed in vain."""
    if not client.roles_of(client.address):
        raise RecordError(
            f"{client.address} holds no role in the consortium, so it cannot publish a key; ask an admin for one"
        )


def _require_unpaused_for_a_first_key(client: AccessClient, version: int) -> None:
    """The registry takes a replacement key while paused (it only narrows exposure), a first key only when unpaused."""
    if not version and client.is_paused():
        raise RecordError("the contract is paused: a first key can be published only after it is unpaused")
