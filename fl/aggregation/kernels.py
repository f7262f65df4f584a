"""Chunked, order-fixed coordinate-wise kernels over client state dicts.

Each parameter is cut into chunks of ``CHUNK`` elements; a kernel walks every
client's slice of one chunk while its output and scratch stay in cache, so
client bytes are read once from memory and nothing of model size is stacked.
Worker threads (one per intra-op thread PyTorch is configured for) take whole
chunks.

The arithmetic runs on NumPy views of the tensors (zero-copy): a ufunc on a
chunk costs about a microsecond to dispatch, a fraction of a PyTorch op's, it
never starts an OpenMP team (whose barriers stall when another process holds
a core), and it releases the GIL while it runs.

Determinism: clients always come in canonical order and are combined in that
fixed order with elementwise operations only (multiply then add, minimum,
maximum, divide). Each is exactly rounded per element (IEEE 754) whatever the
SIMD width, chunking or thread split, so the bits do not depend on the
machine's vector unit or core count. Fused multiply-add is avoided on purpose:
kernels may fuse in a vector body and not in its scalar tail. Reductions to a
scalar use ``ordered_sum``, a fixed pairwise tree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from fl.aggregation.base import AggregationError, ClientModel, StateDict, Tensor, find_non_finite

# 1 MiB of float32 per chunk: large enough that dispatch and the restart of
# hardware prefetching per slice stay small, small enough to stay in cache.
CHUNK = 1 << 18


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a kernel computes in: float32 for 16- and 32-bit floats, float64 otherwise."""
    if dtype in (torch.float32, torch.float16, torch.bfloat16):
        return torch.float32
    return torch.float64


def flat_array(tensor: Tensor) -> np.ndarray:
    """A 1-D NumPy view of ``tensor`` (a copy only if it is not contiguous, or bfloat16, which NumPy lacks)."""
    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return tensor.reshape(-1).numpy()


class Scratch:
    """One worker's reusable chunk-sized buffers, so the chunk loop allocates nothing."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[np.dtype, int], np.ndarray] = {}

    def get(self, dtype: np.dtype, slot: int, length: int) -> np.ndarray:
        key = (dtype, slot)
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = np.empty(CHUNK, dtype=dtype)
        return buffer[:length]


# A chunk reducer gets the clients' slices (read only), a writable output slice
# in the compute dtype and scratch; it returns False when its fused finiteness
# probe failed, so the caller can name the client on the slow path.
ChunkReducer = Callable[[Sequence[np.ndarray], np.ndarray, Scratch], bool]


def reduce_chunks(clients: Sequence[ClientModel], reducer: ChunkReducer) -> dict[str, Tensor]:
    """Apply ``reducer`` chunk by chunk to every parameter; returns a new state dict in the clients' dtypes."""
    outputs: dict[str, Tensor] = {}
    staged: dict[str, np.ndarray] = {}
    tasks: list[tuple[str, np.ndarray, list[np.ndarray]]] = []
    for name, reference in clients[0].parameters.items():
        output = outputs[name] = torch.empty(reference.shape, dtype=reference.dtype)
        if output.dtype == torch.bfloat16:  # NumPy has none: gather in float32, convert once at the end
            result = staged[name] = np.empty(output.numel(), np.float32)
        else:
            result = flat_array(output)
        flats = [flat_array(client.parameters[name]) for client in clients]
        tasks.extend(
            (name, result[start : start + CHUNK], [flat[start : start + CHUNK] for flat in flats])
            for start in range(0, result.size, CHUNK)
        )
    failed: set[str] = set()
    pending = iter(tasks)  # shared by the workers; next() on a list iterator is atomic under the GIL

    def work() -> None:
        scratch = Scratch()
        for name, target, rows in pending:
            if target.dtype in (np.float32, np.float64):
                out = target
            else:  # float16 is computed in float32, integers in float64
                out = scratch.get(np.dtype(np.float32 if target.dtype == np.float16 else np.float64), -1, target.size)
            if not reducer(rows, out, scratch):
                failed.add(name)
            elif out is not target:
                if target.dtype.kind != "f":
                    np.rint(out, out=out)
                np.copyto(target, out, casting="unsafe")

    run_workers(work, min(torch.get_num_threads(), len(tasks)))
    for name, output in outputs.items():
        if name in failed:
            find_non_finite(clients, name)
            raise AggregationError(f"the aggregate of parameter {name!r} overflows its dtype")
        if name in staged:
            output.copy_(torch.from_numpy(staged[name]).reshape(output.shape))
    return outputs


def run_workers(work: Callable[[], None], workers: int) -> None:
    """Run ``work`` in ``workers`` threads (inline when one suffices) and re-raise the first error.

    NumPy's floating-point warnings are silenced inside (its error state is
    per thread): the kernels test finiteness themselves and raise a clear error.
    """

    def quiet() -> None:
        with np.errstate(all="ignore"):
            work()

    if workers <= 1:
        quiet()
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(quiet) for _ in range(workers)]:
            future.result()


