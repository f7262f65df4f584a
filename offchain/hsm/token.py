"""A PKCS#11 token as configured: its module, which token, and where its PIN comes from.

``MEDSHARE_PKCS11_MODULE``  the vendor's PKCS#11 library (default: SoftHSM2's, where installed)
``MEDSHARE_HSM_TOKEN``      the token's label (default ``medshare``)
``MEDSHARE_HSM_SLOT``       the slot id instead of a label (for devices whose labels repeat)
``MEDSHARE_HSM_PIN``        the user PIN; or
``MEDSHARE_HSM_PIN_FILE``   a file (mode 0600) holding it; otherwise asked for on a terminal

The PIN is never a command-line argument (others on the machine could read it
in the process list) and never appears in a message.

A process logs in once per token and keeps that session (a login derives the
token's keys from the PIN: about 35 ms on SoftHSM2, seconds on some devices);
every operation runs under one lock, as a PKCS#11 session serves one
operation at a time.
"""

from __future__ import annotations

import getpass
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from offchain.hsm.errors import HsmError

MODULE_ENV = "MEDSHARE_PKCS11_MODULE"
TOKEN_ENV = "MEDSHARE_HSM_TOKEN"
SLOT_ENV = "MEDSHARE_HSM_SLOT"
PIN_ENV = "MEDSHARE_HSM_PIN"
PIN_FILE_ENV = "MEDSHARE_HSM_PIN_FILE"
DEFAULT_TOKEN_LABEL = "medshare"
SOFTHSM2_MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",  # Debian, Ubuntu
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",  # Fedora, RHEL
    "/usr/local/lib/softhsm/libsofthsm2.so",  # built from source, Homebrew
)


@dataclass(frozen=True)
class TokenSettings:
    """Which token to use and where its PIN comes from (the PIN itself is read only at login)."""

    module: Path
    token_label: str | None = DEFAULT_TOKEN_LABEL
    slot: int | None = None
    pin_file: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> TokenSettings:
        module = environ.get(MODULE_ENV) or next((m for m in SOFTHSM2_MODULES if Path(m).exists()), None)
        if module is None:
            raise HsmError(f"no PKCS#11 module: set {MODULE_ENV} to your HSM's library, or install SoftHSM2 "
                           "(Debian: apt-get install softhsm2)")
        slot_text = environ.get(SLOT_ENV)
        slot = None
        if slot_text:
            try:
                slot = int(slot_text, 0)
            except ValueError:
                raise HsmError(f"{SLOT_ENV} must be a slot number, not {slot_text!r}") from None
        label = environ.get(TOKEN_ENV) or (None if slot is not None else DEFAULT_TOKEN_LABEL)
        pin_file = environ.get(PIN_FILE_ENV)
        return cls(Path(module), label, slot, Path(pin_file) if pin_file else None)

    def describe(self) -> str:
        """The token, as messages name it."""
        if self.token_label is not None and self.slot is not None:
            return f"token {self.token_label!r} in slot {self.slot}"
        return f"token {self.token_label!r}" if self.token_label is not None else f"the token in slot {self.slot}"


def read_pin(settings: TokenSettings, environ: Mapping[str, str] = os.environ) -> str:
    """The user PIN: ``MEDSHARE_HSM_PIN``, else the PIN file, else asked for (never echoed) on a terminal."""
    pin = environ.get(PIN_ENV)
    if pin:
        return pin
    if settings.pin_file is not None:
        try:
            mode = settings.pin_file.stat().st_mode
            if mode & 0o077:
                raise HsmError(f"PIN file {settings.pin_file} is readable by group or others; "
                               f"run: chmod 600 {settings.pin_file}")
            pin = settings.pin_file.read_text().strip()
        except OSError as error:
            raise HsmError(f"cannot read the PIN file {settings.pin_file}: {error.strerror}") from None
        if not pin:
            raise HsmError(f"PIN file {settings.pin_file} is empty")
        return pin
    if sys.stdin.isatty():
        return getpass.getpass(f"PIN of {settings.describe()}: ")
    raise HsmError(f"{settings.describe()} needs its user PIN and this run cannot ask for one: "
                   f"set {PIN_ENV} or {PIN_FILE_ENV}")


class Token:
    """A logged-in session on one token; :meth:`session` runs one operation at a time on it.

    Get one with :func:`open_token`. PKCS#11 failures become :class:`HsmError`
    (:meth:`session`), each one clear line.
    """

    def __init__(self, settings: TokenSettings, pkcs11_token: Any, session: Any) -> None:
        self.settings = settings
        self._token = pkcs11_token
        self._session = session
        self._lock = threading.RLock()

    @property
    def label(self) -> str:
        return self._token.label

    def has_mechanisms(self, *mechanisms: Any) -> None:
        """Refuse, naming them, the mechanisms this token does not offer."""
        with self.session():
            offered = self._token.slot.get_mechanisms()
        missing = [mechanism.name for mechanism in mechanisms if mechanism not in offered]
        if missing:
            raise HsmError(f"{self.settings.describe()} does not offer {', '.join('CKM_' + m for m in missing)}; "
                           "MedShare needs it (use a token or HSM that does)")

    @contextmanager
    def session(self) -> Iterator[Any]:
        """The logged-in python-pkcs11 session, held alone; its errors become :class:`HsmError`."""
        import pkcs11.exceptions as errors

        gone = (errors.DeviceRemoved, errors.TokenNotPresent, errors.TokenNotRecognised, errors.SessionHandleInvalid,
                errors.SessionClosed, errors.DeviceError, errors.UserNotLoggedIn, errors.ObjectHandleInvalid)
        with self._lock:
            try:
                try:
                    self._token.slot.get_token()  # still there? (a removed token fails here, before any use)
                except errors.PKCS11Error:
                    raise errors.TokenNotPresent() from None
                yield self._session
            except gone:
                _forget(self)
                raise HsmError(f"{self.settings.describe()} is no longer available (removed, or its session "
                               "ended); reconnect it and run the command again") from None
            except errors.MechanismInvalid:
                raise HsmError(f"{self.settings.describe()} refused the mechanism MedShare asked for; "
                               "it does not support it") from None
            except errors.PKCS11Error as error:
                raise HsmError(f"{self.settings.describe()} refused the operation ({_reason(error)})") from None


