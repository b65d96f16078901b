"""Section 1: threads vs processes, on CPU-bound and on I/O-bound work.

The same two functions run on ``serial``, ``threads`` and ``processes`` through one
``fermion.Executor``, at several worker counts. Each pool is started and warmed up
before the clock starts (its start-up is shown apart), and the GIL load is measured
while the serial and thread runs go: CPU-bound Python code holds the GIL nearly all
the time, so threads take turns; waiting code hardly holds it, so threads overlap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import fermion
from fermion.measure import MachineLoad
from fermion.teach import _workloads
from fermion.teach.tour._machine import cpu_count
from fermion.teach.tour._section import SectionResult, TourContext

__all__ = ["Run", "Workload", "run"]

KEY = "scaling"
TITLE = "Threads vs processes: CPU-bound and I/O-bound work"
EXERCISE = "Change the CPU-bound limit or the worker counts in this section's notebook cell and run it again; then run the I/O-bound work on 64 threads. Where do threads stop helping, and why not processes?"


@dataclass(frozen=True)
class Workload:
    """One kind of work: a function, its items, and the worker counts to try on
    threads and on processes."""

    key: str
    label: str
    fn: Callable[[Any], Any]
    items: list[Any]
    thread_counts: tuple[int, ...]
    process_counts: tuple[int, ...]


@dataclass(frozen=True)
class Run:
    """One backend at one worker count: pool start-up and run seconds, speedup over
    serial, and the share of the run the GIL was held (None where not measured)."""

    workload: str
    backend: str
    workers: int
    start_seconds: float
    seconds: float
    speedup: float
    gil_held: float | None
    others: float = 0.0  # cores other programs kept busy during the run
    busy: bool = False  # enough to lower the speedup (fermion.measure.MachineLoad)


def workloads(quick: bool) -> list[Workload]:
    """The CPU-bound and the I/O-bound workload, sized for the quick or the full tour.

    CPU-bound work is tried up to the core count (and 4 in the full tour, to show that
    more workers than cores gain nothing); waiting work on more threads than cores.
    Process pools stay small in the quick tour: each worker costs a start-up."""
    cpus = cpu_count()
    cpu_counts = tuple(sorted({1, 2, min(max(cpus, 2), 8)} | (set() if quick else {4})))
    limit = _workloads.calibrate_primes(0.05 if quick else 0.1)
    cpu_items = [limit] * (8 if quick else 16)
    io_seconds, io_items = (0.02, 16) if quick else (0.05, 32)
    return [
        Workload(
            "cpu",
            f"CPU-bound: count_primes({limit}) x {len(cpu_items)} (pure Python)",
            _workloads.count_primes,
            cpu_items,
            cpu_counts,
            cpu_counts,
        ),
        Workload(
            "io",
            f"I/O-bound: wait({io_seconds}) x {io_items} (sleeps, like a network call)",
            _workloads.wait,
            [io_seconds] * io_items,
            (1, 2, 4, 8) if quick else (1, 2, 4, 8, 16),
            (1, 2) if quick else (1, 2, 4),
        ),
    ]


def _timed_map(
    ctx: TourContext,
    backend: str,
    workers: int | None,
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    gil: bool,
) -> tuple[float, float, float | None, MachineLoad]:
    """Start a pool, warm it up, then time ``map``: (start seconds, run seconds, GIL
    held, what other programs took of the cores during the run)."""
    meter = ctx.load_meter()
    began = time.perf_counter()
    with fermion.Executor(backend, workers) as executor:
        if backend != "serial":
            # One short sleep per worker, so every worker is up before the clock starts.
            list(executor.map(_workloads.pause, [0.05] * executor.workers, chunksize=1))
        meter.start()
        started = time.perf_counter()
        held: float | None = None
        if gil:
            with fermion.gil_load() as gil_load:
                list(executor.map(fn, items))
            seconds = time.perf_counter() - started
            held = gil_load.held if gil_load.gil_enabled else None
        else:
            list(executor.map(fn, items))
            seconds = time.perf_counter() - started
        load = meter.stop()
    return started - began, seconds, held, load


def _table(runs: list[Run]) -> str:
    lines = [
        f"{'backend':<10} {'workers':>7} {'pool start':>10} {'run':>8} {'speedup':>8} "
        f"{'GIL held':>9} {'other programs':>15}"
    ]
    for r in runs:
        held = "-" if r.gil_held is None else f"{r.gil_held:.0%}"
        start = "-" if r.backend == "serial" else f"{r.start_seconds:.2f} s"
        lines.append(
            f"{r.backend:<10} {r.workers:>7} {start:>10} {r.seconds:>6.2f} s {r.speedup:>7.2f}x "
            f"{held:>9} {r.others:>9.1f} cores{' (busy)' if r.busy else ''}"
        )
    return "\n".join(lines)


def _draw(results: dict[str, tuple[Workload, list[Run]]]) -> Callable[[Any], None]:
    def draw(figure: Any) -> None:
        axes_list = figure.subplots(1, len(results), squeeze=False)[0]
        for axes, (workload, runs) in zip(axes_list, results.values(), strict=False):
            counts = sorted({r.workers for r in runs})
            axes.plot(counts, counts, linestyle="--", color="grey", label="ideal")
            axes.axhline(1.0, color="black", linewidth=0.8, label="serial")
            for backend, colour in (("threads", "tab:blue"), ("processes", "tab:orange")):
                mine = sorted((r for r in runs if r.backend == backend), key=lambda r: r.workers)
                if mine:
                    axes.plot(
                        [r.workers for r in mine],
                        [r.speedup for r in mine],
                        marker="o",
                        linewidth=2,
                        color=colour,
                        label=backend,
                    )
            axes.set_xscale("log", base=2)
            axes.set_xticks(counts)
            axes.set_xticklabels([str(c) for c in counts])
            axes.set_xlabel("workers")
            axes.set_ylabel("speedup over serial")
            axes.set_title(workload.label.split(":")[0], fontsize=11)
            axes.grid(True, alpha=0.3)
            axes.legend(fontsize=9)
        figure.suptitle(f"Speedup on {cpu_count()} cores (pool start-up not counted)")

    return draw


def run(ctx: TourContext, section: SectionResult) -> None:
    """Run both workloads on every backend and worker count; table, plot and GIL load."""
    cpus = cpu_count()
    section.say(
        f"The same function on serial, threads and processes, on {cpus} cores. Pools are "
        "started and warmed up before the clock starts; their start-up is shown apart. "
        "The GIL load is measured (fermion.gil_load) while the serial and thread runs go, and "
        "what other programs take of the cores (fermion.machine_load) while every run goes."
    )
    ctx.progress("calibrating the CPU-bound task")
    results: dict[str, tuple[Workload, list[Run]]] = {}
    for workload in workloads(ctx.quick):
        runs: list[Run] = []
        try:
            ctx.progress(f"{workload.key}: serial")
            _, baseline, held, load = _timed_map(
                ctx, "serial", None, workload.fn, workload.items, True
            )
            runs.append(
                Run(workload.key, "serial", 1, 0.0, baseline, 1.0, held, load.others, load.busy)
            )
        except Exception as error:
            section.fail(f"{workload.key} on serial", error)
            continue
        for backend, counts in (
            ("threads", workload.thread_counts),
            ("processes", workload.process_counts),
        ):
            for count in counts:
                ctx.progress(f"{workload.key}: {backend} x {count}")
                try:
                    start, seconds, held, load = _timed_map(
                        ctx, backend, count, workload.fn, workload.items, backend == "threads"
                    )
                except Exception as error:
                    section.fail(f"{workload.key} on {backend} with {count} workers", error)
                    continue
                speedup = baseline / seconds if seconds > 0 else 0.0
                runs.append(
                    Run(
                        workload.key,
                        backend,
                        count,
                        start,
                        seconds,
                        speedup,
                        held,
                        load.others,
                        load.busy,
                    )
                )
        results[workload.key] = (workload, runs)
        if workload.key == "cpu":
            section.data["cpu_limit"] = workload.items[0]
        section.say(workload.label)
        section.show(_table(runs))
        busy = [r for r in runs if r.busy]
        if busy:
            worst = max(busy, key=lambda r: r.others)
            who = "another program" if worst.others < 1.5 else "other programs"
            section.say(
                f"Busy machine: {who} used up to {worst.others:.1f} of {cpu_count()} cores during "
                f"{len(busy)} of these {len(runs)} runs (marked busy): the speedups above are "
                "lower than this machine can give."
            )
    section.data["runs"] = [asdict(r) for _, runs in results.values() for r in runs]
    conclusions = []
    if "cpu" in results:
        runs = results["cpu"][1]
        best_threads = max((r.speedup for r in runs if r.backend == "threads"), default=0.0)
        best_processes = max((r.speedup for r in runs if r.backend == "processes"), default=0.0)
        serial_held = next((r.gil_held for r in runs if r.backend == "serial"), None)
        gil = (
            "there is no GIL here (free-threaded build), so threads run Python in parallel"
            if serial_held is None
            else f"the GIL was held {serial_held:.0%} of the serial run, so threads take turns"
        )
        conclusions.append(
            f"CPU-bound: threads reach {best_threads:.2f}x and processes {best_processes:.2f}x; {gil}."
        )
    if "io" in results:
        runs = results["io"][1]
        best = max(
            (r for r in runs if r.backend == "threads"), key=lambda r: r.speedup, default=None
        )
        io_held = next((r.gil_held for r in runs if r.backend == "serial"), None)
        held_text = "" if io_held is None else f", the GIL was held only {io_held:.0%} of the time"
        if best is not None:
            conclusions.append(
                f"I/O-bound: {best.workers} threads reach {best.speedup:.2f}x{held_text}: waiting "
                "needs no core, so threads beyond the core count still help, and cost less than processes."
            )
    for line in conclusions:
        section.say(line)
    if results:
        ctx.save_plot(
            section,
            "scaling.png",
            "Speedup over serial against workers: CPU-bound (left) and I/O-bound (right).",
            _draw(results),
        )
