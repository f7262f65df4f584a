"""What the HSM tests add to :mod:`offchain.hsm.softhsm`: the session's token labels, a locked token, and
``medshare`` in a process of its own."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

from offchain.hsm.softhsm import HSM_ENV, NOT_INSTALLED, SoftHsm  # noqa: F401 - used by the tests

TOKEN_LABEL = "medshare-test"
REMOVABLE_LABEL = "medshare-removable"  # a token a test deletes, as if unplugged
CKF_USER_PIN_LOCKED = 0x00040000
_SOFTHSM_TOKEN_FLAGS = struct.pack(">QQ", 0x80000000 + 0x534B, 2)  # CKA_OS_TOKENFLAGS, an unsigned long


def lock_user_pin(hsm: SoftHsm) -> None:
    """Set the user-PIN-locked flag on every token of ``hsm``, as a device does after too many wrong PINs.

    SoftHSM2 counts no wrong PINs itself; the flag lives in each token's
    ``token.object`` file, an attribute of type ``CKA_OS_TOKENFLAGS``.
    """
    for path in (hsm.folder / "tokens").glob("*/token.object"):
        data = bytearray(path.read_bytes())
        at = data.index(_SOFTHSM_TOKEN_FLAGS) + len(_SOFTHSM_TOKEN_FLAGS)
        (flags,) = struct.unpack(">Q", data[at:at + 8])
        data[at:at + 8] = struct.pack(">Q", flags | CKF_USER_PIN_LOCKED)
        path.write_bytes(data)


def medshare_process(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``medshare ARGS`` in a process of its own (a PKCS#11 module reads its configuration once a process)."""
    return subprocess.run([str(Path(sys.executable).parent / "medshare"), *args], env=env, capture_output=True,
                          text=True, timeout=300)
