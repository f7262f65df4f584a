"""Aggregation speed and memory on ResNet-50-sized client models.

10 clients, each a ResNet-50 state dict (25.6 M float32 parameters plus its
BatchNorm buffers, built from the real layer shapes). In the same run:

- read_floor: one read pass over every client's bytes, the fastest of three
  ways to sum each tensor once (PyTorch with its intra-op threads, NumPy whole
  tensors, NumPy in the kernels' chunks and worker threads); no rule can beat
  it by much, so the others are given over it.
- fedavg, trimmed_mean (trim_ratio 0.1: one client trimmed per side), median.
- numpy_flower: the weighted average as Flower's ``aggregate`` computes it:
  ``[[layer * n for layer in weights] ...]`` then ``reduce(np.add, ...) / total``.

Times are the median of 7 repetitions, wall clock and process CPU time (on a
shared machine, other processes inflate wall clock; CPU time shows the work
done; the header gives the cores other processes kept busy meanwhile). The runs are interleaved round by
round after one untimed round that warms caches, allocator and thread pools,
so a burst of load from other processes hits them alike and one slow round
cannot decide a figure.

Peak extra memory: the kernel's peak resident set size is reset
(``/proc/self/clear_refs`` with 5) right before one aggregation and read back
(``VmHWM``) right after; the increase over the resident size just before,
divided by the model's size, is the peak memory the rule needed beyond its
inputs (its own output counts: 1.0 at least). glibc's free lists are trimmed
first so reused heap cannot hide growth. Where clear_refs is not writable, a
1 ms psutil RSS sampler stands in.

Prints a table, then (last line) a JSON object of the figures.
Run: ./run bench aggregation
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import statistics
import threading
import time
from collections.abc import Callable
from functools import reduce
from pathlib import Path

import numpy as np
import psutil
import torch

from fl.aggregation import ClientModel, create_aggregator
from fl.aggregation.kernels import CHUNK, run_workers

CLIENTS = 10
REPETITIONS = 7
STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def resnet50_shapes() -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of torchvision's resnet50().state_dict(), in its order."""
    shapes: list[tuple[str, tuple[int, ...]]] = []

    def batch_norm(prefix: str, channels: int) -> None:
        for suffix in ("weight", "bias", "running_mean", "running_var"):
            shapes.append((f"{prefix}.{suffix}", (channels,)))
        shapes.append((f"{prefix}.num_batches_tracked", ()))

    shapes.append(("conv1.weight", (64, 3, 7, 7)))
    batch_norm("bn1", 64)
    inplanes = 64
    for layer, (planes, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], start=1):
        for block in range(blocks):
            prefix = f"layer{layer}.{block}"
            shapes.append((f"{prefix}.conv1.weight", (planes, inplanes, 1, 1)))
            batch_norm(f"{prefix}.bn1", planes)
            shapes.append((f"{prefix}.conv2.weight", (planes, planes, 3, 3)))
            batch_norm(f"{prefix}.bn2", planes)
            shapes.append((f"{prefix}.conv3.weight", (planes * 4, planes, 1, 1)))
            batch_norm(f"{prefix}.bn3", planes * 4)
            if block == 0:
                shapes.append((f"{prefix}.downsample.0.weight", (planes * 4, inplanes, 1, 1)))
                batch_norm(f"{prefix}.downsample.1", planes * 4)
            inplanes = planes * 4
    shapes.append(("fc.weight", (1000, 2048)))
    shapes.append(("fc.bias", (1000,)))
    return shapes


def make_clients() -> list[ClientModel]:
    clients = []
    for index in range(CLIENTS):
        generator = torch.Generator().manual_seed(index)
        parameters = {
            name: (
                torch.randint(0, 1000, shape, generator=generator)
                if name.endswith("num_batches_tracked")
                else torch.randn(shape, generator=generator)
            )
            for name, shape in resnet50_shapes()
        }
        clients.append(ClientModel(f"hospital_{index:02d}", parameters, data_samples=100 + 37 * index))
    return clients


def read_floor(clients: list[ClientModel]) -> None:
    """Sum every client tensor once: PyTorch's own (intra-op parallel) reduction."""
    for client in clients:
        for tensor in client.parameters.values():
            tensor.sum()


def read_floor_numpy(clients: list[ClientModel]) -> None:
    """Sum every client tensor once with NumPy, whole tensors in one thread."""
    for client in clients:
        for tensor in client.parameters.values():
            tensor.numpy().sum()


def read_floor_chunked(clients: list[ClientModel]) -> None:
    """Sum every client tensor once with NumPy in the aggregation kernels' chunks and worker threads."""
    pending = iter(
        [
            flat[start : start + CHUNK]
            for client in clients
            for flat in (tensor.reshape(-1).numpy() for tensor in client.parameters.values())
            for start in range(0, flat.size, CHUNK)
        ]
    )

    def work() -> None:
        for chunk in pending:
            chunk.sum()

    run_workers(work, torch.get_num_threads())


def numpy_flower(results: list[tuple[list[np.ndarray], int]]) -> list[np.ndarray]:
    """Flower's ``flwr.server.strategy.aggregate.aggregate``, verbatim in method."""
    num_examples_total = sum(num_examples for _, num_examples in results)
    weighted_weights = [[layer * num_examples for layer in weights] for weights, num_examples in results]
    return [reduce(np.add, layer_updates) / num_examples_total for layer_updates in zip(*weighted_weights)]


