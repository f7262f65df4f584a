"""A member's private keys, by version, in a file sealed under a passphrase.

The file is JSON, mode 0600, replaced atomically on every change::

    {"format": "medshare-keystore", "format_version": 1,
     "kdf": {"name": "scrypt", "log2_n": 17, "r": 8, "p": 1, "salt": <base64>},
     "cipher": {"name": "aes-256-gcm", "nonce": <base64>},
     "public_keys": {"1": <hex>, "2": <hex>},
     "key_suites": {"2": "mlkem768-x25519"},
     "ciphertext": <base64>}

Each key has a suite (:class:`~offchain.crypto.keywrap.KeySuite`):
``key_suites`` names those that are not X25519 (files holding only X25519
keys, as all did before the hybrid suite, have no such field).

``ciphertext`` seals the private keys (version u32 || 32 raw bytes, per key: an
X25519 scalar or an MLKEM768-X25519 seed) with
an AES-256-GCM key derived from the passphrase by scrypt; its associated data
is the canonical JSON of every other field except the nonce, so changing the
KDF settings or the public key list is detected like a wrong passphrase. The
public keys stay readable without the passphrase, for publishing to the key
registry.

Cost: new files are sealed with scrypt N = 2**17 at least (``MIN_NEW_SCRYPT_LOG2_N``);
files written with N = 2**15 or 2**16 by earlier versions still open, and are
resealed at 2**17 (with a new salt) the next time they are saved.

Concurrency: :meth:`Keystore.rotate` holds an exclusive ``flock`` on the
keystore's folder (the file itself is replaced on each save, so a lock on it
would not hold) while it reads the file again, adds the key and saves, so two
processes rotating at once get two successive versions and neither key is
lost; :func:`keystore_lock` lets a caller hold that lock across more steps
(e.g. rotating and publishing the new key).
"""

import base64
import fcntl
import json
import os
import secrets
import struct
import threading
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .atomic import atomic_write
from .errors import KeystoreError, KeyWrapError
from .keywrap import (
    DEFAULT_SUITE,
    KeySuite,
    RecipientKey,
    check_key_version,
    parse_wrapped_key,
    unwrap_data_key,
)

FORMAT = "medshare-keystore"
FORMAT_VERSION = 1
MIN_SCRYPT_LOG2_N = 15  # the lowest cost a file may have been written with (by earlier versions)
MIN_NEW_SCRYPT_LOG2_N = 17  # the lowest cost a file is written with now
MAX_SCRYPT_LOG2_N = 20
_SCRYPT_R = 8
_SCRYPT_P = 1
_SALT_SIZE = 16
_NONCE_SIZE = 12
_CIPHER = "aes-256-gcm"
_KEY_ENTRY = struct.Struct(">I32s")


