"""What the benchmarks share: throughput timing, peak memory, and the table and JSON they print.

Every bench prints a human-readable table and, as its last line, one JSON
object of its figures (see README.md).
"""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

MB = 1e6
T = TypeVar("T")
Row = tuple[str, float, str]  # name, value, unit


def timed(size: int, action: Callable[[], T], *, clock: Callable[[], float] = time.perf_counter) -> tuple[float, T]:
    """MB/s of one run of ``action`` over ``size`` bytes, by ``clock``, and what it returned."""
    start = clock()
    result = action()
    return size / MB / (clock() - start), result


def best_throughput(
    size: int, action: Callable[[], object], *, repeats: int = 1, clock: Callable[[], float] = time.perf_counter
) -> float:
    """The best MB/s of ``action`` over ``size`` bytes in ``repeats`` runs, by ``clock``.

    ``time.process_time`` as the clock gives the CPU cost of a single-threaded
    action, which other processes waiting for the same cores distort less.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    return max(timed(size, action, clock=clock)[0] for _ in range(repeats))


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def print_table(title: str, rows: Sequence[Row]) -> None:
    """``title``, then one aligned line a row: name, value (one decimal, thousands separated), unit."""
    width = max(len(name) for name, _, _ in rows)
    print(title)
    for name, value, unit in rows:
        print(f"{name.ljust(width)}  {value:>9,.1f} {unit}")


def print_figures(figures: dict[str, object]) -> None:
    """The JSON line that ends every bench's output."""
    print(json.dumps(figures))
