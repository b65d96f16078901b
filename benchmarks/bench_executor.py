"""fermion's Executor against its peers: the B1-B4 comparisons of issue 2.

    python benchmarks/bench_executor.py            # the real run (minutes)
    python benchmarks/bench_executor.py --quick    # a smoke run (seconds)
    python benchmarks/bench_executor.py --only B1,B3 --workers 2 --repeats 5

Every peer runs with its default settings (chunksize, batching) and a warm pool: pools
are started, and used once, before the clock starts. Each measurement is repeated and
the median is reported, with the ratio to fermion's ``processes`` backend.

- B1: 100,000 tiny tasks (``x*x``) through ``map``. Goal: fermion >= 10x the throughput
  of ProcessPoolExecutor.map, and >= 2/3 of multiprocessing.Pool.map.
- B2: ``submit(...).result()`` one at a time, every pool open, the peers taking turns
  in blocks of calls. Goal: median round trip no slower than ProcessPoolExecutor's.
- B3: 64 pure-Python CPU tasks of about 20 ms. Goal: processes >= 1.85x over serial on
  2 workers; threads about 1x with the GIL, well above 1x on free-threaded 3.13t.
- B4: a 10,000-task map in which one task SIGKILLs its worker. Goal (fermion): 9,999
  results and one WorkerCrashedError, no hang, within 2x of the run without the crash.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import multiprocessing
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import fermion
from fermion.teach._workloads import calibrate_primes, count_primes

Runner = Callable[[list[int]], Any]


# -- the work (module level, so every peer can pickle it) ---------------------------


def square(x: int) -> int:
    return x * x


def spin_then_square(x: int, seconds: float = 0.0005) -> int:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    return x * x


def die_at_5000(x: int) -> int:
    if x == 5000:
        os.kill(os.getpid(), signal.SIGKILL)
    return spin_then_square(x)


def die_at_500(x: int) -> int:
    if x == 500:
        os.kill(os.getpid(), signal.SIGKILL)
    return spin_then_square(x)


# -- peers: each yields a map runner and a submit-one runner on a warm pool ---------


@contextlib.contextmanager
def fermion_pool(backend: str, workers: int) -> Iterator[tuple[Runner, Callable[[int], Any]]]:
    with fermion.Executor(backend, workers) as ex:
        ex.submit(square, 1).result()
        yield (lambda xs: list(ex.map(square, xs))), (lambda x: ex.submit(square, x).result())


@contextlib.contextmanager
def cf_processes(workers: int) -> Iterator[tuple[Runner, Callable[[int], Any]]]:
    with concurrent.futures.ProcessPoolExecutor(workers) as ex:
        list(ex.map(square, range(workers * 2)))
        yield (lambda xs: list(ex.map(square, xs))), (lambda x: ex.submit(square, x).result())


@contextlib.contextmanager
def cf_threads(workers: int) -> Iterator[tuple[Runner, Callable[[int], Any]]]:
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        yield (lambda xs: list(ex.map(square, xs))), (lambda x: ex.submit(square, x).result())


@contextlib.contextmanager
def mp_pool(workers: int) -> Iterator[tuple[Runner, Callable[[int], Any]]]:
    with multiprocessing.Pool(workers) as pool:
        pool.map(square, range(workers * 2))
        yield (lambda xs: pool.map(square, xs)), (lambda x: pool.apply(square, (x,)))


@contextlib.contextmanager
def joblib_parallel(workers: int) -> Iterator[tuple[Runner, Callable[[int], Any]]]:
    import joblib

    with joblib.Parallel(n_jobs=workers) as parallel:
        parallel(joblib.delayed(square)(x) for x in range(workers * 2))
        yield (
            (lambda xs: parallel(joblib.delayed(square)(x) for x in xs)),
            (lambda x: parallel([joblib.delayed(square)(x)])[0]),
        )


@contextlib.contextmanager
def loky_executor(workers: int) -> Iterator[tuple[Runner, Callable[[int], Any]]]:
    import loky

    ex = loky.get_reusable_executor(max_workers=workers)
    list(ex.map(square, range(workers * 2)))
    try:
        yield (lambda xs: list(ex.map(square, xs))), (lambda x: ex.submit(square, x).result())
    finally:
        ex.shutdown(wait=True)


@contextlib.contextmanager
def mpire_pool(workers: int) -> Iterator[tuple[Runner, Callable[[int], Any]]]:
    import mpire

    with mpire.WorkerPool(n_jobs=workers, keep_alive=True) as pool:
        pool.map(square, range(workers * 2), progress_bar=False)
        yield (
            (lambda xs: pool.map(square, xs, progress_bar=False)),
            (lambda x: pool.apply(square, (x,))),
        )


@contextlib.contextmanager
def pebble_pool(workers: int) -> Iterator[tuple[Runner, Callable[[int], Any]]]:
    import pebble

    pool = pebble.ProcessPool(max_workers=workers)
    list(pool.map(square, range(workers * 2)).result())
    try:
        yield (
            (lambda xs: list(pool.map(square, xs).result())),
            (lambda x: pool.schedule(square, (x,)).result()),
        )
    finally:
        pool.stop()
        pool.join()


PEERS: dict[str, Callable[[int], Any]] = {
    "fermion processes": lambda w: fermion_pool("processes", w),
    "fermion threads": lambda w: fermion_pool("threads", w),
    "cf ProcessPoolExecutor": cf_processes,
    "cf ThreadPoolExecutor": cf_threads,
    "multiprocessing.Pool": mp_pool,
    "joblib": joblib_parallel,
    "loky": loky_executor,
    "mpire": mpire_pool,
    "pebble": pebble_pool,
}


# -- measuring and printing ---------------------------------------------------------


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def goal(text: str, ok: bool | None) -> None:
    mark = "n/a" if ok is None else ("PASS" if ok else "FAIL")
    print(f"- goal: {text}: **{mark}**")


def peers_to_run(only_fermion: bool) -> dict[str, Callable[[int], Any]]:
    return {k: v for k, v in PEERS.items() if k.startswith("fermion") or not only_fermion}


# -- the benchmarks -----------------------------------------------------------------


def b1(args: argparse.Namespace) -> None:
    n = 2_000 if args.quick else 100_000
    xs = list(range(n))
    expected = [x * x for x in xs]
    rates: dict[str, float] = {}
    for name, make in PEERS.items():
        try:
            with make(args.workers) as (run_map, _):
                if run_map(xs[:100]) != expected[:100]:
                    raise RuntimeError(f"{name} gave wrong results")
                rates[name] = n / median_time(lambda run_map=run_map: run_map(xs), args.repeats)
        except ImportError as exc:
            print(f"(skipped {name}: {exc})")
    ref = rates.get("fermion processes")
    rows = [
        [name, f"{rate:,.0f}", f"{rate / ref:.2f}" if ref else "-"]
        for name, rate in sorted(rates.items(), key=lambda kv: -kv[1])
    ]
    table(
        f"B1: {n:,} tiny tasks through map", ["peer", "tasks/s", "ratio to fermion processes"], rows
    )
    if ref:
        ppe, pool = rates.get("cf ProcessPoolExecutor"), rates.get("multiprocessing.Pool")
        goal(">= 10x ProcessPoolExecutor.map", ref >= 10 * ppe if ppe else None)
        goal(">= 2/3 of multiprocessing.Pool.map", ref >= pool * 2 / 3 if pool else None)


def b2(args: argparse.Namespace) -> None:
    # Every peer's pool is open at once and the calls go round in blocks, one block per
    # peer in turn: a quiet spell or a busy one on this shared machine falls on all
    # peers alike, instead of on whichever peer happened to run then.
    calls = 50 if args.quick else 2_000
    rounds = 2 if args.quick else 20
    block = calls // rounds
    times: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        submitters: dict[str, Callable[[int], Any]] = {}
        for name, make in PEERS.items():
            try:
                _, submitters[name] = stack.enter_context(make(args.workers))
            except ImportError as exc:
                print(f"(skipped {name}: {exc})")
        for round_ in range(rounds):
            for name, submit_one in submitters.items():
                measured = times.setdefault(name, [])
                for i in range(round_ * block, (round_ + 1) * block):
                    started = time.perf_counter()
                    submit_one(i)
                    measured.append(time.perf_counter() - started)
    latencies = {name: statistics.median(measured) for name, measured in times.items()}
    ref = latencies.get("fermion processes")
    rows = [
        [name, f"{lat * 1e6:,.0f}", f"{lat / ref:.2f}" if ref else "-"]
        for name, lat in sorted(latencies.items(), key=lambda kv: kv[1])
    ]
    table(
        f"B2: submit(...).result() one at a time, {calls:,} calls in {rounds} rounds",
        ["peer", "median µs", "ratio to fermion processes"],
        rows,
    )
    ppe = latencies.get("cf ProcessPoolExecutor")
    goal(
        "median round trip no slower than ProcessPoolExecutor's",
        ref <= ppe if ref and ppe else None,
    )


def b3(args: argparse.Namespace) -> None:
    tasks = 8 if args.quick else 64
    limit = calibrate_primes(0.02)
    inputs = [limit] * tasks
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()

    def timed(backend: str, workers: int) -> float:
        with fermion.Executor(backend, workers) as ex:
            ex.submit(count_primes, 100).result()
            return median_time(lambda: list(ex.map(count_primes, inputs)), args.repeats)

    serial = timed("serial", 1)
    rows = [["serial", "1", f"{serial:.3f}", "1.00"]]
    speedups: dict[str, float] = {}
    for backend in ("threads", "processes"):
        took = timed(backend, args.workers)
        speedups[backend] = serial / took
        rows.append([backend, str(args.workers), f"{took:.3f}", f"{serial / took:.2f}"])
    with concurrent.futures.ProcessPoolExecutor(args.workers) as ppe:
        list(ppe.map(count_primes, [100] * args.workers))
        took = median_time(lambda: list(ppe.map(count_primes, inputs)), args.repeats)
        rows.append(
            ["cf ProcessPoolExecutor", str(args.workers), f"{took:.3f}", f"{serial / took:.2f}"]
        )
    table(
        f"B3: {tasks} pure-Python CPU tasks of ~20 ms ({'GIL' if gil else 'free-threaded'} build, "
        f"Python {sys.version.split()[0]})",
        ["backend", "workers", "median s", "speedup over serial"],
        rows,
    )
    goal(f"processes >= 1.85x over serial on {args.workers} workers", speedups["processes"] >= 1.85)
    print(
        f"- threads speedup: {speedups['threads']:.2f}x ({'GIL: expect ~1x' if gil else 'no GIL: expect well above 1x'})"
    )


def b4(args: argparse.Namespace) -> None:
    n = 1_000 if args.quick else 10_000
    crash = die_at_500 if args.quick else die_at_5000
    xs = list(range(n))
    rows = []

    # fermion: imap with return_exceptions shows every item's outcome.
    with fermion.Executor("processes", args.workers) as ex:
        ex.submit(square, 1).result()
        started = time.perf_counter()
        list(ex.imap(spin_then_square, xs))
        clean = time.perf_counter() - started
        started = time.perf_counter()
        outcomes = list(ex.imap(crash, xs, return_exceptions=True))
        crashed = time.perf_counter() - started
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    results = len(outcomes) - len(errors)
    kinds = sorted({type(e).__name__ for e in errors})
    rows.append(
        [
            "fermion processes",
            f"{clean:.2f}",
            f"{crashed:.2f}",
            str(results),
            f"{len(errors)} {kinds}",
        ]
    )
    ok = results == n - 1 and len(errors) == 1 and isinstance(errors[0], fermion.WorkerCrashedError)

    # ProcessPoolExecutor: the whole pool breaks.
    with concurrent.futures.ProcessPoolExecutor(args.workers) as ppe:
        started = time.perf_counter()
        futures = [ppe.submit(crash, x) for x in xs]
        concurrent.futures.wait(futures, timeout=max(60.0, 10 * clean))
        took = time.perf_counter() - started
        good = sum(1 for f in futures if f.done() and not f.cancelled() and f.exception() is None)
        bad = sum(
            1 for f in futures if f.done() and not f.cancelled() and f.exception() is not None
        )
    rows.append(
        ["cf ProcessPoolExecutor", "-", f"{took:.2f}", str(good), f"{bad} (BrokenProcessPool)"]
    )

    # multiprocessing.Pool.map never returns when a worker dies: bounded wait.
    pool = multiprocessing.Pool(args.workers)
    try:
        started = time.perf_counter()
        pending = pool.map_async(crash, xs)
        try:
            pending.get(timeout=max(10.0, 4 * clean))
            state = "returned"
        except multiprocessing.TimeoutError:
            state = "hung (gave up)"
        rows.append(
            ["multiprocessing.Pool", "-", f"{time.perf_counter() - started:.2f}", "0", state]
        )
    finally:
        pool.terminate()
        pool.join()

    table(
        f"B4: {n:,}-task map, one task SIGKILLs its worker",
        ["peer", "clean run s", "run with crash s", "results", "errors"],
        rows,
    )
    goal(f"{n - 1:,} results + one WorkerCrashedError", ok)
    goal("within 2x of the clean run", crashed <= 2 * clean)


BENCHMARKS = {"B1": b1, "B2": b2, "B3": b3, "B4": b4}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny inputs, one repeat")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=None, help="default: 5, or 1 with --quick")
    parser.add_argument("--only", default="B1,B2,B3,B4", help="comma-separated benchmarks")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (1 if args.quick else 5)
    chosen = [b.strip().upper() for b in args.only.split(",") if b.strip()]
    unknown = [b for b in chosen if b not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHMARKS)}")
    print(
        f"# fermion executor benchmarks\n\nPython {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"{args.workers} workers, median of {args.repeats}{' (quick)' if args.quick else ''}"
    )
    for name in chosen:
        BENCHMARKS[name](args)


if __name__ == "__main__":
    main()
