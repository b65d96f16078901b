"""``fermion example``: the executor at work, serial vs threads vs processes, timed.

Two kinds of work, each run on three backends through the same ``fermion.Executor``:
CPU-bound pure Python (threads cannot help while the GIL is on; processes can) and
I/O-bound waiting (threads and processes both overlap the waits). Pools are started
before the clock starts, so the table compares running the work, not starting pools.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import click

from fermion._costs._platform import cpu_count, gil_enabled
from fermion.executors import Executor
from fermion.teach._workloads import calibrate_primes, count_primes, wait

__all__ = ["example_command"]


def _timed(backend: str, workers: int, fn: Callable[[Any], Any], inputs: list[Any]) -> float:
    with Executor(backend, workers) as executor:
        executor.submit(fn, inputs[0]).result()  # start the pool before the clock
        started = time.perf_counter()
        list(executor.map(fn, inputs))
        return time.perf_counter() - started


@click.command("example")
@click.option("--tasks", default=16, show_default=True, help="Tasks of each kind.")
@click.option("--task-ms", default=50, show_default=True, help="Milliseconds per task.")
@click.option("--workers", type=int, default=None, help="Workers per pool [default: CPUs].")
def example_command(tasks: int, task_ms: int, workers: int | None) -> None:
    """Time CPU-bound and I/O-bound work on serial, threads and processes."""
    if tasks < 1 or task_ms < 1:
        raise click.BadParameter("--tasks and --task-ms must be at least 1")
    cpus = cpu_count()
    workers = workers or cpus
    seconds = task_ms / 1000
    limit = calibrate_primes(seconds)
    gil = "GIL enabled" if gil_enabled() else "free-threaded, no GIL"
    click.echo(
        f"fermion example: {tasks} CPU-bound tasks (pure-Python prime counting, "
        f"~{task_ms} ms each)\nand {tasks} I/O-bound tasks (sleep {task_ms} ms each), "
        f"on Python {sys.version.split()[0]} ({gil}), {cpus} CPUs, {workers} workers.\n"
    )
    click.echo(f"  {'work':<10} {'backend':<10} {'workers':>7}  {'time':>8}  {'speedup':>7}")
    for kind, fn, arg in (
        ("CPU-bound", count_primes, limit),
        ("I/O-bound", wait, seconds),
    ):
        inputs = [arg] * tasks
        baseline = 0.0
        for backend in ("serial", "threads", "processes"):
            n = 1 if backend == "serial" else workers
            took = _timed(backend, n, fn, inputs)
            baseline = baseline or took
            speedup = baseline / took if took > 0 else float("inf")
            click.echo(f"  {kind:<10} {backend:<10} {n:>7}  {took:>6.2f} s  {speedup:>6.2f}x")
        click.echo("")
    click.echo(
        "Reading it: CPU-bound Python speeds up with processes (one interpreter each);\n"
        "threads help only without the GIL (3.13t). Waiting speeds up with both.\n"
        "Try: python -c 'import fermion; print(fermion.map(abs, range(-5, 5), backend=\"threads\"))'"
    )
