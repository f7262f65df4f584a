"""Chunked, order-fixed coordinate-wise kernels over client state dicts.

Parameters are laid out as segments: each large parameter is one, and the
small ones (BatchNorm vectors, counters) of each dtype are packed end to end,
at most a chunk per pack, so that a ResNet's hundreds of tiny tensors cost a
few calls instead of a few per tensor and client. Each segment is cut into
chunks of ``CHUNK`` elements; a kernel walks every client's slice of one chunk
while its output stays in cache, so client bytes are read once from memory,
the running result is never re-read from it, and nothing of model size is
stacked. Worker threads (one per intra-op thread PyTorch is configured for)
take whole chunks from a shared queue, so a core slowed by another process
simply takes fewer; packs are gathered by the workers too, alongside other
chunks. All work is on zero-copy views of the tensors.

The weighted sum runs PyTorch's ``addcmul_`` (one pass per client: read the
client's slice, update the output in cache) and the robust rules NumPy ufuncs
(about a microsecond to dispatch). Both release the GIL while they run; the
workers keep PyTorch ops serial in their own threads (``run_workers``), since
an OpenMP team per op would oversubscribe the cores and its barriers stall
whenever another process holds one.

Determinism: clients always come in canonical order and are combined in that
fixed order with elementwise operations only (multiply then add, minimum,
maximum, divide). Each is exactly rounded per element (IEEE 754) whatever the
SIMD width, chunking, packing or thread split, so the bits do not depend on
the machine's vector unit or core count. A fused multiply-add is never let
decide a result: whether a library fuses depends on its build and the CPU it
runs on (PyTorch's ``add_(alpha=)`` fuses on AVX2, not on older vector units),
and a fused result differs in the last bit. Reductions to a scalar use
``ordered_sum``, a fixed pairwise tree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
from threadpoolctl import ThreadpoolController
from torch._utils import _flatten_dense_tensors

from fl.aggregation.base import AggregationError, ClientModel, StateDict, Tensor, find_non_finite

# 1 MiB of float32 per chunk: long enough that dispatch (a few microseconds per
# PyTorch op) and the restart of hardware prefetching per slice stay small,
# small enough that a chunk's output and scratch stay in cache between clients.
CHUNK = 1 << 18
# Parameters smaller than this (64 KiB of float32) are packed with the others of their dtype.
PACK_BELOW = 1 << 14


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a kernel computes in: float32 for 16- and 32-bit floats, float64 otherwise."""
    if dtype in (torch.float32, torch.float16, torch.bfloat16):
        return torch.float32
    return torch.float64


def flat_array(tensor: Tensor) -> np.ndarray:
    """A 1-D NumPy view of ``tensor`` (a copy only if it is not contiguous, or bfloat16, which NumPy lacks)."""
    if tensor.requires_grad:
        tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return tensor.numpy().reshape(-1)


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

# The OpenMP runtime PyTorch's intra-op threads run on (see run_workers).
_OPENMP = ThreadpoolController().select(user_api="openmp")