class Keystore:
    """An unlocked keystore: the member's private keys, the newest one current.

    Open with :meth:`create` or :meth:`open`. Private keys never appear in
    ``repr`` or in error messages.
    """

    def __init__(self, path: Path, kdf: dict[str, Any], file_key: bytes, keys: dict[int, RecipientKey]) -> None:
        # Use create() or open(); this only assembles an unlocked keystore.
        self.path = path
        self._kdf = kdf
        self._file_key = file_key
        # What the file on disk is sealed with; differs from the above until an older, cheaper file is resealed.
        self._sealed_kdf, self._sealed_file_key = kdf, file_key
        self._keys = keys

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        passphrase: str,
        *,
        scrypt_log2_n: int = MIN_NEW_SCRYPT_LOG2_N,
        suite: KeySuite = DEFAULT_SUITE,
    ) -> "Keystore":
        """Create a keystore at ``path`` holding a new key of ``suite``, version 1.

        Never overwrites an existing file. ``scrypt_log2_n`` sets scrypt's
        cost, N = 2**scrypt_log2_n (17 to 20).
        """
        if not isinstance(suite, KeySuite):
            raise TypeError(f"suite must be a KeySuite, not {type(suite).__name__}")
        target = Path(path)
        if not MIN_NEW_SCRYPT_LOG2_N <= scrypt_log2_n <= MAX_SCRYPT_LOG2_N:
            raise ValueError(
                f"scrypt_log2_n must be {MIN_NEW_SCRYPT_LOG2_N} to {MAX_SCRYPT_LOG2_N}, got {scrypt_log2_n}"
            )
        if target.exists():  # checked early to spare the key derivation; the write re-checks atomically
            raise _exists_error(target)
        _derive_file_key(passphrase, None)  # refuse a bad passphrase before anything else
        kdf, file_key = _new_kdf(passphrase, scrypt_log2_n)
        keystore = cls(target, kdf, file_key, {1: RecipientKey.generate(suite)})
        keystore._save(overwrite=False)
        return keystore

    @classmethod
    def open(cls, path: str | os.PathLike[str], passphrase: str) -> "Keystore":
        """Unlock the keystore at ``path`` with ``passphrase``.

        Raises :class:`KeystoreError` if the file is missing, readable by
        group or others, malformed, or does not unlock (wrong passphrase or a
        modified file).
        """
        target = Path(path)
        document = _load_document(target)
        file_key = _derive_file_key(passphrase, document["kdf"])
        keystore = cls(target, document["kdf"], file_key, _unseal(target, document, file_key))
        if document["kdf"]["log2_n"] < MIN_NEW_SCRYPT_LOG2_N:
            # An older, cheaper file: the next save reseals it at today's cost.
            keystore._kdf, keystore._file_key = _new_kdf(passphrase, MIN_NEW_SCRYPT_LOG2_N)
            keystore._sealed_kdf, keystore._sealed_file_key = document["kdf"], file_key
        return keystore

    @staticmethod
    def read_public_keys(path: str | os.PathLike[str]) -> dict[int, bytes]:
        """Return the raw 32-byte public keys by version, without the passphrase.

        These are not authenticated until the keystore is opened.
        """
        return _public_keys(_load_document(Path(path)))

    @property
    def versions(self) -> tuple[int, ...]:
        """The key versions held, oldest first."""
        return tuple(sorted(self._keys))

    @property
    def current_version(self) -> int:
        """The newest key version: the one to publish and to receive new grants on."""
        return max(self._keys)

    def public_key(self, version: int | None = None) -> bytes:
        """Return the raw public key of ``version`` (default: current): 32 bytes, or 1,216 for MLKEM768-X25519."""
        return self.recipient_key(version).public_key

    def suite(self, version: int | None = None) -> KeySuite:
        """Return the suite of the key of ``version`` (default: current)."""
        return self.recipient_key(version).suite

    def private_key(self, version: int | None = None) -> X25519PrivateKey:
        """Return the X25519 private key of ``version`` (default: current); for a key of another
        suite, KeystoreError (see :meth:`recipient_key`)."""
        key = self.recipient_key(version)
        if key.suite is not KeySuite.X25519:
            raise KeystoreError(f"key version {version or self.current_version} is a {key.suite.value} key")
        return X25519PrivateKey.from_private_bytes(key.private_bytes_raw())

    def recipient_key(self, version: int | None = None) -> RecipientKey:
        """Return the private key of ``version`` (default: current), of either suite."""
        if version is None:
            version = self.current_version
        try:
            return self._keys[version]
        except KeyError:
            raise KeystoreError(
                f"keystore {self.path} holds no key version {version} (it holds {self._describe_versions()})"
            ) from None

    def rotate(self, suite: KeySuite | None = None) -> int:
        """Add a new key as the current version, save the file, and return the version.

        The new key is of ``suite`` (default: the current key's). Older keys
        stay, so data wrapped for them can still be unwrapped.
        Under the keystore's lock, the file is read again first: keys another
        process added since this one opened it are kept, and the new key
        follows them.
        """
        with keystore_lock(self.path):
            self._reload()
            version = self.current_version + 1
            check_key_version(version)
            self._keys[version] = RecipientKey.generate(suite or self.suite())
            try:
                self._save()
            except BaseException:
                del self._keys[version]
                raise
        return version

    def _reload(self) -> None:
        """Merge in the keys the file holds now (another process may have rotated since we opened it)."""
        document = _load_document(self.path)
        if document["kdf"] != self._sealed_kdf:
            raise KeystoreError(
                f"keystore {self.path} was resealed by another process since it was opened; open it again"
            )
        on_disk = _unseal(self.path, document, self._sealed_file_key)
        for version, key in on_disk.items():
            mine = self._keys.get(version)
            if mine is not None and (mine.suite, mine.private_bytes_raw()) != (key.suite, key.private_bytes_raw()):
                raise KeystoreError(f"keystore {self.path} holds a different key version {version}; open it again")
        self._keys.update(on_disk)

    def unwrap_data_key(self, wrapped: bytes, record_id: bytes, record_version: int) -> bytes:
        """Unwrap a data key with the private key of the version it was wrapped for."""
        version = parse_wrapped_key(wrapped).recipient_key_version
        if version not in self._keys:
            raise KeyWrapError(
                f"the data key was wrapped for key version {version}, "
                f"but keystore {self.path} holds {self._describe_versions()}"
            )
        return unwrap_data_key(wrapped, self._keys[version], record_id, record_version)

    def __repr__(self) -> str:
        return f"Keystore(path={str(self.path)!r}, versions={list(self.versions)})"

    def _describe_versions(self) -> str:
        return "versions " + ", ".join(map(str, self.versions))

    def _save(self, *, overwrite: bool = True) -> None:
        keys = sorted(self._keys.items())
        nonce = secrets.token_bytes(_NONCE_SIZE)
        document: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kdf": self._kdf,
            "cipher": {"name": _CIPHER, "nonce": _b64(nonce)},
            "public_keys": {str(version): key.public_key.hex() for version, key in keys},
        }
        suites = {str(version): key.suite.value for version, key in keys if key.suite is not KeySuite.X25519}
        if suites:
            document["key_suites"] = suites
        plaintext = b"".join(_KEY_ENTRY.pack(version, key.private_bytes_raw()) for version, key in keys)
        document["ciphertext"] = _b64(AESGCM(self._file_key).encrypt(nonce, plaintext, _associated_data(document)))
        try:
            with atomic_write(self.path, overwrite=overwrite) as file:
                file.write(json.dumps(document, indent=2, sort_keys=True).encode() + b"\n")
        except FileExistsError:
            raise _exists_error(self.path) from None
        except OSError as error:
            raise KeystoreError(f"cannot write keystore {self.path}: {error.strerror}") from None
        self._sealed_kdf, self._sealed_file_key = self._kdf, self._file_key


