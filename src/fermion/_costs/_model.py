"""What each backend would do for a task of measured cost: a small, pure cost model.

Given how long one call takes, how much of that is CPU and how much of it holds the
GIL, and what it costs to send the call to another process, the model predicts the
speedup over serial of every backend and worker count, chooses one, and says why in
plain words. ``fermion.advise`` feeds it a profile; the ``auto`` backend feeds it the
first tasks it ran. No clocks and no threads here: tests drive it with numbers.

The model is a bottleneck analysis. With ``n`` workers on ``k`` cores a backend runs at
most ``n`` calls at once; CPU work can use at most ``k`` cores; GIL-holding work runs
one thread at a time (so threads reach at most ``1/gil_held`` calls in parallel);
processes also pay for starting workers and for pickling every argument and result,
and the parent pickles alone, one call after another.

A ``map`` sends its calls in chunks, and a pool pays the hand-off once per chunk: what
counts is the chunk's cost (calls per chunk times the call's cost) against the
hand-off, not the single call's. The caller still takes every result: one by one from
``submit`` (a future each), at list speed from a chunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["Advice", "Machine", "Option", "TaskCost", "predict_speedup", "recommend"]

BACKENDS = ("serial", "threads", "processes")

#: A backend is chosen over serial only when it promises at least this speedup, so that
#: a wrong prediction costs little: a pool that gains less is not worth its risk.
MIN_GAIN = 1.15
#: Processes are chosen over threads only when they promise this much more.
PROCESS_MARGIN = 1.10
#: Chunks are sized so that per-chunk overhead stays below this share of the work.
CHUNK_OVERHEAD_SHARE = 0.05
#: The most threads the model considers (waiting work): ThreadPoolExecutor's cap too.
MAX_THREADS = 32
#: Workers beyond the point where the speedup stops growing by this factor are not worth it.
ENOUGH = 0.95


@dataclass(frozen=True)
class TaskCost:
    """The measured cost of one call (one item).

    ``wall``: seconds per call. ``cpu``: CPU seconds per call, all threads together.
    ``gil_held``: fraction of ``wall`` the call holds the GIL (0 where there is none).
    ``transfer``: seconds to pickle and unpickle its arguments and result, both ways.
    ``transfer_bytes``: size of the pickled arguments and result. ``picklable``: False
    when the function, an argument or the result cannot be pickled.
    """

    wall: float
    cpu: float
    gil_held: float
    transfer: float = 0.0
    transfer_bytes: int = 0
    picklable: bool = True

    def __post_init__(self) -> None:
        for name in ("wall", "cpu", "transfer"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"TaskCost.{name} must be a finite number >= 0, not {value!r}")
        if not 0.0 <= self.gil_held <= 1.0:
            raise ValueError(f"TaskCost.gil_held is a fraction in [0, 1], not {self.gil_held!r}")

    @property
    def waiting(self) -> float:
        """Fraction of the call spent neither computing nor holding the GIL (I/O, sleep)."""
        if self.wall <= 0:
            return 0.0
        return min(1.0, max(0.0, 1.0 - self.cpu / self.wall))


@dataclass(frozen=True)
class Machine:
    """Where the work runs, and the fixed costs of each backend.

    ``thread_dispatch`` and ``process_dispatch`` are the seconds a pool spends on one
    task (one chunk) besides the call itself; ``process_startup`` is the seconds to start
    one worker process, ``thread_startup`` one thread; ``item_overhead`` the seconds the
    caller spends on each result that comes on its own (a future: ``submit``), and
    ``chunk_item_overhead`` on each result of a chunk (``map`` hands a chunk's results
    over as one list: iterating and freeing them costs tens of nanoseconds each).
    Neither can be parallelised. Defaults are typical of a Linux laptop; ``profile``
    measures the start-up cost. ``startup_overlapped``: the calls run in this process,
    one at a time, until the pool's workers are ready (``auto``): its start-up costs
    only the calls not done by then, and nothing if they are all done first.
    """

    cpus: int
    gil: bool = True
    process_startup: float = 0.3
    thread_dispatch: float = 30e-6
    process_dispatch: float = 200e-6
    item_overhead: float = 1e-6
    chunk_item_overhead: float = 0.05e-6
    thread_startup: float = 100e-6
    startup_overlapped: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.cpus, int) and self.cpus >= 1):
            raise ValueError(f"Machine.cpus must be a positive integer, not {self.cpus!r}")


@dataclass(frozen=True)
class Option:
    """One way to run the work and what the model predicts for it."""

    backend: str
    workers: int
    chunksize: int
    speedup: float
    seconds: float

    def __str__(self) -> str:
        plural = "s" if self.workers != 1 else ""
        return (
            f"{self.backend:<10} {self.workers:>3} worker{plural:<1}  chunksize {self.chunksize:<6}"
            f" predicted {self.speedup:5.2f}x  ({_seconds(self.seconds)})"
        )


@dataclass(frozen=True)
class Advice:
    """The recommendation: a backend, a worker count and a chunk size, with the reasons.

    ``options`` holds the best worker count of every backend that can run the work,
    ``reasons`` the findings in plain words, ``cost`` what the advice rests on, and
    ``profile`` the measurements (when ``fermion.advise`` made it).
    """

    backend: str
    workers: int
    chunksize: int
    speedup: float
    reasons: tuple[str, ...]
    options: tuple[Option, ...]
    cost: TaskCost
    items: int
    all_options: tuple[Option, ...] = field(default=(), repr=False)
    #: The ``fermion.profile`` result behind the advice (``advise`` only).
    profile: Any = field(default=None, repr=False)

    @property
    def reason(self) -> str:
        """All reasons in one line."""
        return "; ".join(self.reasons)

    def __str__(self) -> str:
        plural = "s" if self.workers != 1 else ""
        # The profile's numbers, not its own verdict: the reasons below are the verdict.
        lines = [] if self.profile is None else [self.profile.describe(verdict=False), ""]
        lines += [
            f"Recommended: backend={self.backend!r}, workers={self.workers}, "
            f"chunksize={self.chunksize} (predicted {self.speedup:.2f}x over serial "
            f"for {self.items} item{'s' if self.items != 1 else ''}, {self.workers} worker{plural})",
            "Why:",
            *(f"  - {reason}" for reason in self.reasons),
            "Options:",
            *(f"  {option}" for option in self.options),
        ]
        return "\n".join(lines)


def _seconds(value: float) -> str:
    if value >= 1:
        return f"{value:.3g} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} µs"


def _workers(count: int) -> str:
    return f"{count} worker{'s' if count != 1 else ''}"


def _chunksize(cost: TaskCost, dispatch: float, items: int, workers: int) -> int:
    """Enough calls per chunk to keep dispatch below its share, while leaving about four
    chunks per worker so that all workers stay busy to the end."""
    wanted = math.ceil(dispatch / (CHUNK_OVERHEAD_SHARE * cost.wall)) if cost.wall > 0 else items
    balanced = max(1, items // (4 * workers))
    return max(1, min(wanted, balanced))


def _collect(machine: Machine, items: int, chunk: int) -> float:
    """Seconds the caller spends taking ``items`` results in chunks of ``chunk``."""
    per_item = machine.item_overhead if chunk == 1 else machine.chunk_item_overhead
    return items * per_item


def _effective(cost: TaskCost, machine: Machine) -> TaskCost:
    """The cost as the model uses it: calls shorter than handing one to a thread are
    counted as pure CPU (clocks are too coarse to see waiting in a few microseconds)."""
    if cost.wall < machine.thread_dispatch and cost.cpu < cost.wall:
        return replace(cost, cpu=cost.wall)
    return cost


def _parallelism(cost: TaskCost, machine: Machine, workers: int, *, shares_gil: bool) -> float:
    limit = float(workers)
    if cost.cpu > 0:
        limit = min(limit, machine.cpus * cost.wall / cost.cpu)
    if shares_gil and machine.gil and cost.gil_held > 0:
        limit = min(limit, 1.0 / cost.gil_held)
    return max(limit, 1e-9)


def predict_option(
    cost: TaskCost,
    machine: Machine,
    backend: str,
    workers: int,
    items: int,
    chunksize: int | None = None,
) -> Option | None:
    """The predicted run of ``items`` calls on one backend, or None if it cannot run them.

    ``chunksize`` fixes how many calls travel together (1 for ``submit``); None lets the
    model size chunks as ``map`` would."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; the model knows {', '.join(BACKENDS)}")
    if not (isinstance(workers, int) and workers >= 1):
        raise ValueError(f"workers must be a positive integer, not {workers!r}")
    if not (isinstance(items, int) and items >= 1):
        raise ValueError(f"items must be a positive integer, not {items!r}")
    cost = _effective(cost, machine)
    serial_seconds = items * cost.wall
    if backend == "serial":
        return Option("serial", 1, items, 1.0, serial_seconds)
    # Every result passes through the caller, whatever the backend: a pool cannot go
    # faster than the caller takes them.
    if backend == "threads":
        chunk = chunksize or _chunksize(cost, machine.thread_dispatch, items, workers)
        parallel = _parallelism(cost, machine, workers, shares_gil=True)
        seconds = (
            workers * machine.thread_startup
            + max(serial_seconds / parallel, _collect(machine, items, chunk))
            + math.ceil(items / chunk) * machine.thread_dispatch
        )
    else:
        if not cost.picklable:
            return None
        chunk = chunksize or _chunksize(cost, machine.process_dispatch, items, workers)
        parallel = _parallelism(cost, machine, workers, shares_gil=False)
        half = cost.transfer / 2  # unpickling the arguments, pickling the result
        startup = machine.process_startup * math.ceil(workers / machine.cpus)
        each = cost.wall + half  # one call in a worker
        sent = items
        compute = items * each / parallel
        if machine.startup_overlapped and cost.wall > 0:
            sent = max(0, items - int(startup / cost.wall))  # the rest ran here meanwhile
            if sent == 0:
                return Option("processes", workers, chunk, 1.0, serial_seconds)
            # A core ran the calls here: the workers for the others started first, and
            # the last ones start only then, another start-up.
            first = max(1, min(workers, machine.cpus - 1))
            early = min(sent, int(startup * first / each)) if first < workers else 0
            compute = (early * each / first) + (sent - early) * each / parallel
        parent = (
            sent * half
            + _collect(machine, sent, chunk)
            + math.ceil(sent / chunk) * machine.process_dispatch
        )
        seconds = startup + max(compute, parent)
    seconds = max(seconds, 1e-12)
    speedup = serial_seconds / seconds if serial_seconds > 0 else 0.0
    return Option(backend, workers, chunk, speedup, seconds)