def all_finite(*chunks: np.ndarray) -> bool:
    """Fused probe: a chunk's sum is finite unless it holds NaN or Inf, or the sum of
    huge finite values overflowed; only a non-finite sum pays for the exact test."""
    return all(np.isfinite(chunk.sum()) or bool(np.isfinite(chunk).all()) for chunk in chunks)


def weighted_sum_reducer(weights: Sequence[float]) -> ChunkReducer:
    """out = sum_i weights[i] * rows[i], accumulated in client order."""
    scalars = {np.dtype(kind): [kind(weight) for weight in weights] for kind in (np.float32, np.float64)}

    def reduce(rows: Sequence[np.ndarray], out: np.ndarray, scratch: Scratch) -> bool:
        term = scratch.get(out.dtype, 0, out.size)
        factors = scalars[out.dtype]
        np.multiply(rows[0], factors[0], out=out)
        for row, factor in zip(rows[1:], factors[1:]):
            np.multiply(row, factor, out=term)
            np.add(out, term, out=out)
        return all_finite(out)

    return reduce


def trimmed_mean_reducer(trim: int) -> ChunkReducer:
    """Mean of each coordinate's values after dropping the ``trim`` smallest and ``trim`` largest.

    Streams the clients once, keeping the ``trim`` smallest values seen so far
    (``low``, ascending) and the ``trim`` largest (``high``, descending) by
    compare-exchange chains. Each value pushed out of both chains lies between
    them for good, so it is added to the sum of kept values; outliers never
    enter the sum (subtracting them from a total would cancel catastrophically).
    """

    def reduce(rows: Sequence[np.ndarray], out: np.ndarray, scratch: Scratch) -> bool:
        length, dtype = out.size, out.dtype
        # Slots: 0 carry, 1 spare, 3.. the chains' buffers.
        pool = [scratch.get(dtype, 3 + slot, length) for slot in range(2 * trim)]
        low: list[np.ndarray] = []
        high: list[np.ndarray] = []
        carry, spare = scratch.get(dtype, 0, length), scratch.get(dtype, 1, length)
        out.fill(0)

        def push(chain: list[np.ndarray], value: np.ndarray, keep: np.ufunc, release: np.ufunc) -> np.ndarray | None:
            """Insert ``value`` into ``chain``; returns what drops out, None while the chain is filling."""
            nonlocal spare
            for index, kept in enumerate(chain):
                keep(kept, value, out=spare)
                release(kept, value, out=carry)
                chain[index], spare, value = spare, kept, carry
            if len(chain) < trim:
                buffer = pool.pop()
                np.copyto(buffer, value)
                chain.append(buffer)
                return None
            return value

        for row in rows:
            # The client's slice is only read: the first exchange writes to carry.
            dropped = push(low, row, np.minimum, np.maximum)
            if dropped is not None:
                middle = push(high, dropped, np.maximum, np.minimum)
                if middle is not None:
                    np.add(out, middle, out=out)
        np.divide(out, len(rows) - 2 * trim, out=out)
        # A NaN spreads through both chains into the sum; -Inf ends up in low[0], +Inf in high[0].
        return all_finite(out, *low[:1], *high[:1])

    return reduce


def median_reducer(count: int) -> ChunkReducer:
    """Coordinate-wise median of ``count`` clients (the mean of the two middle values when even)."""
    return trimmed_mean_reducer((count - 1) // 2)


def ordered_sum(values: np.ndarray) -> float:
    """Sum of a 1-D float64 array by a fixed pairwise tree of elementwise adds (no library reduction order)."""
    work = values.copy()
    length = work.size
    while length > 1:
        half = length // 2
        np.add(work[:half], work[half : 2 * half], out=work[:half])
        if length % 2:
            work[half] = work[length - 1]
        length = half + length % 2
    return float(work[0]) if length else 0.0


def pairwise_squared_distances(states: Sequence[StateDict]) -> list[list[float]]:
    """Squared L2 distances between every pair of state dicts, in float64.

    Chunks are spread over worker threads, but each chunk's partial sums are
    combined in chunk order, so the result does not depend on scheduling.
    """
    count = len(states)
    tasks = []
    for name in states[0]:
        flats = [flat_array(state[name]) for state in states]
        tasks.extend([flat[start : start + CHUNK] for flat in flats] for start in range(0, flats[0].size, CHUNK))
    partials: list[list[float]] = [[] for _ in tasks]
    pending = iter(enumerate(tasks))

    def work() -> None:
        for index, pieces in pending:
            rows = [piece.astype(np.float64) for piece in pieces]
            for i in range(count):
                for j in range(i + 1, count):
                    difference = rows[i] - rows[j]
                    partials[index].append(ordered_sum(np.multiply(difference, difference, out=difference)))

    run_workers(work, min(torch.get_num_threads(), len(tasks)))
    distances = [[0.0] * count for _ in range(count)]
    for chunk_partials in partials:
        pair = iter(chunk_partials)
        for i in range(count):
            for j in range(i + 1, count):
                value = next(pair)
                distances[i][j] += value
                distances[j][i] += value
    return distances
