"""Storage speed and memory on one 1 GiB file, against baselines measured in the same run.

Figures (last line, JSON):
- ``encrypt_add_over_floor``: encrypt-then-add throughput (``offchain.crypto``'s
  streaming AES-256-GCM piped into the embedded store, blocks written to disk)
  over the floor 1/(1/aes + 1/sha) of this machine's single-core AES-256-GCM
  and SHA-256 speeds (target >= 0.6).
- ``only_hash_vs_kubo``: our only-hash CIDv0 throughput over Kubo's embedded
  importer's on the same file (target >= 1.0).
- ``peak_rss_mib``: peak resident memory of this process (target <= 256).
Context figures: the baselines in MB/s, our CIDv1 only-hash speed, and this
disk's sequential write speed (one file), which bounds any store's add, and
the speed of a verified ``cat``.

Each ``measure_*`` function is independent; add new figures as new functions.
Run: ./run bench storage [--size-mib N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from typing import TypeVar
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "offchain" / "oracles"))

from kubo_oracle import kubo_only_hash  # noqa: E402

from offchain.crypto import encrypt_stream, new_data_key  # noqa: E402
from offchain.ipfs import CID, EmbeddedStore  # noqa: E402

MB = 1e6
T = TypeVar("T")
PIECE = 4 << 20  # in-memory baseline buffers and test-file writes


def timed(size: int, action: Callable[[], T]) -> tuple[float, T]:
    """MB/s of ``action`` over ``size`` bytes, and what it returned."""
    start = time.perf_counter()
    result = action()
    return size / MB / (time.perf_counter() - start), result


def throughput(size: int, action: Callable[[], object]) -> float:
    """MB/s of ``action`` over ``size`` bytes."""
    return timed(size, action)[0]


def write_test_file(path: Path, size: int) -> None:
    generator = random.Random(2026)
    with path.open("wb") as file:
        for start in range(0, size, PIECE):
            file.write(generator.randbytes(min(PIECE, size - start)))


def repeat(times: int, action: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        for _ in range(times):
            action()

    return run


def measure_sha256(size: int) -> float:
    """Single-core SHA-256 MB/s on an in-memory buffer."""
    buffer = os.urandom(PIECE)
    return throughput(size, repeat(size // PIECE, lambda: hashlib.sha256(buffer).digest()))


def measure_aes_gcm(size: int) -> float:
    """Single-core AES-256-GCM encryption MB/s on an in-memory buffer."""
    cipher, buffer, nonce = AESGCM(AESGCM.generate_key(256)), os.urandom(PIECE), os.urandom(12)
    return throughput(size, repeat(size // PIECE, lambda: cipher.encrypt(nonce, buffer, None)))


def measure_only_hash(path: Path, cid_version: int) -> float:
    """Our only-hash import MB/s."""
    store = EmbeddedStore(path.parent / "only-hash-store")
    with path.open("rb") as stream:
        return throughput(path.stat().st_size, lambda: store.add(stream, cid_version=cid_version, only_hash=True))


def measure_kubo_only_hash(path: Path) -> float:
    """Kubo's importer MB/s (CIDv0 only-hash, timed inside the oracle after a warm-up add)."""
    warm_up = path.with_name("warm-up.bin")
    warm_up.write_bytes(b"warm up the node")
    _, timed = kubo_only_hash([warm_up, path])
    return path.stat().st_size / MB / timed.seconds


def measure_encrypt_add(path: Path, store: EmbeddedStore) -> tuple[float, CID]:
    """Encrypt-then-add MB/s (the ciphertext streams into ``store``, blocks written to disk) and the CID."""

    def encrypt_and_add() -> CID:
        with path.open("rb") as source, store.writer() as writer:
            encrypt_stream(source, writer, new_data_key(), hashlib.sha256(b"bench record").digest(), 1)
        return writer.cid

    return timed(path.stat().st_size, encrypt_and_add)


def measure_cat(store: EmbeddedStore, cid: CID, size: int) -> float:
    """Verified read MB/s of a stored file of ``size`` bytes (every block checked against its hash)."""
    with open(os.devnull, "wb") as sink:
        return throughput(size, lambda: store.cat(cid, sink))


def measure_file_write(path: Path, size: int) -> float:
    """This disk's sequential write MB/s into one new file (a bound on any store's add)."""
    buffer = os.urandom(PIECE)

    def write() -> None:
        with path.open("wb") as file:
            for _ in range(size // PIECE):
                file.write(buffer)
            file.flush()

    try:
        return throughput(size, write)
    finally:
        path.unlink()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="test file size (default 1024)")
    size = parser.parse_args().size_mib << 20

    with tempfile.TemporaryDirectory(prefix="medshare-bench-") as folder:
        path = Path(folder, "record.bin")
        write_test_file(path, size)
        sha = measure_sha256(size)
        aes = measure_aes_gcm(size)
        ours_v0 = measure_only_hash(path, 0)
        ours_v1 = measure_only_hash(path, 1)
        kubo = measure_kubo_only_hash(path)
        disk = measure_file_write(Path(folder, "disk-probe.bin"), size)
        store = EmbeddedStore(Path(folder, "store"))
        encrypt_add, cid = measure_encrypt_add(path, store)
        cat = measure_cat(store, cid, size)

    floor = 1 / (1 / aes + 1 / sha)
    rows = [
        ("SHA-256, one core", sha, "MB/s"),
        ("AES-256-GCM, one core", aes, "MB/s"),
        ("floor 1/(1/aes + 1/sha)", floor, "MB/s"),
        ("encrypt then add (blocks to disk)", encrypt_add, "MB/s"),
        ("sequential write, one file", disk, "MB/s"),
        ("cat, verified, of the encrypted file", cat, "MB/s"),
        ("only-hash CIDv0, ours", ours_v0, "MB/s"),
        ("only-hash CIDv0, Kubo's importer", kubo, "MB/s"),
        ("only-hash CIDv1 raw leaves, ours", ours_v1, "MB/s"),
        ("peak RSS", peak_rss_mib(), "MiB"),
    ]
    width = max(len(name) for name, _, _ in rows)
    print(f"file: {size >> 20} MiB")
    for name, value, unit in rows:
        print(f"{name.ljust(width)}  {value:>9,.1f} {unit}")
    figures = {
        "encrypt_add_over_floor": round(encrypt_add / floor, 3),
        "only_hash_vs_kubo": round(ours_v0 / kubo, 3),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "aes_gcm_mb_s": round(aes, 1),
        "sha256_mb_s": round(sha, 1),
        "encrypt_add_mb_s": round(encrypt_add, 1),
        "disk_write_mb_s": round(disk, 1),
        "cat_mb_s": round(cat, 1),
        "only_hash_v0_mb_s": round(ours_v0, 1),
        "only_hash_v1_mb_s": round(ours_v1, 1),
        "kubo_only_hash_mb_s": round(kubo, 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
