"""Sharing without pickling: big NumPy arrays to and from process workers.

A. The same plain array (not ``shared_array``) passed 8 times, summed on 2 workers:
   fermion threads | fermion processes (one copy per distinct array) | joblib (loky,
   defaults: memory-maps arguments over 1 MB) | concurrent.futures.ProcessPoolExecutor;
   for information, the same array read-only and as a ``shared_copy``.
B. 8 distinct plain arrays, summed on 2 workers: the same peers, and ``shared_copy``
   arrays; then the copy into shared memory (measured inside the pool's sends, warm
   segments) against a plain memcpy (``np.copyto`` into an existing buffer).
C. Large arrays coming back as results: fermion processes vs ProcessPoolExecutor.

Goals (issue 16): A processes <= 2x threads, >= 3x faster than joblib, >= 10x faster
than ProcessPoolExecutor; B >= 3x faster than joblib, the copy within 2x of memcpy;
C (issue 6) >= 5x faster than ProcessPoolExecutor.

Every pool is started and warmed up before timing (the first map of fermion processes,
into fresh segments, is printed apart); then ``--rounds`` interleaved rounds run every
case once each, and the median of each case is printed, with the ratios.

    python benchmarks/bench_sharing.py            # the real thing (about 4 GB of RAM)
    python benchmarks/bench_sharing.py --quick
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
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


def _check(results: Any, expected: float) -> None:
    got = sum(results)
    if not np.isclose(got, expected, rtol=1e-9):
        raise RuntimeError(f"wrong total {got} != {expected}")


def _rounds(cases: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Run every case once per round, interleaved; the median time of each."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            gc.collect()
            start = time.perf_counter()
            case()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def bench_arguments(
    count: int, nbytes: int, rounds: int, only: list[str] | None = None
) -> tuple[dict[str, float], float]:
    """Cases A and B; returns the medians and the copy's speed into warm segments."""
    rng = np.random.default_rng(0)
    same = rng.random(nbytes // 8)
    frozen = same.copy()
    frozen.flags.writeable = False
    distinct = [rng.random(nbytes // 8) for _ in range(count)]
    shared_same = fermion.sharing.shared_copy(same)
    shared_distinct = [fermion.sharing.shared_copy(a) for a in distinct]
    same_total = float(same.sum()) * count
    distinct_total = float(sum(a.sum() for a in distinct))
    repeated, repeated_frozen = [same] * count, [frozen] * count
    repeated_shared = [shared_same] * count

    with contextlib.ExitStack() as stack:
        threads = stack.enter_context(fermion.Executor("threads", workers=WORKERS))
        procs = stack.enter_context(fermion.Executor("processes", workers=WORKERS))
        ppe = stack.enter_context(concurrent.futures.ProcessPoolExecutor(WORKERS))
        try:
            import joblib
        except ImportError:
            print("  joblib is not installed: skipped")
            joblib = None
        for pool in (threads, procs, ppe):
            list(pool.map(total, [np.ones(4)] * WORKERS))
        cases: dict[str, Callable[[], Any]] = {
            "A threads": lambda: _check(threads.map(total, repeated), same_total),
            "A fermion processes": lambda: _check(procs.map(total, repeated), same_total),
            "A fermion processes, read-only array": lambda: _check(
                procs.map(total, repeated_frozen), same_total
            ),
            "A fermion processes, shared_copy": lambda: _check(
                procs.map(total, repeated_shared), same_total
            ),
            "A ProcessPoolExecutor": lambda: _check(ppe.map(total, repeated), same_total),
            "B threads": lambda: _check(threads.map(total, distinct), distinct_total),
            "B fermion processes": lambda: _check(procs.map(total, distinct), distinct_total),
            "B fermion processes, shared_copy arrays": lambda: _check(
                procs.map(total, shared_distinct), distinct_total
            ),
            "B ProcessPoolExecutor": lambda: _check(ppe.map(total, distinct), distinct_total),
        }
        if joblib is not None:
            parallel = joblib.Parallel(n_jobs=WORKERS)  # loky; memory-maps above 1 MB
            parallel(joblib.delayed(total)(a) for a in [np.ones(4)] * WORKERS)
            cases["A joblib"] = lambda: _check(
                parallel(joblib.delayed(total)(a) for a in repeated), same_total
            )
            cases["B joblib"] = lambda: _check(
                parallel(joblib.delayed(total)(a) for a in distinct), distinct_total
            )
        if only:
            cases = {k: v for k, v in cases.items() if any(part in k for part in only)}
        start = time.perf_counter()
        _check(procs.map(total, distinct), distinct_total)
        first = time.perf_counter() - start
        before = _connection.statistics()
        times = _rounds(cases, rounds)
        after = _connection.statistics()
    times["B fermion processes, first map (fresh segments)"] = first
    warm_ns = after["warm_copy_ns"] - before["warm_copy_ns"]
    warm_bytes = after["warm_copy_bytes"] - before["warm_copy_bytes"]
    made = after["copies_made"] - before["copies_made"]
    reused = after["copies_reused"] - before["copies_reused"]
    fresh = after["segments_created"] - before["segments_created"]
    print(
        f"  fermion processes over all rounds: {made} copies made, {reused} reused; "
        f"{fresh} fresh segments, {after['segments_recycled'] - before['segments_recycled']} "
        f"recycled"
    )
    copy_speed = warm_bytes / (warm_ns / 1e9) if warm_ns else float("nan")
    return times, copy_speed


def memcpy_speed(nbytes: int, rounds: int) -> float:
    """Bytes per second of ``np.copyto`` into an existing (already touched) buffer."""
    source = np.random.default_rng(1).random(nbytes // 8)
    target = np.empty_like(source)
    np.copyto(target, source)  # touch every page first
    times = []
    for _ in range(max(rounds, 3)):
        start = time.perf_counter()
        np.copyto(target, source)
        times.append(time.perf_counter() - start)
    return source.nbytes / statistics.median(times)


def sum_times(nbytes: int, rounds: int) -> tuple[float, float]:
    """Median seconds of ``a.sum()`` on a private array and on a shared copy of it, in this
    process: what the memory alone costs a worker (shared memory may get only small pages)."""
    private = np.random.default_rng(2).random(nbytes // 8)
    shared = fermion.sharing.shared_copy(private)
    times: dict[str, list[float]] = {"private": [], "shared": []}
    for _ in range(max(rounds, 7)):
        for name, array in (("private", private), ("shared", shared)):
            start = time.perf_counter()
            array.sum()
            times[name].append(time.perf_counter() - start)
    return statistics.median(times["private"]), statistics.median(times["shared"])


def _shmem_huge_pages() -> str:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/shmem_enabled") as f:
            setting = f.read().split()
    except OSError:
        return "unknown"
    chosen = [word.strip("[]") for word in setting if word.startswith("[")]
    return chosen[0] if chosen else " ".join(setting)


def bench_results(count: int, nbytes: int, rounds: int) -> dict[str, float]:
    def consume(results: Any) -> None:
        n = 0
        for r in results:
            if r.nbytes != nbytes:
                raise RuntimeError("wrong result size")
            n += 1
        if n != count:
            raise RuntimeError("missing results")

    with (
        fermion.Executor("processes", workers=WORKERS) as ex,
        concurrent.futures.ProcessPoolExecutor(WORKERS) as ppe,
    ):
        list(ex.map(make, [64] * WORKERS))
        list(ppe.map(make, [64] * WORKERS))
        return _rounds(
            {
                "C fermion processes": lambda: consume(ex.map(make, [nbytes] * count)),
                "C ProcessPoolExecutor": lambda: consume(ppe.map(make, [nbytes] * count)),
            },
            rounds,
        )


def _ratio(times: dict[str, float], a: str, b: str, goal: str) -> None:
    if a in times and b in times:
        print(f"  {a} / {b}: {times[a] / times[b]:.2f}  ({goal})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small arrays, one round")
    parser.add_argument("--mb", type=float, default=200.0, help="size of each array in MB")
    parser.add_argument("--count", type=int, default=8, help="how many arrays (tasks)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated parts of case names to run (e.g. 'A threads,A fermion'); skips C",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.mb, args.rounds = 4.0, 1
    nbytes = int(args.mb * 1e6) // 8 * 8

    print(
        f"A: the same {args.mb:g} MB array {args.count} times; B: {args.count} distinct "
        f"arrays; summed on {WORKERS} workers; median of {args.rounds} interleaved rounds"
    )
    only = [part for part in args.only.split(",") if part]
    times, copy_speed = bench_arguments(args.count, nbytes, args.rounds, only)
    for name in sorted(times):
        print(f"  {name:52s} {times[name] * 1e3:10.1f} ms")
    print("ratios:")
    _ratio(times, "A fermion processes", "A threads", "goal <= 2")
    _ratio(times, "A joblib", "A fermion processes", "goal >= 3")
    _ratio(times, "A ProcessPoolExecutor", "A fermion processes", "goal >= 10")
    _ratio(times, "B joblib", "B fermion processes", "goal >= 3")
    _ratio(times, "B ProcessPoolExecutor", "B fermion processes", "info")
    _ratio(times, "B fermion processes", "B threads", "info")
    memcpy = memcpy_speed(nbytes, args.rounds)
    print(
        f"  copy into shared memory (warm segments, in the pool): {copy_speed / 1e9:.2f} GB/s; "
        f"memcpy (np.copyto into an existing buffer): {memcpy / 1e9:.2f} GB/s; "
        f"memcpy / copy: {memcpy / copy_speed:.2f}  (goal <= 2)"
    )

    private, shared = sum_times(nbytes, args.rounds)
    print(
        f"  a.sum() on shared memory {shared * 1e3:.1f} ms, on private memory "
        f"{private * 1e3:.1f} ms: {shared / private:.2f}x (huge pages for shared memory: "
        f"{_shmem_huge_pages()})"
    )
    if "A joblib" in times and "A threads" in times and copy_speed == copy_speed:
        bound = times["A joblib"] / (times["A threads"] + nbytes / copy_speed)
        print(
            f"  bound on A joblib / A fermion processes with one snapshot copy: "
            f"joblib / (threads + copy) = {bound:.2f}"
        )

    if only:
        return
    print(f"C: {args.count} results of {args.mb:g} MB coming back from {WORKERS} workers")
    results = bench_results(args.count, nbytes, args.rounds)
    for name, seconds in results.items():
        print(f"  {name:52s} {seconds * 1e3:10.1f} ms")
    _ratio(results, "C ProcessPoolExecutor", "C fermion processes", "goal >= 5")


if __name__ == "__main__":
    main()