@dataclass
class Segment:
    """A run of values the kernels walk in chunks: one large parameter, or small ones of one dtype end to end."""

    names: list[str]
    shapes: list[torch.Size]
    offsets: list[int]  # where each name starts in the run, then the run's length
    output: Tensor  # flat, in the parameters' dtype
    result: np.ndarray  # where kernels write: ``output``'s memory, or float32 staging for bfloat16
    rows: list[np.ndarray] = field(default_factory=list)  # each client's values, flat, once gathered

    @classmethod
    def allocate(cls, names: list[str], reference: Sequence[Tensor]) -> Segment:
        offsets = [0]
        for tensor in reference:
            offsets.append(offsets[-1] + tensor.numel())
        output = torch.empty(offsets[-1], dtype=reference[0].dtype)
        # NumPy has no bfloat16: gather in float32, convert once at the end.
        result = np.empty(output.numel(), np.float32) if output.dtype == torch.bfloat16 else output.numpy()
        return cls(names, [tensor.shape for tensor in reference], offsets, output, result)

    @property
    def packed(self) -> bool:
        return len(self.names) > 1

    def gather(self, clients: Sequence[ClientModel]) -> None:
        """Each client's values: views of a single parameter, a packed copy of several."""
        if not self.packed:
            self.rows = [flat_array(client.parameters[self.names[0]]) for client in clients]
            return
        # One C++ call per client packs its small tensors: three times faster than
        # concatenating NumPy views, whose creation dominates for tiny tensors.
        self.rows = [
            flat_array(_flatten_dense_tensors([client.parameters[name] for name in self.names])) for client in clients
        ]

    def tensors(self) -> dict[str, Tensor]:
        """The finished parameters, each with its own storage (a packed run is split and copied out)."""
        if self.output.dtype == torch.bfloat16:
            self.output.copy_(torch.from_numpy(self.result))
        if not self.packed:
            return {self.names[0]: self.output.view(self.shapes[0])}
        pieces = self.output.split([end - start for start, end in zip(self.offsets, self.offsets[1:])])
        return {name: piece.view(shape).clone() for name, shape, piece in zip(self.names, self.shapes, pieces)}

    def names_within(self, start: int, stop: int) -> list[tuple[str, int, int]]:
        """The names whose values overlap [start, stop), each with its overlap relative to ``start``."""
        return [
            (name, max(begin, start) - start, min(end, stop) - start)
            for name, begin, end in zip(self.names, self.offsets, self.offsets[1:])
            if begin < stop and end > start
        ]


def plan_segments(reference: Mapping[str, Tensor]) -> list[Segment]:
    """Packs of the small parameters of each dtype, at most a chunk each, then one segment per large parameter."""
    large: list[str] = []
    small: dict[torch.dtype, list[list[str]]] = {}
    sizes: dict[torch.dtype, int] = {}
    for name, tensor in reference.items():
        size = tensor.numel()
        if size >= PACK_BELOW:
            large.append(name)
            continue
        packs = small.setdefault(tensor.dtype, [[]])
        if sizes.get(tensor.dtype, 0) + size > CHUNK:
            packs.append([])
            sizes[tensor.dtype] = 0
        packs[-1].append(name)
        sizes[tensor.dtype] = sizes.get(tensor.dtype, 0) + size
    runs = [names for packs in small.values() for names in packs] + [[name] for name in large]
    return [Segment.allocate(names, [reference[name] for name in names]) for names in runs]


def reduce_chunks(clients: Sequence[ClientModel], reducer: ChunkReducer) -> dict[str, Tensor]:
    """Apply ``reducer`` chunk by chunk to every parameter; returns a new state dict in the clients' dtypes."""
    segments = plan_segments(clients[0].parameters)
    tasks: list[tuple[Segment, int]] = []
    for segment in segments:
        if not segment.packed:  # zero-copy views, cheap enough to make here
            segment.gather(clients)
        tasks.extend((segment, start) for start in range(0, segment.result.size, CHUNK))
    # Chunks whose probe failed, with their computed values for the slow path.
    failures: list[tuple[Segment, int, np.ndarray]] = []
    pending = iter(tasks)  # shared by the workers; next() on a list iterator is atomic under the GIL

    def work() -> None:
        scratch = Scratch()
        for segment, start in pending:
            if not segment.rows:  # a pack (one chunk) is gathered by its worker, alongside other chunks
                segment.gather(clients)
            target = segment.result[start : start + CHUNK]
            rows = [row[start : start + CHUNK] for row in segment.rows]
            if target.dtype in (np.float32, np.float64):
                out = target
            else:  # float16 is computed in float32, integers in float64
                out = scratch.get(np.dtype(np.float32 if target.dtype == np.float16 else np.float64), -1, target.size)
            if not reducer(rows, out, scratch):
                failures.append((segment, start, out.copy()))
            elif out is not target:
                if target.dtype.kind != "f":
                    np.rint(out, out=out)
                np.copyto(target, out, casting="unsafe")

    run_workers(work, min(torch.get_num_threads(), len(tasks)))
    if failures:
        raise_failure(clients, failures)
    outputs: dict[str, Tensor] = {}
    for segment in segments:
        outputs.update(segment.tensors())
    return {name: outputs[name] for name in clients[0].parameters}


