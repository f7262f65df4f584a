"""Throwaway SoftHSM2 tokens, for the tests and the benchmark: a token folder, its configuration, its PINs.

SoftHSM2 reads ``SOFTHSM2_CONF`` once a process, when the module is loaded:
a process that uses a throwaway token gets :meth:`SoftHsm.env` before it
loads the module. PINs are random and never shown.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from offchain.hsm.token import MODULE_ENV, PIN_ENV, PIN_FILE_ENV, SLOT_ENV, SOFTHSM2_MODULES, TOKEN_ENV

SOFTHSM2_UTIL = shutil.which("softhsm2-util")
SOFTHSM2_MODULE = next((module for module in SOFTHSM2_MODULES if Path(module).exists()), None)
NOT_INSTALLED = None if SOFTHSM2_UTIL and SOFTHSM2_MODULE else (
    "SoftHSM2 is not installed (Debian: apt-get install softhsm2; `./run test` installs it where apt is "
    "available)")
HSM_ENV = (MODULE_ENV, TOKEN_ENV, SLOT_ENV, PIN_ENV, PIN_FILE_ENV, "SOFTHSM2_CONF")
"""Every variable that chooses a token: a throwaway token's environment sets or clears each."""


@dataclass
class SoftHsm:
    """A SoftHSM2 token folder under ``folder`` and its configuration file; every token made here gets
    the same random PINs. ``mechanisms`` is SoftHSM2's ``slots.mechanisms`` setting."""

    folder: Path
    pin: str = field(default_factory=lambda: secrets.token_hex(8), repr=False)
    so_pin: str = field(default_factory=lambda: secrets.token_hex(8), repr=False)
    mechanisms: str = "ALL"

    def __post_init__(self) -> None:
        if NOT_INSTALLED:
            raise RuntimeError(NOT_INSTALLED)
        (self.folder / "tokens").mkdir(parents=True)
        self.conf.write_text(f"directories.tokendir = {self.folder / 'tokens'}\nobjectstore.backend = file\n"
                             f"log.level = ERROR\nslots.mechanisms = {self.mechanisms}\n")

    @property
    def conf(self) -> Path:
        return self.folder / "softhsm2.conf"

    def init_token(self, label: str) -> None:
        self._util("--init-token", "--free", "--label", label, "--so-pin", self.so_pin, "--pin", self.pin)

    def delete_token(self, label: str) -> None:
        """Delete the token, as if it were unplugged: a process using it finds it gone."""
        self._util("--delete-token", "--token", label)

    def env(self, label: str, **changes: str | None) -> dict[str, str]:
        """The environment of a process using token ``label`` here (changes: None removes a variable)."""
        environ = {name: value for name, value in os.environ.items() if name not in HSM_ENV}
        environ.update({"SOFTHSM2_CONF": str(self.conf), MODULE_ENV: str(SOFTHSM2_MODULE), TOKEN_ENV: label,
                        PIN_ENV: self.pin})
        for name, value in changes.items():
            if value is None:
                environ.pop(name, None)
            else:
                environ[name] = value
        return environ

    def _util(self, *args: str) -> None:
        subprocess.run([str(SOFTHSM2_UTIL), *args], env={**os.environ, "SOFTHSM2_CONF": str(self.conf)},
                       check=True, capture_output=True)
