"""Encrypting and decrypting a 2 GiB file stays under 64 MiB of resident memory.

The encryptor reads a sparse 2 GiB file and pipes the ciphertext straight into
the decryptor, so nothing large touches the disk; each process reports its own
peak resident set size. That peak is VmHWM from /proc, not ``ru_maxrss``: Linux
carries ``ru_maxrss`` across fork and exec, so a child of this (large) pytest
process would report the parent's size.
"""

import json
import subprocess
import sys
from pathlib import Path

from offchain.crypto import ciphertext_length, new_data_key

SIZE = 2 << 30
LIMIT_MIB = 64
RECORD_ID = bytes(range(32))

PEAK = """
def peak_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
"""

ENCRYPTOR = PEAK + """
import json, sys
from offchain.crypto import encrypt_stream
with open(sys.argv[1], "rb") as source:
    written = encrypt_stream(source, sys.stdout.buffer, bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3]), 1)
sys.stdout.buffer.flush()
print(json.dumps({"bytes": written, "peak_kib": peak_kib()}), file=sys.stderr)
"""

DECRYPTOR = PEAK + """
import json, sys
from offchain.crypto import decrypt_stream
with open("/dev/null", "wb") as sink:
    written = decrypt_stream(sys.stdin.buffer, sink, bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2]), 1)
print(json.dumps({"bytes": written, "peak_kib": peak_kib()}))
"""


def test_two_gib_round_trip_stays_under_64_mib(tmp_path: Path):
    source = tmp_path / "zeros.bin"
    with open(source, "wb") as file:
        file.truncate(SIZE)  # sparse: no disk blocks, reads as zeros
    key, record = new_data_key().hex(), RECORD_ID.hex()
    encryptor = subprocess.Popen(
        [sys.executable, "-c", ENCRYPTOR, str(source), key, record], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    decryptor = subprocess.Popen(
        [sys.executable, "-c", DECRYPTOR, key, record],
        stdin=encryptor.stdout,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    encryptor.stdout.close()  # the decryptor holds the only read end now
    decrypted_out, decrypted_err = decryptor.communicate(timeout=300)
    encrypted_err = encryptor.communicate(timeout=60)[1]
    assert encryptor.returncode == 0, encrypted_err.decode()
    assert decryptor.returncode == 0, decrypted_err.decode()

    encrypted = json.loads(encrypted_err.splitlines()[-1])
    decrypted = json.loads(decrypted_out)
    assert encrypted["bytes"] == ciphertext_length(SIZE)
    assert decrypted["bytes"] == SIZE
    for role, report in (("encrypt", encrypted), ("decrypt", decrypted)):
        peak_mib = report["peak_kib"] / 1024
        assert peak_mib < LIMIT_MIB, f"{role} of 2 GiB peaked at {peak_mib:.1f} MiB resident"
