"""``fermion.measure.bench``: run one function over the same items on several backends
and worker counts, and record how long each run took and which worker ran each task."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fermion._costs._load import LoadMeter, MachineLoad
from fermion._costs._platform import cpu_count
from fermion.executors._base import describe_callable
from fermion.executors._executor import Executor
from fermion.executors._registry import backend_names

__all__ = ["BenchResult", "BenchRun", "TaskSpan", "bench"]


@dataclass(frozen=True)
class TaskSpan:
    """One call: which worker ran it (``worker``, numbered from 0 in order of first
    use), and when it started and ended (seconds from the start of the run)."""

    worker: int
    start: float
    end: float


@dataclass(frozen=True)
class BenchRun:
    """One backend at one worker count: total seconds, speedup over the serial run,
    and the timeline of its calls. ``chosen`` and ``reason``: what ``auto`` chose and
    why (auto only)."""

    backend: str
    workers: int
    seconds: float
    speedup: float
    spans: tuple[TaskSpan, ...] = field(repr=False)
    chosen: str | None = None
    reason: str | None = None

    @property
    def label(self) -> str:
        return self.backend if self.chosen is None else f"{self.backend} ({self.chosen})"


@dataclass(frozen=True)
class BenchResult:
    """All runs of a benchmark; ``str()`` gives the table, ``plot``/``timeline``/``html``
    draw it (they need the ``plot`` extra, matplotlib)."""

    function: str
    items: int
    baseline: float
    runs: tuple[BenchRun, ...]
    cpus: int
    #: What other programs took of the cores during the whole benchmark.
    load: MachineLoad | None = None

    def table(self) -> str:
        lines = [
            f"{self.function} over {self.items} items on {self.cpus} cores "
            f"(serial: {self.baseline:.3g} s)",
            f"{'backend':<24} {'workers':>7} {'seconds':>9} {'speedup':>8}",
        ]
        for run in self.runs:
            lines.append(
                f"{run.label:<24} {run.workers:>7} {run.seconds:>9.3f} {run.speedup:>7.2f}x"
            )
        for run in self.runs:
            if run.reason:
                lines.append(f"auto with {run.workers}: {run.reason}")
        if self.load is not None:
            lines.append(f"machine: {self.load.describe()}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def best(self) -> BenchRun:
        return max(self.runs, key=lambda run: run.speedup)

    def plot(self, path: str | os.PathLike[str]) -> None:
        """Speedup against workers, one line per backend, with the ideal line (PNG)."""
        from fermion.measure._plots import plot_speedup

        plot_speedup(self, path)

    def timeline(self, path: str | os.PathLike[str]) -> None:
        """Which worker ran each task when, for each backend's largest run (PNG)."""
        from fermion.measure._plots import plot_timeline

        plot_timeline(self, path)

    def html(self, path: str | os.PathLike[str]) -> None:
        """One self-contained HTML page: the table and both plots."""
        from fermion.measure._html import write_html

        write_html(self, path)


class _Recorded:
    """The benchmarked function, reporting where and when each call ran.

    A plain class so that cloudpickle can send it to worker processes;
    ``time.perf_counter`` reads a system-wide clock on Linux, macOS and Windows, so
    times from different processes line up.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, item: Any) -> tuple[str, float, float]:
        start = time.perf_counter()
        self.fn(item)
        end = time.perf_counter()
        return f"{os.getpid()}/{threading.get_ident()}", start, end


def _run(
    fn: Callable[..., Any], items: Sequence[Any], backend: str, workers: int
) -> tuple[float, list[tuple[str, float, float]], str | None, str | None]:
    recorded = _Recorded(fn)
    began = time.perf_counter()
    with Executor(backend, None if backend == "serial" else workers) as executor:
        marks = list(executor.map(recorded, items))
    seconds = time.perf_counter() - began
    chosen = reason = None
    choice = getattr(executor.backend, "choice", None)
    if backend == "auto":
        chosen = "still measuring" if choice is None else f"{choice.backend}, {choice.workers}"
        reason = None if choice is None else choice.reason
    return seconds, [(w, s - began, e - began) for w, s, e in marks], chosen, reason


def _spans(marks: list[tuple[str, float, float]]) -> tuple[TaskSpan, ...]:
    numbers: dict[str, int] = {}
    spans = []
    for worker, start, end in sorted(marks, key=lambda mark: mark[1]):
        number = numbers.setdefault(worker, len(numbers))
        spans.append(TaskSpan(number, start, end))
    return tuple(spans)


def bench(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    backends: Sequence[str] = ("serial", "threads", "processes"),
    workers: Sequence[int] = (1, 2, 4),
) -> BenchResult:
    """Run ``fn`` over ``items`` with ``Executor.map`` on each backend and worker count.

    A serial run is always made first: it is the baseline of every speedup. ``serial``
    runs once whatever ``workers`` says. Each run starts a fresh executor, so process
    start-up counts, as it would in a program. The results of ``fn`` are dropped.
    """
    if not callable(fn):
        raise TypeError(f"fermion bench needs a callable, got {type(fn).__name__}: {fn!r}")
    known = backend_names()
    unknown = [b for b in backends if b not in known]
    if unknown or not backends:
        raise ValueError(
            f"unknown backend(s) {unknown or backends!r} for bench; choose from {', '.join(known)}"
        )
    bad = [w for w in workers if not (isinstance(w, int) and w >= 1)]
    if bad or not workers:
        raise ValueError(f"bench worker counts must be positive integers, got {list(workers)!r}")
    data = list(items)
    if not data:
        raise ValueError("bench needs at least one item; got an empty iterable")
    meter = LoadMeter()
    meter.start()
    baseline, marks, _, _ = _run(fn, data, "serial", 1)
    runs = []
    if "serial" in backends:
        runs.append(BenchRun("serial", 1, baseline, 1.0, _spans(marks)))
    for backend in backends:
        if backend == "serial":
            continue
        for count in workers:
            seconds, marks, chosen, reason = _run(fn, data, backend, count)
            speedup = baseline / seconds if seconds > 0 else 0.0
            runs.append(BenchRun(backend, count, seconds, speedup, _spans(marks), chosen, reason))
    return BenchResult(
        function=describe_callable(fn),
        items=len(data),
        baseline=baseline,
        runs=tuple(runs),
        cpus=cpu_count(),
        load=meter.stop(),
    )
