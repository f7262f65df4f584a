"""SoftHSM2 for the tests: token folders, their configuration, tokens made, removed and locked.

The session's token (conftest.py) lives under a temporary ``SOFTHSM2_CONF`` made
before the PKCS#11 module is first loaded (the module reads it once a
process); its PINs are random.
"""

from __future__ import annotations

import os
import secrets
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from offchain.hsm.token import MODULE_ENV, PIN_ENV, PIN_FILE_ENV, SLOT_ENV, SOFTHSM2_MODULES, TOKEN_ENV

SOFTHSM2_UTIL = shutil.which("softhsm2-util")
SOFTHSM2_MODULE = next((module for module in SOFTHSM2_MODULES if Path(module).exists()), None)
NOT_INSTALLED = None if SOFTHSM2_UTIL and SOFTHSM2_MODULE else (
    "SoftHSM2 is not installed (Debian: apt-get install softhsm2; `./run test` installs it where apt is "
    "available): the HSM tests need a PKCS#11 token")

TOKEN_LABEL = "medshare-test"
REMOVABLE_LABEL = "medshare-removable"  # a token a test deletes, as if unplugged
HSM_ENV = (MODULE_ENV, TOKEN_ENV, SLOT_ENV, PIN_ENV, PIN_FILE_ENV, "SOFTHSM2_CONF")
CKF_USER_PIN_LOCKED = 0x00040000
_SOFTHSM_TOKEN_FLAGS = struct.pack(">QQ", 0x80000000 + 0x534B, 2)  # CKA_OS_TOKENFLAGS, an unsigned long


@dataclass
class SoftHsm:
    """A SoftHSM2 token folder and its configuration file, with the PINs its tokens were given."""

    folder: Path
    pin: str = field(default_factory=lambda: secrets.token_hex(8))
    so_pin: str = field(default_factory=lambda: secrets.token_hex(8))
    mechanisms: str = "ALL"

    def __post_init__(self) -> None:
        (self.folder / "tokens").mkdir(parents=True)
        self.conf.write_text(f"directories.tokendir = {self.folder / 'tokens'}\nobjectstore.backend = file\n"
                             f"log.level = ERROR\nslots.mechanisms = {self.mechanisms}\n")

    @property
    def conf(self) -> Path:
        return self.folder / "softhsm2.conf"

    def init_token(self, label: str) -> None:
        subprocess.run([SOFTHSM2_UTIL, "--init-token", "--free", "--label", label, "--so-pin", self.so_pin,
                        "--pin", self.pin], env={**os.environ, "SOFTHSM2_CONF": str(self.conf)},
                       check=True, capture_output=True)

    def delete_token(self, label: str) -> None:
        subprocess.run([SOFTHSM2_UTIL, "--delete-token", "--token", label],
                       env={**os.environ, "SOFTHSM2_CONF": str(self.conf)}, check=True, capture_output=True)

    def lock_user_pin(self) -> None:
        """Set the user-PIN-locked flag on every token here, as a device does after too many wrong PINs.

        SoftHSM2 counts no wrong PINs itself; the flag lives in each token's
        ``token.object`` file, an attribute of type ``CKA_OS_TOKENFLAGS``.
        """
        for path in (self.folder / "tokens").glob("*/token.object"):
            data = bytearray(path.read_bytes())
            at = data.index(_SOFTHSM_TOKEN_FLAGS) + len(_SOFTHSM_TOKEN_FLAGS)
            (flags,) = struct.unpack(">Q", data[at:at + 8])
            data[at:at + 8] = struct.pack(">Q", flags | CKF_USER_PIN_LOCKED)
            path.write_bytes(data)

    def env(self, label: str = TOKEN_LABEL, **changes: str | None) -> dict[str, str]:
        """The environment of a process using this token (changes: None removes a variable)."""
        environ = {name: value for name, value in os.environ.items() if name not in HSM_ENV}
        environ.update({"SOFTHSM2_CONF": str(self.conf), MODULE_ENV: SOFTHSM2_MODULE, TOKEN_ENV: label,
                        PIN_ENV: self.pin})
        for name, value in changes.items():
            if value is None:
                environ.pop(name, None)
            else:
                environ[name] = value
        return environ


def medshare_process(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``medshare ARGS`` in a process of its own (a PKCS#11 module reads its configuration once a process)."""
    return subprocess.run([str(Path(sys.executable).parent / "medshare"), *args], env=env, capture_output=True,
                          text=True, timeout=300)