_held_locks: dict[Path, int] = {}  # keystore lock files this process holds, and how deeply
_held_locks_guard = threading.Lock()


@contextmanager
def keystore_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the keystore's exclusive lock (an ``flock`` on its folder) against other processes.

    Re-entrant within a process, so a caller may hold it around :meth:`Keystore.rotate`.
    """
    folder = Path(path).resolve().parent
    with _held_locks_guard:
        depth = _held_locks.get(folder, 0)
        if depth:
            _held_locks[folder] = depth + 1
    if depth:
        try:
            yield
        finally:
            with _held_locks_guard:
                _held_locks[folder] -= 1
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        raise KeystoreError(f"cannot lock keystore {path}: {error.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with _held_locks_guard:
            _held_locks[folder] = 1
        try:
            yield
        finally:
            with _held_locks_guard:
                del _held_locks[folder]
    finally:
        os.close(fd)  # closing releases the flock


def _unseal(path: Path, document: dict[str, Any], file_key: bytes) -> dict[int, RecipientKey]:
    try:
        nonce = _unb64(document["cipher"]["nonce"])
        plaintext = AESGCM(file_key).decrypt(nonce, _unb64(document["ciphertext"]), _associated_data(document))
    except InvalidTag:
        raise KeystoreError(f"cannot unlock keystore {path}: wrong passphrase, or the file was modified") from None
    suites = _key_suites(document)
    return {
        version: RecipientKey(suites.get(version, KeySuite.X25519), raw)
        for version, raw in _KEY_ENTRY.iter_unpack(plaintext)
    }


def _new_kdf(passphrase: str, log2_n: int) -> tuple[dict[str, Any], bytes]:
    """Fresh scrypt settings (a new salt) at cost 2**log2_n, and the file key they derive."""
    kdf = {"name": "scrypt", "log2_n": log2_n, "r": _SCRYPT_R, "p": _SCRYPT_P,
           "salt": _b64(secrets.token_bytes(_SALT_SIZE))}
    return kdf, _derive_file_key(passphrase, kdf)


def _exists_error(path: Path) -> KeystoreError:
    return KeystoreError(f"keystore {path} already exists; refusing to overwrite it")


def _load_document(path: Path) -> dict[str, Any]:
    try:
        mode = path.stat().st_mode
        if mode & 0o077:
            raise KeystoreError(
                f"keystore {path} is accessible to group or others (mode {mode & 0o777:04o}); run: chmod 600 {path}"
            )
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise KeystoreError(f"keystore {path} does not exist") from None
    except OSError as error:
        raise KeystoreError(f"cannot read keystore {path}: {error.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise KeystoreError(f"keystore {path} is not valid JSON") from None
    _check_document(path, document)
    return document


def _check_document(path: Path, document: Any) -> None:
    """Check the shape and limits of a keystore document before any key derivation."""

    def require(condition: bool, what: str) -> None:
        if not condition:
            raise KeystoreError(f"keystore {path} is malformed: {what}")

    require(isinstance(document, dict), "not a JSON object")
    require(document.get("format") == FORMAT, f"format is not {FORMAT!r}")
    version = document.get("format_version")
    if version != FORMAT_VERSION:
        raise KeystoreError(
            f"keystore {path} has unsupported format version {version!r} (this build reads {FORMAT_VERSION})"
        )
    kdf = document.get("kdf")
    require(isinstance(kdf, dict) and kdf.get("name") == "scrypt", "kdf is not scrypt")
    log2_n = kdf.get("log2_n")
    require(
        type(log2_n) is int and MIN_SCRYPT_LOG2_N <= log2_n <= MAX_SCRYPT_LOG2_N,
        f"kdf.log2_n must be {MIN_SCRYPT_LOG2_N} to {MAX_SCRYPT_LOG2_N}",
    )
    require(
        kdf.get("r") == _SCRYPT_R and kdf.get("p") == _SCRYPT_P, f"scrypt r and p must be {_SCRYPT_R} and {_SCRYPT_P}"
    )
    require(
        _decoded_length(kdf.get("salt")) >= _SALT_SIZE, f"kdf.salt must be base64 of at least {_SALT_SIZE} bytes"
    )
    cipher = document.get("cipher")
    require(isinstance(cipher, dict) and cipher.get("name") == _CIPHER, f"cipher is not {_CIPHER}")
    require(
        _decoded_length(cipher.get("nonce")) == _NONCE_SIZE, f"cipher.nonce must be base64 of {_NONCE_SIZE} bytes"
    )
    require(_decoded_length(document.get("ciphertext")) >= 0, "ciphertext must be base64")
    public_keys = document.get("public_keys")
    require(isinstance(public_keys, dict) and len(public_keys) > 0, "public_keys is missing or empty")
    try:
        suites = _key_suites(document)
    except (ValueError, TypeError, AttributeError):
        require(False, "key_suites must map versions to " + ", ".join(repr(s.value) for s in KeySuite))
    require(set(suites) <= set(map(int, filter(str.isdigit, public_keys))), "key_suites names a version with no key")
    try:
        _public_keys(document)
    except (ValueError, TypeError):
        require(False, "public_keys must map versions to hex keys of their suite's size")


def _public_keys(document: dict[str, Any]) -> dict[int, bytes]:
    suites = _key_suites(document)
    keys = {}
    for version_text, key_hex in document["public_keys"].items():
        version = int(version_text)
        check_key_version(version)
        key = bytes.fromhex(key_hex)
        if len(key) != suites.get(version, KeySuite.X25519).public_key_size:
            raise ValueError("public key is not the size of its suite's")
        keys[version] = key
    return keys


def _key_suites(document: dict[str, Any]) -> dict[int, KeySuite]:
    """The suite of each key version that is not X25519 (the field is absent when none is)."""
    return {int(version): KeySuite(name) for version, name in document.get("key_suites", {}).items()}


def _derive_file_key(passphrase: str, kdf: dict[str, Any] | None) -> bytes:
    """The file key ``kdf`` derives from ``passphrase``; with ``kdf`` None, only check the passphrase."""
    if not isinstance(passphrase, str):
        raise TypeError(f"passphrase must be a str, not {type(passphrase).__name__}")
    if not passphrase:
        raise KeystoreError("the passphrase is empty")
    if kdf is None:
        return b""
    salt = _unb64(kdf["salt"])
    scrypt = Scrypt(salt=salt, length=32, n=2 ** kdf["log2_n"], r=kdf["r"], p=kdf["p"])
    # NFC so that the same passphrase typed on different systems gives the same bytes.
    return scrypt.derive(unicodedata.normalize("NFC", passphrase).encode())


def _associated_data(document: dict[str, Any]) -> bytes:
    """The canonical JSON of every field but the nonce and the ciphertext."""
    authenticated = {key: value for key, value in document.items() if key not in ("cipher", "ciphertext")}
    authenticated["cipher"] = {"name": document["cipher"]["name"]}
    return json.dumps(authenticated, sort_keys=True, separators=(",", ":")).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _decoded_length(text: Any) -> int:
    """Return the length ``text`` decodes to as base64, or -1 if it is not base64."""
    try:
        return len(_unb64(text)) if isinstance(text, str) else -1
    except ValueError:
        return -1
