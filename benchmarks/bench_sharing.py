"""Sharing without pickling: big NumPy arrays to and from process workers.

A. Summing 8 arrays of 200 MB each on 2 workers:
   serial loop | fermion threads | fermion processes (plain arrays: automatic shared
   memory, one copy; the first map into cold segments, then the median of warm maps) | fermion processes (arrays made with fermion.sharing.shared_copy:
   zero copy) | fermion processes with the transport off (through the pipe) |
   concurrent.futures.ProcessPoolExecutor | joblib (loky, memmapping).
B. Large arrays coming back as results: fermion processes vs ProcessPoolExecutor.

Goals (issue 6): A processes <= 1.5x threads, >= 10x faster than ProcessPoolExecutor,
>= 3x faster than joblib; B >= 5x faster than ProcessPoolExecutor.

Every pool is started and warmed up before timing; each case is timed ``--repeats``
times and the median printed. ``--quick`` is a smoke run with small arrays.

    python benchmarks/bench_sharing.py            # the real thing (about 4 GB of RAM)
    python benchmarks/bench_sharing.py --quick
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import fermion
from fermion.sharing import _connection

WORKERS = 2


def total(array: np.ndarray) -> float:
    return float(array.sum())


def make(nbytes: int) -> np.ndarray:
    return np.full(nbytes // 8, 1.0)


def _median_time(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _check(results: list[float], expected: float) -> None:
    if not np.isclose(sum(results), expected, rtol=1e-9):
        raise RuntimeError(f"wrong total {sum(results)} != {expected}")


def bench_sums(count: int, nbytes: int, repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    arrays = [rng.random(nbytes // 8) for _ in range(count)]
    expected = float(sum(a.sum() for a in arrays))
    shared = [fermion.sharing.shared_copy(a) for a in arrays]
    times: dict[str, float] = {}

    times["serial loop"] = _median_time(
        lambda: _check([total(a) for a in arrays], expected), repeats
    )

    with fermion.Executor("threads", workers=WORKERS) as ex:
        list(ex.map(total, arrays[:1]))
        times["fermion threads"] = _median_time(
            lambda: _check(list(ex.map(total, arrays)), expected), repeats
        )

    with fermion.Executor("processes", workers=WORKERS) as ex:
        list(ex.map(total, [np.ones(4)] * WORKERS))
        # The first map fills fresh segments (page allocation: the slow part); later
        # maps refill the same warm receive areas at memory-copy speed.
        times["fermion processes, first map (cold areas)"] = _median_time(
            lambda: _check(list(ex.map(total, arrays, chunksize=1)), expected), 1
        )
        before = _connection.statistics()
        times["fermion processes"] = _median_time(
            lambda: _check(list(ex.map(total, arrays, chunksize=1)), expected), repeats
        )
        after = _connection.statistics()
        shm = (after["shared_bytes"] - before["shared_bytes"]) / repeats
        pipe = (after["inband_bytes"] - before["inband_bytes"]) / repeats
        reused = after["areas_reused"] - before["areas_reused"]
        made = after["areas_created"] - before["areas_created"]
        print(
            f"  fermion processes moved per run: {shm / 1e6:.0f} MB through shared memory, "
            f"{pipe / 1e6:.3f} MB of buffers through the pipe; warm areas reused {reused}x, "
            f"created {made}x, {after['warm_area_bytes'] / 1e6:.0f} MB kept warm"
        )
        times["fermion processes, shared_copy arrays"] = _median_time(
            lambda: _check(list(ex.map(total, shared, chunksize=1)), expected), repeats
        )
        _connection.configure(threshold=None)
        try:
            times["fermion processes, transport off (pipe)"] = _median_time(
                lambda: _check(list(ex.map(total, arrays, chunksize=1)), expected), repeats
            )
        finally:
            _connection.configure()

    with concurrent.futures.ProcessPoolExecutor(WORKERS) as ppe:
        list(ppe.map(total, [np.ones(4)] * WORKERS))
        times["ProcessPoolExecutor"] = _median_time(
            lambda: _check(list(ppe.map(total, arrays)), expected), repeats
        )

    try:
        import joblib
    except ImportError:
        print("  joblib is not installed: skipped")
    else:
        parallel = joblib.Parallel(n_jobs=WORKERS)  # loky, memmapping above 1 MB
        parallel(joblib.delayed(total)(a) for a in [np.ones(4)] * WORKERS)
        times["joblib (memmapping)"] = _median_time(
            lambda: _check(parallel(joblib.delayed(total)(a) for a in arrays), expected), repeats
        )
    return times


def bench_results(count: int, nbytes: int, repeats: int) -> dict[str, float]:
    times: dict[str, float] = {}

    def consume(results: Any) -> None:
        n = 0
        for r in results:
            if r.nbytes != nbytes:
                raise RuntimeError("wrong result size")
            n += 1
        if n != count:
            raise RuntimeError("missing results")

    with fermion.Executor("processes", workers=WORKERS) as ex:
        list(ex.map(make, [64] * WORKERS))
        times["fermion processes"] = _median_time(
            lambda: consume(ex.map(make, [nbytes] * count, chunksize=1)), repeats
        )
    with concurrent.futures.ProcessPoolExecutor(WORKERS) as ppe:
        list(ppe.map(make, [64] * WORKERS))
        times["ProcessPoolExecutor"] = _median_time(
            lambda: consume(ppe.map(make, [nbytes] * count)), repeats
        )
    return times


def _ratio_line(name: str, times: dict[str, float], a: str, b: str, goal: str) -> None:
    if a in times and b in times:
        print(f"  {name}: {times[a] / times[b]:.2f}  ({goal})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small arrays, one repeat")
    parser.add_argument("--mb", type=float, default=200.0, help="size of each array in MB")
    parser.add_argument("--count", type=int, default=8, help="how many arrays")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if args.quick:
        args.mb, args.repeats = 4.0, 1
    nbytes = int(args.mb * 1e6) // 8 * 8

    print(f"A. summing {args.count} arrays of {args.mb:g} MB on {WORKERS} workers")
    sums = bench_sums(args.count, nbytes, args.repeats)
    for name, seconds in sums.items():
        print(f"  {name:42s} {seconds * 1e3:10.1f} ms")
    fp, fs = "fermion processes", "fermion processes, shared_copy arrays"
    _ratio_line("processes / threads", sums, fp, "fermion threads", "goal <= 1.5")
    _ratio_line("processes (shared_copy) / threads", sums, fs, "fermion threads", "goal <= 1.5")
    _ratio_line("ProcessPoolExecutor / processes", sums, "ProcessPoolExecutor", fp, "goal >= 10")
    _ratio_line("joblib / processes", sums, "joblib (memmapping)", fp, "goal >= 3")
    _ratio_line("ProcessPoolExecutor / serial", sums, "ProcessPoolExecutor", "serial loop", "info")

    print(f"B. {args.count} results of {args.mb:g} MB coming back from {WORKERS} workers")
    results = bench_results(args.count, nbytes, args.repeats)
    for name, seconds in results.items():
        print(f"  {name:42s} {seconds * 1e3:10.1f} ms")
    _ratio_line("ProcessPoolExecutor / processes", results, "ProcessPoolExecutor", fp, "goal >= 5")


if __name__ == "__main__":
    main()
