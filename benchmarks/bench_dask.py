"""Benchmark of the dask backend, on one local Dask cluster shared by every contender.

D1  N tiny tasks (``x * x``): plain ``client.map`` + ``client.gather`` vs fermion's
    ``Executor(backend="dask").map`` on the same cluster (goal: fermion at least 20x
    the throughput: it sends one Dask task per chunk, not per item).
D2  A CPU-bound workload (pure-Python loops of about ``--cpu-ms`` each): serial in this
    process vs fermion's dask backend; the speedup over serial.

Run:  python benchmarks/bench_dask.py [--workers 2] [--json FILE]
      python benchmarks/bench_dask.py --quick     (a smoke test: seconds, numbers meaningless)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from typing import Any


def square(x: int) -> int:
    return x * x


def spin(iterations: int) -> int:
    """Pure-Python CPU work that holds the GIL."""
    total = 0
    for i in range(iterations):
        total += i * i % 7
    return total


def calibrate(target_seconds: float) -> int:
    """Iterations of ``spin`` that take about ``target_seconds`` here."""
    iterations = 10_000
    while True:
        started = time.perf_counter()
        spin(iterations)
        elapsed = time.perf_counter() - started
        if elapsed > 0.05:
            return max(1, int(iterations * target_seconds / elapsed))
        iterations *= 2


def best_of(repeats: int, run: Any) -> float:
    """The fastest of ``repeats`` runs of ``run()``, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--tiny", type=int, default=20_000, help="tasks in D1")
    parser.add_argument("--cpu-tasks", type=int, default=32, help="tasks in D2")
    parser.add_argument("--cpu-ms", type=float, default=100.0, help="milliseconds per D2 task")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.tiny, args.cpu_tasks, args.cpu_ms, args.repeats = 500, 4, 20.0, 1

    try:
        import distributed
    except ImportError:
        print("bench_dask needs the dask extra: pip install 'fermion[dask]'", file=sys.stderr)
        return 2
    from fermion import Executor

    results: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "workers": args.workers,
        "quick": args.quick,
    }
    with (
        distributed.LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
        Executor(backend="dask", address=cluster.scheduler_address) as executor,
    ):
        items = list(range(args.tiny))
        expected = [x * x for x in items]

        def plain() -> None:
            got = client.gather(client.map(square, items, pure=False))
            if got != expected:
                raise AssertionError("client.map gave wrong results")

        def fermion_map() -> None:
            if list(executor.map(square, items)) != expected:
                raise AssertionError("fermion gave wrong results")

        fermion_map()  # warm up: workers import fermion, the chunk planner learns
        plain_s = best_of(args.repeats, plain)
        fermion_s = best_of(args.repeats, fermion_map)
        results["D1"] = {
            "tasks": args.tiny,
            "client_map_tasks_per_s": args.tiny / plain_s,
            "fermion_tasks_per_s": args.tiny / fermion_s,
            "ratio": plain_s / fermion_s,
        }

        iterations = calibrate(args.cpu_ms / 1000)
        work = [iterations] * args.cpu_tasks
        serial_s = best_of(args.repeats, lambda: [spin(n) for n in work])
        dask_s = best_of(args.repeats, lambda: list(executor.map(spin, work)))
        results["D2"] = {
            "tasks": args.cpu_tasks,
            "ms_per_task": args.cpu_ms,
            "serial_s": serial_s,
            "fermion_dask_s": dask_s,
            "speedup": serial_s / dask_s,
        }

    d1, d2 = results["D1"], results["D2"]
    print(f"python {results['python']} on {results['machine']}, {args.workers} Dask workers")
    print(f"D1 {d1['tasks']} tiny tasks")
    print(f"   client.map        {d1['client_map_tasks_per_s']:>12,.0f} tasks/s")
    print(f"   fermion dask map  {d1['fermion_tasks_per_s']:>12,.0f} tasks/s")
    print(f"   ratio             {d1['ratio']:>12.1f}x   (goal >= 20x)")
    print(f"D2 {d2['tasks']} CPU tasks of ~{d2['ms_per_task']:g} ms")
    print(f"   serial            {d2['serial_s']:>12.3f} s")
    print(f"   fermion dask      {d2['fermion_dask_s']:>12.3f} s")
    print(f"   speedup           {d2['speedup']:>12.2f}x  (on {args.workers} workers)")
    if args.quick:
        print("(--quick: a smoke test; the numbers mean nothing)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