_tokens: dict[TokenSettings, Token] = {}
_tokens_guard = threading.Lock()
_modules: dict[Path, Any] = {}


def open_token(settings: TokenSettings | None = None) -> Token:
    """The configured token, logged in (once per process: later calls return the same session)."""
    settings = settings or TokenSettings.from_env()
    with _tokens_guard:
        token = _tokens.get(settings)
        if token is None:
            token = _tokens[settings] = _login(settings)
        return token


def close_tokens() -> None:
    """Log out of and close every token session this process holds."""
    with _tokens_guard:
        while _tokens:
            _, token = _tokens.popitem()
            try:
                token._session.close()
            except Exception:  # noqa: BLE001 - a token already gone has nothing left to close
                pass


def _forget(token: Token) -> None:
    with _tokens_guard:
        if _tokens.get(token.settings) is token:
            del _tokens[token.settings]


def _module(path: Path) -> Any:
    import pkcs11

    if path not in _modules:
        if not path.exists():
            raise HsmError(f"PKCS#11 module {path} does not exist (set {MODULE_ENV}, or install SoftHSM2)")
        try:
            _modules[path] = pkcs11.lib(str(path))
        except (OSError, RuntimeError) as error:
            raise HsmError(f"cannot load PKCS#11 module {path}: {error.__class__.__name__}") from None
    return _modules[path]


def _find_token(settings: TokenSettings) -> Any:
    import pkcs11.exceptions as errors

    library = _module(settings.module)
    try:
        tokens = {}
        for slot in library.get_slots(token_present=True):
            try:
                tokens[slot.slot_id] = slot.get_token()
            except errors.PKCS11Error:
                continue  # a slot whose token went away while we listed: not one to use
    except errors.PKCS11Error as error:
        raise HsmError(f"{settings.module} cannot list its tokens ({error.__class__.__name__})") from None
    if settings.slot is not None:
        if settings.slot not in tokens:
            raise HsmError(f"no token in slot {settings.slot} of {settings.module} "
                           f"(slots with a token: {', '.join(map(str, tokens)) or 'none'}); set {SLOT_ENV}")
        token = tokens[settings.slot]
        if settings.token_label is not None and token.label != settings.token_label:
            raise HsmError(f"the token in slot {settings.slot} is labelled {token.label!r}, "
                           f"not {settings.token_label!r}")
        return token
    matching = [token for token in tokens.values() if token.label == settings.token_label]
    if not matching:
        known = ", ".join(repr(token.label) for token in tokens.values() if token.label) or \
            "none (initialise one first)"
        raise HsmError(f"no token labelled {settings.token_label!r} in {settings.module} (tokens: {known}); "
                       f"set {TOKEN_ENV}")
    if len(matching) > 1:
        raise HsmError(f"more than one token is labelled {settings.token_label!r}: set {SLOT_ENV} to choose one")
    return matching[0]


def _login(settings: TokenSettings) -> Token:
    import pkcs11
    import pkcs11.exceptions as errors

    token = _find_token(settings)
    flags = pkcs11.TokenFlag(token.flags)
    # Checked before a login is tried: a device counts wrong PINs, and a locked one refuses even the right one.
    if flags & pkcs11.TokenFlag.USER_PIN_LOCKED:
        raise _locked(settings)
    if not flags & pkcs11.TokenFlag.USER_PIN_INITIALIZED:
        raise HsmError(f"{settings.describe()} has no user PIN yet: initialise it first")
    pin = read_pin(settings)
    try:
        session = token.open(rw=True, user_pin=pin)
    except (errors.PinIncorrect, errors.PinInvalid, errors.PinLenRange):
        raise HsmError(f"wrong PIN for {settings.describe()} (from {_pin_source(settings)})") from None
    except errors.PinLocked:
        raise _locked(settings) from None
    except errors.PinExpired:
        raise HsmError(f"the user PIN of {settings.describe()} has expired: set a new one first") from None
    except (errors.TokenNotPresent, errors.DeviceRemoved):
        raise HsmError(f"{settings.describe()} is not present; connect it and run the command again") from None
    except errors.TokenWriteProtected:
        raise HsmError(f"{settings.describe()} is write-protected") from None
    except errors.PKCS11Error as error:
        raise HsmError(f"{settings.describe()} refused the login ({_reason(error)})") from None
    return Token(settings, token, session)


def _locked(settings: TokenSettings) -> HsmError:
    return HsmError(f"{settings.describe()} is locked (its user PIN was entered wrongly too often): "
                    "its security officer must unlock it and set a new PIN")


def _pin_source(settings: TokenSettings) -> str:
    if os.environ.get(PIN_ENV):
        return PIN_ENV
    return str(settings.pin_file) if settings.pin_file is not None else "the prompt"


def _reason(error: Exception) -> str:
    """A PKCS#11 error as its name (CKR_... as python-pkcs11 calls it): never the arguments, which may hold data."""
    return error.__class__.__name__
