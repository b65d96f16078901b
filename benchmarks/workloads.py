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

Shapes the six above miss (issue 15), each unlike what ``auto`` was tuned on:

- ``slow_import`` a ~0.5 s pure-Python job in a script whose main module takes 0.7 s
  to import (as real scripts do: build a table, read some files): every worker
  process imports it again, so processes start late -> serial.
- ``blas``        matrix products whose BLAS already uses every core -> serial.
- ``ms_files``    reading and hashing 40 small files: a few ms in all.
- ``ms_array``    16 reductions of one 8 MB array, the array passed each time.
- ``big_list``    pure Python over a 50,000-float list passed as the argument:
  pickling it is a tenth of the work.
- ``mixed``       pure Python, one call in ten 40 ms, the rest 0.5 ms.
- ``*+hog``       ``python_cpu`` and ``numpy`` with another program spinning on one
  core beside them all along.

C code that holds the GIL for milliseconds at a time (no Python bytecode between, so
the switch interval does not hand it over), a shape the ones above miss:

- ``json_parse``  ``json.loads`` of a 3,000-record document, ~2 ms per call, 0.3 s in
  all -> processes (threads on 3.13t).
- ``regex``       ``re.findall`` over a 1 MB text, ~20 ms per call -> processes
  (threads on 3.13t).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import subprocess
import sys
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


def matmul(seed: int) -> float:
    rng = np.random.default_rng(seed)
    a = rng.random((700, 700))
    return float((a @ a).trace())


def list_sum(values: list[float]) -> float:
    total = 0.0
    for value in values:
        total += value * value
    return total


@functools.cache
def _document() -> str:
    """A JSON document of 3,000 records (built once per process, as a cache would)."""
    records = [
        {"id": i, "name": f"n{i}", "tags": ["a", "b", str(i)], "v": i / 2} for i in range(3000)
    ]
    return json.dumps(records)


def parse_document(seed: int) -> int:
    return len(json.loads(_document()))


@functools.cache
def _text() -> str:
    return " ".join(f"word{i} 12{i}34 user{i}@host{i}.org" for i in range(20_000))


def find_addresses(seed: int) -> int:
    return len(re.findall(r"\w+@\w+\.org", _text()))


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
    """A function, how to build its items, and the backend expected to suit it.

    ``hog``: another program spins on one core while it runs. ``script``: the job runs
    as the main module of a fresh interpreter (``slow_main.py``), so that worker
    processes import that module as real scripts' workers do."""

    name: str
    fn: Callable[[Any], Any]
    build: Callable[[bool, str], list[Any]]  # (quick, scratch directory) -> items
    suits: str
    hog: bool = False
    script: bool = False


def _python_cpu(quick: bool, scratch: str) -> list[int]:
    return [calibrate_spin(0.02)] * (8 if quick else 100)


def _numpy(quick: bool, scratch: str) -> list[int]:
    return list(range(6 if quick else 80))


def _sleep(quick: bool, scratch: str) -> list[float]:
    return [0.01] * (10 if quick else 200)


def _random_files(scratch: str, prefix: str, count: int, size: int) -> list[str]:
    """``count`` files of ``size`` random bytes in ``scratch``; their paths."""
    paths = []
    for index in range(count):
        path = os.path.join(scratch, f"{prefix}-{index}.bin")
        with open(path, "wb") as file:
            file.write(os.urandom(size))
        paths.append(path)
    return paths


def _files(quick: bool, scratch: str) -> list[str]:
    size = (1 if quick else 4) * 1024 * 1024
    return _random_files(scratch, "data", 4 if quick else 16, size) * (2 if quick else 8)


def _tiny(quick: bool, scratch: str) -> list[int]:
    return list(range(20_000 if quick else 300_000))


def _large(quick: bool, scratch: str) -> list[Any]:
    arrays = [np.random.default_rng(i).random(500_000) for i in range(4)]  # 4 MB each
    return arrays * (2 if quick else 32)


def _blas(quick: bool, scratch: str) -> list[int]:
    return list(range(4 if quick else 40))


def _small_files(quick: bool, scratch: str) -> list[str]:
    return _random_files(scratch, "small", 40, 4096)


def _one_array(quick: bool, scratch: str) -> list[Any]:
    array = np.random.default_rng(0).random(1_000_000)  # 8 MB
    return [array] * 16


def _big_lists(quick: bool, scratch: str) -> list[list[float]]:
    values = list(np.random.default_rng(0).random(50_000))
    return [values] * (4 if quick else 60)


def _mixed(quick: bool, scratch: str) -> list[int]:
    short, long = calibrate_spin(0.0005), calibrate_spin(0.04)
    count = 20 if quick else 300
    return [long if index % 10 == 0 else short for index in range(count)]


def _slow_import(quick: bool, scratch: str) -> list[int]:
    return [calibrate_spin(0.02)] * (5 if quick else 25)


def _documents(quick: bool, scratch: str) -> list[int]:
    return list(range(20 if quick else 150))


def _texts(quick: bool, scratch: str) -> list[int]:
    return list(range(6 if quick else 60))


WORKLOADS: tuple[Workload, ...] = (
    Workload("python_cpu", spin, _python_cpu, "processes (threads on 3.13t)"),
    Workload("numpy", sort_random, _numpy, "threads"),
    Workload("sleep_io", nap, _sleep, "threads"),
    Workload("file_read", hash_file, _files, "threads"),
    Workload("tiny", square, _tiny, "serial (threads on 3.13t)"),
    Workload("large_args", array_sum, _large, "threads or serial"),
    Workload("slow_import", spin, _slow_import, "serial", script=True),
    Workload("blas", matmul, _blas, "serial (BLAS uses the cores)"),
    Workload("ms_files", hash_file, _small_files, "serial or threads"),
    Workload("ms_array", array_sum, _one_array, "serial or threads"),
    Workload("big_list", list_sum, _big_lists, "processes (threads on 3.13t)"),
    Workload("mixed", spin, _mixed, "processes (threads on 3.13t)"),
    Workload("python_cpu+hog", spin, _python_cpu, "processes (threads on 3.13t)", hog=True),
    Workload("numpy+hog", sort_random, _numpy, "threads", hog=True),
    Workload("json_parse", parse_document, _documents, "processes (threads on 3.13t)"),
    Workload("regex", find_addresses, _texts, "processes (threads on 3.13t)"),
)


@contextmanager
def cpu_hog(active: bool) -> Iterator[None]:
    """Another program spinning on one core while the block runs (if ``active``)."""
    if not active:
        yield
        return
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)  # running before the first timing
        yield
    finally:
        hog.kill()
        hog.wait()


SLOW_MAIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slow_main.py")


def run_script(backend: str, workers: int | None, items: list[Any]) -> tuple[float, str]:
    """Seconds of ``slow_main.py``'s job on ``backend`` (its own interpreter), and the
    choice ``auto`` reported."""
    command = [sys.executable, SLOW_MAIN, backend, str(workers or 0), json.dumps(items)]
    # Bytecode caching on, as on a user's machine (a machine that sets
    # PYTHONDONTWRITEBYTECODE would recompile every module in every run).
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600, env=env)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return float(report["seconds"]), str(report["choice"])


@contextmanager
def prepared(workload: Workload, *, quick: bool) -> Iterator[list[Any]]:
    """The workload's items, with any scratch files removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="fermion-bench-") as scratch:
        yield workload.build(quick, scratch)