def predict_speedup(
    cost: TaskCost,
    machine: Machine,
    backend: str,
    workers: int,
    items: int,
    chunksize: int | None = None,
) -> float:
    """Predicted speedup over serial (0.0 where the backend cannot run the work)."""
    option = predict_option(cost, machine, backend, workers, items, chunksize)
    return option.speedup if option is not None else 0.0


def _worker_counts(backend: str, machine: Machine, items: int, cost: TaskCost) -> list[int]:
    counts = set(range(1, machine.cpus + 1))
    if backend == "threads":
        # Threads that mostly wait can usefully outnumber the cores.
        counts |= {2**i for i in range(MAX_THREADS.bit_length())}
    return sorted(n for n in counts if n <= max(1, items))


def _best(options: list[Option]) -> Option:
    top = max(option.speedup for option in options)
    return min((o for o in options if o.speedup >= ENOUGH * top), key=lambda o: o.workers)


def recommend(
    cost: TaskCost,
    machine: Machine,
    items: int,
    *,
    workers: int | None = None,
    chunksize: int | None = None,
    backends: tuple[str, ...] = BACKENDS,
) -> Advice:
    """Choose how to run ``items`` calls of cost ``cost`` on ``machine``.

    ``workers`` fixes the worker count of the pools (None: the model chooses);
    ``chunksize`` fixes the calls sent together (None: the model sizes chunks);
    ``backends`` limits the choice. The result lists each backend's best option.
    """
    if chunksize is not None and not (isinstance(chunksize, int) and chunksize >= 1):
        raise ValueError(f"chunksize must be a positive integer or None, not {chunksize!r}")
    if not (isinstance(items, int) and items >= 1):
        raise ValueError(f"advice needs at least one item, got items={items!r}")
    if workers is not None and not (isinstance(workers, int) and workers >= 1):
        raise ValueError(f"workers must be a positive integer or None, not {workers!r}")
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        raise ValueError(f"backends must be chosen from {', '.join(BACKENDS)}; got {backends!r}")
    every: list[Option] = []
    best_of: dict[str, Option] = {}
    for backend in backends:
        if backend == "serial":
            counts = [1]
        elif workers is not None:
            counts = [workers]
        else:
            counts = _worker_counts(backend, machine, items, cost)
        options = [
            o for n in counts if (o := predict_option(cost, machine, backend, n, items, chunksize))
        ]
        every.extend(options)
        if options:
            best_of[backend] = _best(options)
    chosen = _choose(best_of)
    reasons = _reasons(cost, machine, items, best_of, chosen)
    return Advice(
        backend=chosen.backend,
        workers=chosen.workers,
        chunksize=chosen.chunksize,
        speedup=chosen.speedup,
        reasons=tuple(reasons),
        options=tuple(best_of[b] for b in BACKENDS if b in best_of),
        cost=cost,
        items=items,
        all_options=tuple(every),
    )