def median_seconds(runs: dict[str, Callable[[], object]]) -> dict[str, tuple[float, float]]:
    """Median wall-clock and process CPU seconds of each run, the runs interleaved round by round
    after one untimed warm-up round."""
    for run in runs.values():
        run()
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(REPETITIONS):
        for name, run in runs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in runs}


def busy_cpu_seconds() -> float:
    """CPU seconds all processes have spent so far, summed over the cores."""
    times = psutil.cpu_times()
    return times.user + times.nice + times.system + getattr(times, "irq", 0.0) + getattr(times, "softirq", 0.0)


def resident_bytes(field: str) -> int:
    for line in STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in {STATUS}")


def peak_extra_bytes(run: Callable[[], object]) -> int:
    """Peak resident bytes during ``run`` above the resident bytes before it (its result is dropped after)."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return sampled_peak_extra_bytes(run)
    before = resident_bytes("VmRSS")
    result = run()
    peak = resident_bytes("VmHWM")
    del result
    return peak - before


def sampled_peak_extra_bytes(run: Callable[[], object]) -> int:
    process = psutil.Process()
    before = peak = process.memory_info().rss
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        run()
    finally:
        done.set()
        sampler.join()
    return peak - before


def main() -> None:
    clients = make_clients()
    model_bytes = sum(t.numel() * t.element_size() for t in clients[0].parameters.values())
    parameter_count = sum(t.numel() for t in clients[0].parameters.values())
    numpy_results = [([t.numpy() for t in c.parameters.values()], c.data_samples) for c in clients]
    fedavg = create_aggregator("fedavg")
    trimmed = create_aggregator("trimmed_mean", {"trim_ratio": 0.1})
    median = create_aggregator("median")

    runs: dict[str, Callable[[], object]] = {
        "read_torch": lambda: read_floor(clients),
        "read_numpy": lambda: read_floor_numpy(clients),
        "read_chunked": lambda: read_floor_chunked(clients),
        "fedavg": lambda: fedavg.aggregate(clients),
        "trimmed_mean": lambda: trimmed.aggregate(clients),
        "median": lambda: median.aggregate(clients),
        "numpy_flower": lambda: numpy_flower(numpy_results),
    }
    start, start_busy, start_own = time.perf_counter(), busy_cpu_seconds(), time.process_time()
    measured = median_seconds(runs)
    others = (busy_cpu_seconds() - start_busy - (time.process_time() - start_own)) / (time.perf_counter() - start)
    seconds = {name: wall for name, (wall, _) in measured.items()}
    cpu = {name: spent for name, (_, spent) in measured.items()}
    extra = {name: peak_extra_bytes(runs[name]) / model_bytes for name in ("fedavg", "trimmed_mean", "numpy_flower")}

    # The floor is the fastest of the ways to read every byte once.
    fastest = min(("read_torch", "read_numpy", "read_chunked"), key=seconds.__getitem__)
    seconds["read_floor"], cpu["read_floor"] = seconds[fastest], cpu[fastest]
    floor = seconds["read_floor"]
    print(
        f"{CLIENTS} clients x {parameter_count / 1e6:.1f} M values ({model_bytes / 2**20:.0f} MiB each), "
        f"torch threads {torch.get_num_threads()} on {os.cpu_count()} cores, median of {REPETITIONS}, "
        f"other processes busy on {others:.2f} cores meanwhile"
    )
    print(f"{'rule':<14}{'seconds':>9}{'x floor':>9}{'GB/s':>7}{'cpu s':>8}{'cpu x floor':>13}{'peak extra (models)':>21}")
    for name, value in seconds.items():
        memory = f"{extra[name]:.2f}" if name in extra else "-"
        print(
            f"{name:<14}{value:>9.3f}{value / floor:>9.2f}{CLIENTS * model_bytes / value / 1e9:>7.1f}"
            f"{cpu[name]:>8.3f}{cpu[name] / cpu['read_floor']:>13.2f}{memory:>21}"
        )
    figures = {
        "read_floor_seconds": round(floor, 4),
        "fedavg_seconds": round(seconds["fedavg"], 4),
        "trimmed_mean_seconds": round(seconds["trimmed_mean"], 4),
        "median_seconds": round(seconds["median"], 4),
        "numpy_flower_seconds": round(seconds["numpy_flower"], 4),
        "fedavg_over_floor": round(seconds["fedavg"] / floor, 3),
        "trimmed_mean_over_floor": round(seconds["trimmed_mean"] / floor, 3),
        "median_over_floor": round(seconds["median"] / floor, 3),
        "fedavg_speedup_vs_numpy": round(seconds["numpy_flower"] / seconds["fedavg"], 3),
        "fedavg_over_floor_cpu": round(cpu["fedavg"] / cpu["read_floor"], 3),
        "trimmed_mean_over_floor_cpu": round(cpu["trimmed_mean"] / cpu["read_floor"], 3),
        "fedavg_speedup_vs_numpy_cpu": round(cpu["numpy_flower"] / cpu["fedavg"], 3),
        "peak_extra_bytes_over_model": round(extra["fedavg"], 3),
        "trimmed_mean_peak_extra_over_model": round(extra["trimmed_mean"], 3),
        "numpy_flower_peak_extra_over_model": round(extra["numpy_flower"], 3),
        "other_processes_cores": round(others, 2),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
