"""The workloads ``auto`` is judged on: each one clear-cut, each with a best backend.

Every workload is a module-level function of one item (so process workers can import
it by name) plus the list of items, sized to take about ``seconds`` serially.

- ``python_cpu``  pure-Python arithmetic, ~20 ms per item: holds the GIL -> processes
  (threads on a free-threaded build).
- ``numpy``       sorting 400k random floats per item: releases the GIL -> threads.
- ``sleep_io``    ``time.sleep(0.01)``: waiting -> many threads.
- ``file_read``   read a 4 MB file and hash it (sha256 releases the GIL) -> threads.
- ``tiny``        ``x * x``: no call is worth a pool -> serial (threads on a free-threaded
  build, which run the map's chunks of thousands of calls in parallel).
- ``large_args``  square roots of a 4 MB array passed as the argument, summed:
  pickling the array costs more than the work -> threads (or serial).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["WORKLOADS", "Workload", "prepared"]


def spin(iterations: int) -> int:
    total = 0
    for i in range(iterations):
        total += i * i % 7
    return total


def sort_random(seed: int) -> float:
    values = np.random.default_rng(seed).random(400_000)
    return float(np.sort(values)[len(values) // 2])


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def hash_file(path: str) -> str:
    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()


def square(x: int) -> int:
    return x * x


def array_sum(array: Any) -> float:
    return float(np.sqrt(array).sum())


def calibrate_spin(seconds: float) -> int:
    """Iterations of ``spin`` that take about ``seconds`` on this machine."""
    iterations = 20_000
    while True:
        started = time.perf_counter()
        spin(iterations)
        elapsed = time.perf_counter() - started
        if elapsed >= 0.01:
            return max(1, int(iterations * seconds / elapsed))
        iterations *= 4


@dataclass(frozen=True)
class Workload:
    """A function, how to build its items, and the backend expected to suit it."""

    name: str
    fn: Callable[[Any], Any]
    build: Callable[[bool, str], list[Any]]  # (quick, scratch directory) -> items
    suits: str


def _python_cpu(quick: bool, scratch: str) -> list[int]:
    return [calibrate_spin(0.02)] * (8 if quick else 100)


def _numpy(quick: bool, scratch: str) -> list[int]:
    return list(range(6 if quick else 80))


def _sleep(quick: bool, scratch: str) -> list[float]:
    return [0.01] * (10 if quick else 200)


def _files(quick: bool, scratch: str) -> list[str]:
    count = 4 if quick else 16
    size = (1 if quick else 4) * 1024 * 1024
    paths = []
    for index in range(count):
        path = os.path.join(scratch, f"data-{index}.bin")
        with open(path, "wb") as file:
            file.write(os.urandom(size))
        paths.append(path)
    return paths * (2 if quick else 8)


def _tiny(quick: bool, scratch: str) -> list[int]:
    return list(range(20_000 if quick else 300_000))


def _large(quick: bool, scratch: str) -> list[Any]:
    arrays = [np.random.default_rng(i).random(500_000) for i in range(4)]  # 4 MB each
    return arrays * (2 if quick else 32)


WORKLOADS: tuple[Workload, ...] = (
    Workload("python_cpu", spin, _python_cpu, "processes (threads on 3.13t)"),
    Workload("numpy", sort_random, _numpy, "threads"),
    Workload("sleep_io", nap, _sleep, "threads"),
    Workload("file_read", hash_file, _files, "threads"),
    Workload("tiny", square, _tiny, "serial (threads on 3.13t)"),
    Workload("large_args", array_sum, _large, "threads or serial"),
)


@contextmanager
def prepared(workload: Workload, *, quick: bool) -> Iterator[list[Any]]:
    """The workload's items, with any scratch files removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="fermion-bench-") as scratch:
        yield workload.build(quick, scratch)