def raise_failure(clients: Sequence[ClientModel], failures: list[tuple[Segment, int, np.ndarray]]) -> None:
    """Name the cause of failed probes, first parameter first: a client's NaN or Inf, else the overflowing parameter."""
    order = {name: index for index, name in enumerate(clients[0].parameters)}
    suspects = sorted(
        (
            (order[name], name, values[low:high])
            for segment, start, values in failures
            for name, low, high in segment.names_within(start, start + values.size)
        ),
        key=lambda suspect: suspect[0],
    )
    for _, name, _ in suspects:
        find_non_finite(clients, name)
    # No client brought NaN or Inf: the combination itself left the dtype's range.
    overflowed = next((name for _, name, values in suspects if not np.isfinite(values).all()), suspects[0][1])
    raise AggregationError(f"the aggregate of parameter {overflowed!r} overflows its dtype")


def run_workers(work: Callable[[], None], workers: int) -> None:
    """Run ``work`` in ``workers`` threads (inline when one suffices) and re-raise the first error.

    Inside, PyTorch ops run serially (the workers are the parallelism; an
    OpenMP team per worker would oversubscribe the cores, and its barriers
    stall whenever another process holds one) and NumPy's floating-point
    warnings are silenced (the kernels test finiteness themselves and raise a
    clear error). Both settings are per thread, so callers are unaffected.
    """

    def quiet() -> None:
        # PyTorch sizes a thread's OpenMP team on its first call: limit after it.
        torch.get_num_threads()
        with np.errstate(all="ignore"), _OPENMP.limit(limits=1):
            work()

    if workers <= 1:
        quiet()
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(quiet) for _ in range(workers)]:
            future.result()


def all_finite(*chunks: np.ndarray) -> bool:
    """Fused probe: a chunk's sum is finite unless it holds NaN or Inf, or the sum of
    huge finite values overflowed; only a non-finite sum pays for the exact test.
    ``einsum`` sums in one SIMD pass, twice as fast as ``sum``'s pairwise tree (the
    order does not matter for a finiteness test)."""
    return all(np.isfinite(np.einsum("i->", chunk)) or bool(np.isfinite(chunk).all()) for chunk in chunks)


# ``total.addcmul_(row, one, value=w)`` computes ``total + (w * row) * 1`` per
# element: the product is rounded on its own and multiplying it by exactly one
# changes nothing, so whether a build fuses the last multiply with the add or
# not, the result is the separately rounded ``total + w * row`` of a NumPy
# multiply and add, in one pass over the data instead of two. (``add_(alpha=w)``
# fuses ``w * row`` itself on AVX2.) The tests check the bits against NumPy.
_ONE = {
    np.dtype(np.float32): torch.ones((), dtype=torch.float32),
    np.dtype(np.float64): torch.ones((), dtype=torch.float64),
}


def weighted_sum_reducer(weights: Sequence[float]) -> ChunkReducer:
    """out = sum_i weights[i] * rows[i], accumulated in client order; each term is
    rounded once as a product and once as a sum (never fused)."""
    scalars = {np.dtype(kind): [float(kind(weight)) for weight in weights] for kind in (np.float32, np.float64)}

    def reduce(rows: Sequence[np.ndarray], out: np.ndarray, scratch: Scratch) -> bool:
        factors = scalars[out.dtype]
        if rows[0].dtype == out.dtype:
            total, one = torch.from_numpy(out), _ONE[out.dtype]
            torch.mul(torch.from_numpy(rows[0]), factors[0], out=total)
            for row, factor in zip(rows[1:], factors[1:]):
                total.addcmul_(torch.from_numpy(row), one, value=factor)
        else:  # float16 and integer parameters, computed wider: NumPy casts on the fly
            term = scratch.get(out.dtype, 0, out.size)
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
