"""A member's private keys, by version, in a file sealed under a passphrase or by a key inside an HSM.

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

Sealed by an HSM instead (``format_version`` 2): the file has no ``kdf`` but
``"token_key": {"name": "pkcs11-aes-256-gcm", "label": <label>, "id": <hex>}``,
and the same AES-256-GCM (same nonce, same associated data) runs inside the
token under that non-extractable AES key (:mod:`offchain.hsm.keystore_seal`).
An unlocked token-sealed keystore holds no private key: each use unseals it
through the token again, so nothing unsealed outlives the call, and a removed
token or a wrong PIN ends access. :meth:`Keystore.reseal` converts a file
either way.

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
from typing import Any, Protocol

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
PASSPHRASE_FORMAT_VERSION = 1  # sealed by a passphrase ("kdf"), as every file before token sealing
TOKEN_FORMAT_VERSION = 2  # sealed by a key inside a token ("token_key"): builds that predate it refuse it by version
FORMAT_VERSIONS = (PASSPHRASE_FORMAT_VERSION, TOKEN_FORMAT_VERSION)
TOKEN_KEY_NAME = "pkcs11-aes-256-gcm"
MIN_SCRYPT_LOG2_N = 15  # the lowest cost a file may have been written with (by earlier versions)
MIN_NEW_SCRYPT_LOG2_N = 17  # the lowest cost a file is written with now
MAX_SCRYPT_LOG2_N = 20
_SCRYPT_R = 8
_SCRYPT_P = 1
_SALT_SIZE = 16
_NONCE_SIZE = 12
_CIPHER = "aes-256-gcm"
_KEY_ENTRY = struct.Struct(">I32s")


class KeySeal(Protocol):
    """What a keystore file's private keys are sealed with: a passphrase (scrypt) or a key inside a token.

    ``header`` is the document's field naming it (``kdf`` or ``token_key``),
    authenticated with the rest; ``encrypt``/``decrypt`` are AES-256-GCM under
    the sealing key, ``decrypt`` raising :class:`KeystoreError` when it does
    not open. ``keeps_keys`` says whether an unlocked keystore may hold the
    private keys in memory (a passphrase-sealed one does: its file key is
    there anyway) or must unseal them for each use (a token-sealed one, so that
    a removed token or a logged-out session ends access at once).
    """

    header: dict[str, Any]
    format_version: int
    keeps_keys: bool

    def encrypt(self, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes: ...

    def decrypt(self, path: Path, nonce: bytes, ciphertext: bytes, associated_data: bytes) -> bytes: ...


class KeySealer(Protocol):
    """Makes the :class:`KeySeal` that a new file is sealed with, or that opens the file a header names."""

    def new_seal(self) -> KeySeal: ...

    def open_seal(self, path: Path, header: dict[str, Any]) -> KeySeal: ...


Unlock = str | KeySealer
"""A passphrase, or the sealer of a token-held key (:class:`offchain.hsm.TokenSealer`)."""


class Keystore:
    """An unlocked keystore: the member's private keys, the newest one current.

    Open with :meth:`create` or :meth:`open`. Private keys never appear in
    ``repr`` or in error messages.
    """

    def __init__(self, path: Path, seal: KeySeal, document: dict[str, Any],
                 keys: dict[int, RecipientKey] | None) -> None:
        # Use create() or open(); this only assembles an unlocked keystore.
        self.path = path
        self._seal = seal  # what the next save seals with
        self._sealed_by = seal  # what the file on disk is sealed with; differs until an older file is resealed
        self._document = document  # the file as last read or written (public keys, suites, sealed keys)
        self._keys = keys if seal.keeps_keys else None

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        unlock: Unlock,
        *,
        scrypt_log2_n: int = MIN_NEW_SCRYPT_LOG2_N,
        suite: KeySuite = DEFAULT_SUITE,
    ) -> "Keystore":
        """Create a keystore at ``path`` holding a new key of ``suite``, version 1.

        ``unlock`` is a passphrase (the keys are sealed under a key scrypt
        derives from it) or a token's :class:`KeySealer`. Never overwrites an
        existing file. ``scrypt_log2_n`` sets scrypt's cost, N = 2**scrypt_log2_n
        (17 to 20).
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
        seal = _sealer(unlock, scrypt_log2_n).new_seal()
        keystore = cls(target, seal, {}, {})
        keystore._save({1: RecipientKey.generate(suite)}, overwrite=False)
        return keystore

    @classmethod
    def open(cls, path: str | os.PathLike[str], unlock: Unlock) -> "Keystore":
        """Unlock the keystore at ``path`` with ``unlock``: its passphrase, or the token's :class:`KeySealer`.

        Raises :class:`KeystoreError` if the file is missing, readable by
        group or others, malformed, sealed the other way, or does not unlock
        (wrong passphrase or token key, or a modified file).
        """
        target = Path(path)
        document = _load_document(target)
        sealer = _sealer(unlock, MIN_NEW_SCRYPT_LOG2_N)
        seal = sealer.open_seal(target, _seal_header(document))
        keys = _unseal(target, document, seal)
        keystore = cls(target, seal, document, keys)
        if getattr(seal, "outdated", False):
            # An older, cheaper file: the next save reseals it at today's cost.
            keystore._seal = sealer.new_seal()
        return keystore

    @staticmethod
    def read_public_keys(path: str | os.PathLike[str]) -> dict[int, bytes]:
        """Return the raw 32-byte public keys by version, without the passphrase.

        These are not authenticated until the keystore is opened.
        """
        return _public_keys(_load_document(Path(path)))

    @staticmethod
    def sealed_by_token(path: str | os.PathLike[str]) -> bool:
        """Whether the keystore at ``path`` is sealed by a key inside a token (else by a passphrase)."""
        return "token_key" in _load_document(Path(path))

    @property
    def token_sealed(self) -> bool:
        """Whether this keystore's file is sealed by a key inside a token."""
        return "token_key" in self._sealed_by.header

    @property
    def versions(self) -> tuple[int, ...]:
        """The key versions held, oldest first."""
        return tuple(sorted(_public_keys(self._document)))

    @property
    def current_version(self) -> int:
        """The newest key version: the one to publish and to receive new grants on."""
        return max(self.versions)

    def public_key(self, version: int | None = None) -> bytes:
        """Return the raw public key of ``version`` (default: current): 32 bytes, or 1,216 for MLKEM768-X25519."""
        return _public_keys(self._document)[self._held(version)]

    def suite(self, version: int | None = None) -> KeySuite:
        """Return the suite of the key of ``version`` (default: current)."""
        return _key_suites(self._document).get(self._held(version), KeySuite.X25519)

    def private_key(self, version: int | None = None) -> X25519PrivateKey:
        """Return the X25519 private key of ``version`` (default: current); for a key of another
        suite, KeystoreError (see :meth:`recipient_key`)."""
        key = self.recipient_key(version)
        if key.suite is not KeySuite.X25519:
            raise KeystoreError(f"key version {version or self.current_version} is a {key.suite.value} key")
        return X25519PrivateKey.from_private_bytes(key.private_bytes_raw())

    def recipient_key(self, version: int | None = None) -> RecipientKey:
        """Return the private key of ``version`` (default: current), of either suite.

        A token-sealed keystore unseals it through the token on each call.
        """
        return self._private_keys()[self._held(version)]

    def rotate(self, suite: KeySuite | None = None) -> int:
        """Add a new key as the current version, save the file, and return the version.

        The new key is of ``suite`` (default: the current key's). Older keys
        stay, so data wrapped for them can still be unwrapped.
        Under the keystore's lock, the file is read again first: keys another
        process added since this one opened it are kept, and the new key
        follows them.
        """
        with keystore_lock(self.path):
            keys = self._reload()
            version = max(keys) + 1
            check_key_version(version)
            keys[version] = RecipientKey.generate(suite or self.suite())
            self._save(keys)
        return version

    def reseal(self, unlock: Unlock, *, scrypt_log2_n: int = MIN_NEW_SCRYPT_LOG2_N) -> None:
        """Seal the file anew with ``unlock`` (a passphrase, or a token's :class:`KeySealer`), keeping every key.

        This converts a passphrase keystore to a token-sealed one and back; the
        file is replaced atomically, so it is sealed one way or the other,
        never neither.
        """
        with keystore_lock(self.path):
            keys = self._reload()
            self._seal = _sealer(unlock, scrypt_log2_n).new_seal()
            self._save(keys)

    def _held(self, version: int | None) -> int:
        if version is None:
            return self.current_version
        if version not in self.versions:
            raise KeystoreError(
                f"keystore {self.path} holds no key version {version} (it holds {self._describe_versions()})"
            )
        return version

    def _private_keys(self) -> dict[int, RecipientKey]:
        if self._keys is not None:
            return self._keys
        return _unseal(self.path, self._document, self._sealed_by)

    def _reload(self) -> dict[int, RecipientKey]:
        """The keys the file holds now (another process may have rotated since we opened it), with ours."""
        document = _load_document(self.path)
        if _seal_header(document) != self._sealed_by.header:
            raise KeystoreError(
                f"keystore {self.path} was resealed by another process since it was opened; open it again"
            )
        on_disk = _unseal(self.path, document, self._sealed_by)
        keys = dict(self._keys or {})
        for version, key in on_disk.items():
            mine = keys.get(version)
            if mine is not None and (mine.suite, mine.private_bytes_raw()) != (key.suite, key.private_bytes_raw()):
                raise KeystoreError(f"keystore {self.path} holds a different key version {version}; open it again")
        keys.update(on_disk)
        return keys

    def unwrap_data_key(self, wrapped: bytes, record_id: bytes, record_version: int) -> bytes:
        """Unwrap a data key with the private key of the version it was wrapped for."""
        version = parse_wrapped_key(wrapped).recipient_key_version
        if version not in self.versions:
            raise KeyWrapError(
                f"the data key was wrapped for key version {version}, "
                f"but keystore {self.path} holds {self._describe_versions()}"
            )
        return unwrap_data_key(wrapped, self.recipient_key(version), record_id, record_version)

    def __repr__(self) -> str:
        return f"Keystore(path={str(self.path)!r}, versions={list(self.versions)})"

    def _describe_versions(self) -> str:
        return "versions " + ", ".join(map(str, self.versions))

    def _save(self, keys: dict[int, RecipientKey], *, overwrite: bool = True) -> None:
        ordered = sorted(keys.items())
        nonce = secrets.token_bytes(_NONCE_SIZE)
        document: dict[str, Any] = {
            "format": FORMAT,
            "format_version": self._seal.format_version,
            **self._seal.header,
            "cipher": {"name": _CIPHER, "nonce": _b64(nonce)},
            "public_keys": {str(version): key.public_key.hex() for version, key in ordered},
        }
        suites = {str(version): key.suite.value for version, key in ordered if key.suite is not KeySuite.X25519}
        if suites:
            document["key_suites"] = suites
        plaintext = b"".join(_KEY_ENTRY.pack(version, key.private_bytes_raw()) for version, key in ordered)
        document["ciphertext"] = _b64(self._seal.encrypt(nonce, plaintext, _associated_data(document)))
        try:
            with atomic_write(self.path, overwrite=overwrite) as file:
                file.write(json.dumps(document, indent=2, sort_keys=True).encode() + b"\n")
        except FileExistsError:
            raise _exists_error(self.path) from None
        except OSError as error:
            raise KeystoreError(f"cannot write keystore {self.path}: {error.strerror}") from None
        self._sealed_by, self._document = self._seal, document
        self._keys = keys if self._seal.keeps_keys else None


