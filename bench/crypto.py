"""Streaming encryption speed against raw AES-256-GCM, measured in the same run.

Figures (last line, JSON):
- ``encrypt_over_raw`` / ``decrypt_over_raw``: ``encrypt_stream`` /
  ``decrypt_stream`` throughput (default 1 MiB segments) over raw
  ``AESGCM.encrypt`` on 1 MiB blocks, on one core (target: close to 1.0).
  Decryption runs on at most 256 MiB, as its input is held in memory.
- ``encrypt_over_raw_into``: the same against ``AESGCM.encrypt_into`` into
  one reused buffer, the ceiling of any streaming loop.
Each figure is the best of three runs, timed in CPU time of this process.
- the throughputs themselves in MB/s, ``encrypt_stream`` at other segment
  sizes, and ``peak_rss_mib`` of this process.
- ``wrap_ms_x25519``, ``unwrap_ms_x25519``, ``wrap_ms_pq``, ``unwrap_ms_pq``:
  wrapping one data key for one reader (HPKE, RFC 9180) and unwrapping it, in
  the X25519 and the hybrid MLKEM768-X25519 suite: the median of
  ``KEY_WRAP_RUNS`` calls, in CPU time (target: hybrid unwrap under 2 ms);
  ``unwrap_pq_over_x25519`` compares the two in the same run.
- ``hsm_sign_ms``: one transaction (EIP-1559) signed by an ``hsm:`` account
  through a throwaway SoftHSM2 token (CKM_ECDSA in the token, low-s and
  recovery id outside); ``hsm_unwrap_ms``: one data key unwrapped by a
  keystore sealed by the token's AES key (the keystore's keys unsealed by
  AES-GCM in the token, then HPKE), as every use does. Medians of
  ``HSM_RUNS`` calls in wall-clock time (a real device works outside this
  process); target <= 20 ms each. Both are null, with the reason on stderr,
  where SoftHSM2 is not installed.

The streams read from and write to memory (a source that replays one random
buffer, a sink that discards), so the figures are the crypto path alone.
Run: ./run bench crypto [--size-mib N]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from measure import best_throughput, peak_rss_mib, print_figures, print_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from offchain.crypto import (  # noqa: E402
    DEFAULT_SEGMENT_SIZE,
    KeySuite,
    RecipientKey,
    ciphertext_length,
    decrypt_stream,
    encrypt_stream,
    new_data_key,
    unwrap_data_key,
    wrap_data_key,
)

BLOCK = 1 << 20
REPEATS = 3
DECRYPT_CAP = 256 << 20  # the ciphertext to decrypt is held in memory
RECORD_ID = bytes(32)
KEY_WRAP_RUNS = 500
UNWRAP_PQ_TARGET_MS = 2.0
HSM_RUNS = 200
HSM_TARGET_MS = 20.0


class ReplaySource(io.RawIOBase):
    """``size`` bytes made of one random buffer repeated; reads copy, never allocate."""

    def __init__(self, pattern: bytes, size: int) -> None:
        self.pattern, self.remaining, self.offset = memoryview(pattern), size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self.remaining, len(self.pattern) - self.offset)
        buffer[:count] = self.pattern[self.offset : self.offset + count]
        self.offset = (self.offset + count) % len(self.pattern)
        self.remaining -= count
        return count


class Sink(io.RawIOBase):
    """Discards what it is given."""

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        return len(data)


class Recorder(io.RawIOBase):
    """Writes into a preallocated buffer: the decryption input, without regrowth copies."""

    def __init__(self, size: int) -> None:
        self.data, self.offset = bytearray(size), 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.data[self.offset : self.offset + len(data)] = data
        self.offset += len(data)
        return len(data)


def throughput(size: int, action: Callable[[], object]) -> float:
    """Best MB/s of ``action`` over ``size`` bytes in REPEATS runs, in CPU time of this process.

    Every action is single-threaded and CPU-bound, so CPU time is its cost,
    unaffected by other processes waiting for the same cores.
    """
    return best_throughput(size, action, repeats=REPEATS, clock=time.process_time)


def measure_raw_aes_gcm(size: int, pattern: bytes) -> float:
    """``AESGCM.encrypt`` on 1 MiB blocks, a fresh nonce each, as a library user would call it."""
    cipher = AESGCM(AESGCM.generate_key(256))
    block = pattern[:BLOCK]

    def encrypt_blocks() -> None:
        for _ in range(size // BLOCK):
            cipher.encrypt(os.urandom(12), block, None)  # each result dropped at once, as a stream would

    return throughput(size, encrypt_blocks)


def measure_raw_aes_gcm_into(size: int, pattern: bytes) -> float:
    """``AESGCM.encrypt_into`` one reused 1 MiB output buffer: the ceiling of any streaming loop."""
    cipher = AESGCM(AESGCM.generate_key(256))
    block, out = pattern[:BLOCK], bytearray(BLOCK + 16)

    def encrypt_blocks() -> None:
        for _ in range(size // BLOCK):
            cipher.encrypt_into(os.urandom(12), block, None, out)

    return throughput(size, encrypt_blocks)


def measure_encrypt(size: int, pattern: bytes, segment_size: int) -> float:
    key = new_data_key()
    return throughput(
        size,
        lambda: encrypt_stream(ReplaySource(pattern, size), Sink(), key, RECORD_ID, 1, segment_size=segment_size),
    )


def measure_decrypt(size: int, pattern: bytes) -> float:
    """``decrypt_stream`` on the encryption of ``size`` bytes, held in memory."""
    key = new_data_key()
    sealed = Recorder(ciphertext_length(size))
    encrypt_stream(ReplaySource(pattern, size), sealed, key, RECORD_ID, 1)
    ciphertext = sealed.data
    return throughput(
        size, lambda: decrypt_stream(ReplaySource(ciphertext, len(ciphertext)), Sink(), key, RECORD_ID, 1)
    )


def median_ms(action: Callable[[], object], runs: int = KEY_WRAP_RUNS,
              clock: Callable[[], float] = time.process_time) -> float:
    """The median time of one call of ``action`` by ``clock`` (default: CPU time), in milliseconds."""
    times = []
    for _ in range(runs):
        start = clock()
        action()
        times.append(clock() - start)
    return statistics.median(times) * 1000


def measure_key_wrap(suite: KeySuite) -> tuple[float, float]:
    """Median ms to wrap one data key for a reader of ``suite``, and to unwrap it (the reader's key loaded)."""
    reader, data_key = RecipientKey.generate(suite), new_data_key()
    wrapped = wrap_data_key(data_key, reader.public_key, 1, RECORD_ID, 1, suite)
    wrap = median_ms(lambda: wrap_data_key(data_key, reader.public_key, 1, RECORD_ID, 1, suite))
    unwrap = median_ms(lambda: unwrap_data_key(wrapped, reader, RECORD_ID, 1))
    return wrap, unwrap


def measure_hsm() -> tuple[float, float] | None:
    """Median wall-clock ms of a transaction signature and of a data-key unwrap through a throwaway
    SoftHSM2 token; None where SoftHSM2 is not installed."""
    import tempfile

    from offchain.crypto import Keystore
    from offchain.hsm import TokenSealer, close_tokens, create_signing_key, open_token
    from offchain.hsm.softhsm import NOT_INSTALLED, SoftHsm

    if NOT_INSTALLED:
        print(f"hsm figures skipped: {NOT_INSTALLED}", file=sys.stderr)
        return None
    from ape_ethereum.transactions import DynamicFeeTransaction
    from eth_account import Account

    from offchain.hsm.account import HsmAccount

    with tempfile.TemporaryDirectory() as folder:
        hsm = SoftHsm(Path(folder) / "softhsm")
        hsm.init_token("medshare-bench")
        os.environ.update(hsm.env("medshare-bench"))  # before the module is loaded: it reads them once
        token = open_token()
        account = HsmAccount(label="bench", key=create_signing_key(token, "bench"))
        transaction = DynamicFeeTransaction(chain_id=80002, nonce=0, receiver=account.address, value=1,
                                            gas_limit=21_000, max_fee=10**10, max_priority_fee=10**9)
        sign = median_ms(lambda: account.sign_transaction(transaction), HSM_RUNS, clock=time.perf_counter)
        if Account.recover_transaction(transaction.serialize_transaction()) != account.address:
            raise SystemExit("the token's transaction signature does not recover to its account: not timing that")
        keystore = Keystore.create(Path(folder) / "keystore.json", TokenSealer(token, create=True))
        wrapped = wrap_data_key(new_data_key(), keystore.public_key(), 1, RECORD_ID, 1, keystore.suite())
        unwrap = median_ms(lambda: keystore.unwrap_data_key(wrapped, RECORD_ID, 1), HSM_RUNS,
                           clock=time.perf_counter)
        close_tokens()
    return sign, unwrap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="stream size (default 1024)")
    size = parser.parse_args().size_mib << 20
    pattern = os.urandom(4 * BLOCK)

    raw = measure_raw_aes_gcm(size, pattern)
    raw_into = measure_raw_aes_gcm_into(size, pattern)
    encrypt = measure_encrypt(size, pattern, DEFAULT_SEGMENT_SIZE)
    by_segment = {segment: measure_encrypt(size, pattern, segment) for segment in (64 << 10, 256 << 10, 4 << 20)}
    rss_before_decrypt = peak_rss_mib()  # the decryption input below is held in memory on purpose
    decrypt_size = min(size, DECRYPT_CAP)
    decrypt = measure_decrypt(decrypt_size, pattern)
    wrap_x, unwrap_x = measure_key_wrap(KeySuite.X25519)
    wrap_pq, unwrap_pq = measure_key_wrap(KeySuite.MLKEM768_X25519)
    hsm = measure_hsm()

    rows = [
        ("AESGCM.encrypt, 1 MiB blocks", raw, "MB/s"),
        ("AESGCM.encrypt_into, 1 MiB blocks", raw_into, "MB/s"),
        (f"encrypt_stream, {DEFAULT_SEGMENT_SIZE >> 10} KiB segments", encrypt, "MB/s"),
        *((f"encrypt_stream, {segment >> 10} KiB segments", speed, "MB/s") for segment, speed in by_segment.items()),
        (f"decrypt_stream, {DEFAULT_SEGMENT_SIZE >> 10} KiB segments ({decrypt_size >> 20} MiB)", decrypt, "MB/s"),
        ("peak RSS while encrypting", rss_before_decrypt, "MiB"),
    ]
    print_table(f"stream: {size >> 20} MiB, one core", rows)
    print_table(f"key wrap (HPKE), median of {KEY_WRAP_RUNS}, CPU time", [
        ("wrap, X25519", wrap_x * 1000, "us"),
        ("unwrap, X25519", unwrap_x * 1000, "us"),
        ("wrap, MLKEM768-X25519", wrap_pq * 1000, "us"),
        (f"unwrap, MLKEM768-X25519 (target < {UNWRAP_PQ_TARGET_MS:,.0f} ms)", unwrap_pq * 1000, "us"),
    ])
    if hsm is not None:
        print_table(f"HSM (SoftHSM2), median of {HSM_RUNS}, wall clock", [
            (f"transaction signature (target <= {HSM_TARGET_MS:,.0f} ms)", hsm[0], "ms"),
            (f"data-key unwrap, token-sealed keystore (target <= {HSM_TARGET_MS:,.0f} ms)", hsm[1], "ms"),
        ])
    print_figures({
        "encrypt_over_raw": round(encrypt / raw, 3),
        "decrypt_over_raw": round(decrypt / raw, 3),
        "encrypt_over_raw_into": round(encrypt / raw_into, 3),
        "aes_gcm_1mib_mb_s": round(raw, 1),
        "aes_gcm_into_1mib_mb_s": round(raw_into, 1),
        "encrypt_stream_mb_s": round(encrypt, 1),
        "decrypt_stream_mb_s": round(decrypt, 1),
        **{f"encrypt_stream_{segment >> 10}k_mb_s": round(speed, 1) for segment, speed in by_segment.items()},
        "peak_rss_mib": round(rss_before_decrypt, 1),
        "wrap_ms_x25519": round(wrap_x, 3),
        "unwrap_ms_x25519": round(unwrap_x, 3),
        "wrap_ms_pq": round(wrap_pq, 3),
        "unwrap_ms_pq": round(unwrap_pq, 3),
        "unwrap_pq_over_x25519": round(unwrap_pq / unwrap_x, 2),
        "unwrap_pq_under_target": unwrap_pq < UNWRAP_PQ_TARGET_MS,
        "hsm_sign_ms": round(hsm[0], 3) if hsm else None,
        "hsm_unwrap_ms": round(hsm[1], 3) if hsm else None,
        "hsm_under_target": all(figure <= HSM_TARGET_MS for figure in hsm) if hsm else None,
    })


if __name__ == "__main__":
    main()