def _choose(best_of: dict[str, Option]) -> Option:
    serial = best_of.get("serial")
    threads = best_of.get("threads")
    processes = best_of.get("processes")
    pools = [o for o in (threads, processes) if o is not None]
    if not pools:
        if serial is None:
            raise ValueError("no backend can run this work")
        return serial
    if threads is not None and processes is not None:
        pool = processes if processes.speedup >= PROCESS_MARGIN * threads.speedup else threads
    else:
        pool = pools[0]
    if serial is not None and pool.speedup < MIN_GAIN:
        return serial
    return pool


def _reasons(
    cost: TaskCost,
    machine: Machine,
    items: int,
    best_of: dict[str, Option],
    chosen: Option,
) -> list[str]:
    reasons: list[str] = []
    call = _seconds(cost.wall)
    smallest = min(machine.thread_dispatch, machine.process_dispatch)
    waiting = _effective(cost, machine).waiting
    if cost.wall < smallest:
        chunked = best_of.get("threads")
        if not machine.gil and chosen.backend == "threads":
            reasons.append(
                "free-threaded build (no GIL): threads run the chunks of Python calls in parallel"
            )
        elif machine.gil and cost.gil_held >= 0.5 and chunked and chunked.chunksize > 1:
            reasons.append("with the GIL, threads would run the chunks of Python calls in turn")
        # and handing calls this small over one by one decides it, see below
    elif waiting >= 0.5 and (not machine.gil or cost.gil_held < 0.5):
        held = f" and holds the GIL only {cost.gil_held:.0%}" if machine.gil else ""
        reasons.append(
            f"waits {waiting:.0%} of the time (I/O or sleep){held}: threads overlap the waiting"
        )
    elif not machine.gil:
        reasons.append("free-threaded build (no GIL): threads run Python code in parallel")
    elif cost.gil_held >= 0.5:
        reasons.append(f"holds the GIL {cost.gil_held:.0%} of the time: threads cannot help")
    elif cost.cpu > 0:
        reasons.append(
            f"computes without the GIL {1 - cost.gil_held:.0%} of the time (e.g. NumPy): "
            "threads run in parallel and share memory"
        )
    threads = best_of.get("threads")
    if threads is not None and threads.workers > machine.cpus and chosen is threads:
        reasons.append(
            f"{threads.workers} threads for {machine.cpus} cores: waiting threads need no core"
        )
    gil_bound = machine.gil and cost.gil_held >= 0.5
    if not cost.picklable:
        reasons.append("the function, an argument or the result cannot be pickled: no processes")
    elif "processes" in best_of:
        send = cost.transfer + machine.process_dispatch
        if cost.transfer_bytes >= 64 * 1024 and cost.transfer >= 0.25 * cost.wall:
            reasons.append(
                f"sending a task to a process costs {_seconds(send)} "
                f"({cost.transfer_bytes / 1e6:.3g} MB pickled) for {call} of work: processes "
                "would spend their time copying"
            )
        elif (gil_bound or chosen.backend == "processes") and cost.wall >= send:
            reasons.append(
                f"each task takes {call}, {cost.wall / send:.0f}x the cost of sending it to a "
                f"process ({_seconds(send)})"
            )
    if cost.wall < smallest:
        handing = f"each task takes {call}, less than the {_seconds(smallest)} it costs to hand one to a worker"
        if chosen.backend == "serial":
            reasons.append(f"{handing}: serial")
        else:
            reasons.append(
                f"{handing}: chunks of {chosen.chunksize} calls "
                f"({_seconds(chosen.chunksize * cost.wall)} of work each) amortise that"
            )
    processes = best_of.get("processes")
    little = (1 if machine.startup_overlapped else 2) * machine.process_startup
    if processes is not None and items * cost.wall < little:
        reasons.append(
            f"all {items} items take {_seconds(items * cost.wall)} in total, little next to "
            f"starting a process pool ({_seconds(machine.process_startup)})"
        )
    if chosen.backend == "serial":
        best_pool = max(
            (o for o in best_of.values() if o.backend != "serial"),
            key=lambda o: o.speedup,
            default=None,
        )
        if best_pool is not None:
            reasons.append(
                f"the best pool ({best_pool.backend}, {_workers(best_pool.workers)}) promises only "
                f"{best_pool.speedup:.2f}x: serial is simpler and safe"
            )
    else:
        reasons.append(
            f"{chosen.backend} with {_workers(chosen.workers)}: predicted "
            f"{chosen.speedup:.2f}x over serial"
        )
    return reasons