class _PassphraseSeal:
    """AES-256-GCM under a file key that scrypt derives from the passphrase."""

    format_version = PASSPHRASE_FORMAT_VERSION
    keeps_keys = True

    def __init__(self, kdf: dict[str, Any], file_key: bytes) -> None:
        self.header = {"kdf": kdf}
        self.outdated = kdf["log2_n"] < MIN_NEW_SCRYPT_LOG2_N
        self._cipher = AESGCM(file_key)

    def encrypt(self, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
        return self._cipher.encrypt(nonce, plaintext, associated_data)

    def decrypt(self, path: Path, nonce: bytes, ciphertext: bytes, associated_data: bytes) -> bytes:
        try:
            return self._cipher.decrypt(nonce, ciphertext, associated_data)
        except InvalidTag:
            raise KeystoreError(f"cannot unlock keystore {path}: wrong passphrase, or the file was modified") from None


class _PassphraseSealer:
    def __init__(self, passphrase: str, log2_n: int) -> None:
        _derive_file_key(passphrase, None)  # refuse a bad passphrase before anything else
        self._passphrase, self._log2_n = passphrase, log2_n

    def new_seal(self) -> _PassphraseSeal:
        """Fresh scrypt settings (a new salt) at this sealer's cost, and the file key they derive."""
        kdf = {"name": "scrypt", "log2_n": self._log2_n, "r": _SCRYPT_R, "p": _SCRYPT_P,
               "salt": _b64(secrets.token_bytes(_SALT_SIZE))}
        return _PassphraseSeal(kdf, _derive_file_key(self._passphrase, kdf))

    def open_seal(self, path: Path, header: dict[str, Any]) -> _PassphraseSeal:
        if "kdf" not in header:
            raise KeystoreError(f"keystore {path} is sealed by a key inside an HSM token, not by a passphrase; "
                                "configure the token (MEDSHARE_HSM_TOKEN, MEDSHARE_HSM_PIN) to open it")
        return _PassphraseSeal(header["kdf"], _derive_file_key(self._passphrase, header["kdf"]))


def _sealer(unlock: Unlock, scrypt_log2_n: int) -> KeySealer:
    if isinstance(unlock, str):
        return _PassphraseSealer(unlock, scrypt_log2_n)
    if not hasattr(unlock, "open_seal"):
        raise TypeError(f"passphrase must be a str or a KeySealer, not {type(unlock).__name__}")
    return unlock


def _seal_header(document: dict[str, Any]) -> dict[str, Any]:
    """The field naming what the document is sealed with."""
    return {name: document[name] for name in ("kdf", "token_key") if name in document}


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


def _unseal(path: Path, document: dict[str, Any], seal: KeySeal) -> dict[int, RecipientKey]:
    nonce = _unb64(document["cipher"]["nonce"])
    plaintext = seal.decrypt(path, nonce, _unb64(document["ciphertext"]), _associated_data(document))
    suites = _key_suites(document)
    return {
        version: RecipientKey(suites.get(version, KeySuite.X25519), raw)
        for version, raw in _KEY_ENTRY.iter_unpack(plaintext)
    }


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
    if version not in FORMAT_VERSIONS:
        raise KeystoreError(
            f"keystore {path} has unsupported format version {version!r} "
            f"(this build reads {', '.join(map(str, FORMAT_VERSIONS))})"
        )
    if version == TOKEN_FORMAT_VERSION:
        token_key = document.get("token_key")
        require(isinstance(token_key, dict) and token_key.get("name") == TOKEN_KEY_NAME
                and isinstance(token_key.get("label"), str) and token_key["label"]
                and _is_hex(token_key.get("id")) and "kdf" not in document,
                f"token_key must name a {TOKEN_KEY_NAME} key by label and hex id")
    else:
        kdf = document.get("kdf")
        require(isinstance(kdf, dict) and kdf.get("name") == "scrypt" and "token_key" not in document,
                "kdf is not scrypt")
        log2_n = kdf.get("log2_n")
        require(
            type(log2_n) is int and MIN_SCRYPT_LOG2_N <= log2_n <= MAX_SCRYPT_LOG2_N,
            f"kdf.log2_n must be {MIN_SCRYPT_LOG2_N} to {MAX_SCRYPT_LOG2_N}",
        )
        require(
            kdf.get("r") == _SCRYPT_R and kdf.get("p") == _SCRYPT_P,
            f"scrypt r and p must be {_SCRYPT_R} and {_SCRYPT_P}",
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


def _is_hex(text: Any) -> bool:
    try:
        return isinstance(text, str) and len(bytes.fromhex(text)) > 0
    except ValueError:
        return False


def _decoded_length(text: Any) -> int:
    """Return the length ``text`` decodes to as base64, or -1 if it is not base64."""
    try:
        return len(_unb64(text)) if isinstance(text, str) else -1
    except ValueError:
        return -1
