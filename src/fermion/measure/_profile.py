"""``fermion.profile``: what one call of a function costs, and what kind of work it is.

It calls the function several times (so the function should be safe to repeat):
one after another with a GIL probe running, then in two threads at once, and pickles
its arguments and result as the processes backend would.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fermion._costs._cost import RunQueueClock, pickle_cost, timed_call
from fermion._costs._gil import gil_load
from fermion._costs._model import Machine, TaskCost, _seconds
from fermion._costs._platform import cpu_count, free_threaded
from fermion.executors._base import describe_callable
from fermion.measure._startup import worker_startup_seconds

__all__ = ["Profile", "profile"]

#: Keep calling until the calls have taken this long (so the GIL probe sees enough)...
MIN_SECONDS = 0.1
#: ...but stop after this much time.
MAX_SECONDS = 1.0
#: At most this many calls in each thread of the two-thread run.
MAX_CALLS = 100_000
#: Skip the two-thread run for calls slower than this (it would take twice as long).
MAX_THREAD_TEST_SECONDS = 2.0
#: A call holding the GIL at least this share of its time "holds the GIL".
HOLDS_GIL = 0.5


@dataclass(frozen=True)
class Profile:
    """One function's cost, measured on this machine.

    Times are seconds per call (medians). ``waiting``: share of the wall time not spent
    on a CPU (I/O, sleep, locks). ``gil_held``: share of the wall time the call held the
    GIL, or None on a free-threaded build without one. ``thread_speedup``: how much
    faster two calls ran in two threads than one after the other (about 1 for code that
    holds the GIL, about 2 for code that waits or releases it, None when not measured).
    ``args_*``/``result_*``: pickled size and seconds to pickle plus unpickle;
    ``pickle_error`` says what could not be pickled. ``worker_startup``: seconds to
    start one worker process. ``machine_busy``: share of the calls' time they were ready
    to run but waited for a core (other programs); ``wall`` leaves that time out.
    """

    function: str
    calls: int
    wall: float
    cpu: float
    gil_held: float | None
    thread_speedup: float | None
    args_bytes: int
    args_seconds: float
    result_bytes: int
    result_seconds: float
    pickle_error: str | None
    worker_startup: float | None
    cpus: int
    machine_busy: float = 0.0

    @property
    def waiting(self) -> float:
        return self.cost.waiting

    @property
    def free_threaded(self) -> bool:
        return self.gil_held is None

    @property
    def holds_gil(self) -> bool:
        """True when the call holds the GIL most of its time (threads cannot help it)."""
        return self.gil_held is not None and self.gil_held >= HOLDS_GIL

    @property
    def kind(self) -> str:
        """``"io"`` (mostly waiting), ``"cpu-gil"`` (Python code holding the GIL) or
        ``"cpu"`` (computing without the GIL: NumPy, or any code on a free-threaded build)."""
        if self.waiting >= 0.5 and not self.holds_gil:
            return "io"
        return "cpu-gil" if self.holds_gil else "cpu"

    @property
    def cost(self) -> TaskCost:
        """The numbers the cost model (``advise``, ``auto``) works from."""
        return TaskCost(
            wall=self.wall,
            cpu=self.cpu,
            gil_held=self.gil_held or 0.0,
            transfer=self.args_seconds + self.result_seconds,
            transfer_bytes=self.args_bytes + self.result_bytes,
            picklable=self.pickle_error is None,
        )

    def machine(self) -> Machine:
        """This machine as the cost model sees it, with the measured worker start-up."""
        if self.worker_startup is None:
            return Machine(cpus=self.cpus, gil=not self.free_threaded)
        return Machine(
            cpus=self.cpus, gil=not self.free_threaded, process_startup=self.worker_startup
        )

    def __str__(self) -> str:
        return self.describe()

    def describe(self, *, verdict: bool = True) -> str:
        """The table of measurements; ``verdict``: with the one-line conclusion."""
        kinds = {
            "io": "mostly waiting (I/O, sleep): threads overlap it",
            "cpu-gil": "computing Python code that holds the GIL: only processes run it in parallel",
            "cpu": "computing without holding the GIL: threads run it in parallel",
        }
        cpu_share = self.cpu / self.wall if self.wall > 0 else 0.0
        if self.gil_held is None:
            gil = "none (free-threaded build)"
        else:
            gil = f"held {self.gil_held:.0%} of the time"
        speedup = "not measured" if self.thread_speedup is None else f"{self.thread_speedup:.2f}x"
        if self.pickle_error is not None:
            pickled = f"cannot be pickled ({self.pickle_error})"
            arguments = result = pickled
        else:
            arguments = (
                f"{_bytes(self.args_bytes)}, {_seconds(self.args_seconds)} to pickle and unpickle"
            )
            result = f"{_bytes(self.result_bytes)}, {_seconds(self.result_seconds)} to pickle and unpickle"
        startup = "not measured" if self.worker_startup is None else _seconds(self.worker_startup)
        rows = [
            ("wall time", f"{_seconds(self.wall)} per call"),
            ("CPU time", f"{_seconds(self.cpu)} per call ({cpu_share:.0%} of wall)"),
            ("waiting", f"{self.waiting:.0%} of the time"),
            ("GIL", gil),
            ("2 threads", f"{speedup} the throughput of one thread"),
            ("arguments", arguments),
            ("result", result),
            ("worker start", startup),
        ]
        if verdict:
            rows.append(("verdict", kinds[self.kind]))
        if self.machine_busy >= 0.1:
            rows.append(
                (
                    "note",
                    f"the machine was busy: {self.machine_busy:.0%} of the time spent "
                    "waiting for a core (left out of the wall time)",
                )
            )
        head = f"Profile of {self.function} ({self.calls} calls, {self.cpus} cores):"
        return "\n".join([head, *(f"  {name:<13} {value}" for name, value in rows)])


def _bytes(size: int) -> str:
    if size >= 1_000_000:
        return f"{size / 1e6:.3g} MB"
    if size >= 1_000:
        return f"{size / 1e3:.3g} kB"
    return f"{size} bytes"


def _sequential(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[list[float], list[float], float, Any, float | None]:
    """Call ``fn`` repeatedly under a GIL probe: per-call wall and CPU seconds, and the
    share of the time the calling thread waited for a core."""
    walls: list[float] = []
    cpus: list[float] = []
    result: Any = None
    runqueue = RunQueueClock()
    try:
        with gil_load() as load:
            queued = runqueue()
            began = time.perf_counter()
            while True:
                result, wall, cpu = timed_call(fn, args, kwargs)
                walls.append(wall)
                cpus.append(cpu)
                elapsed = time.perf_counter() - began
                # Enough time for the GIL probe to sample, and a few calls at least.
                if elapsed >= MAX_SECONDS or (elapsed >= MIN_SECONDS and len(walls) >= 3):
                    break
            busy = min(1.0, max(0.0, (runqueue() - queued) / elapsed)) if elapsed > 0 else 0.0
    finally:
        runqueue.close()
    held = load.held if load.gil_enabled else None
    return walls, cpus, busy, result, held


def _thread_speedup(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], per_thread: int
) -> float:
    """How much faster two threads make ``per_thread`` calls each than one thread makes
    all of them (the same plain loop both ways, so timing overhead cancels out)."""

    def calls(count: int) -> None:
        for _ in range(count):
            fn(*args, **kwargs)

    started = time.perf_counter()
    calls(2 * per_thread)
    one_thread = time.perf_counter() - started

    barrier = threading.Barrier(3, timeout=60)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            calls(per_thread)
        except BaseException as exc:  # re-raised in the caller below
            errors.append(exc)

    threads = [threading.Thread(target=work, name=f"fermion-profile-{i}") for i in range(2)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    two_threads = time.perf_counter() - started
    if errors:
        raise errors[0]
    return one_thread / two_threads if two_threads > 0 else 1.0


def profile(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Profile:
    """Measure one call of ``fn(*args, **kwargs)``: time, CPU, GIL, pickling, start-up.

    ``fn`` is called many times (about 0.1 s of calls, at least three, at most 1 s; then about 0.1 s
    more, one thread and then two threads at once), so it should be safe to repeat. Exceptions it raises reach
    the caller. Print the result for a readable summary.
    """
    if not callable(fn):
        raise TypeError(f"fermion.profile needs a callable, got {type(fn).__name__}: {fn!r}")
    walls, cpus, busy, result, held = _sequential(fn, args, kwargs)
    # Time spent waiting for a core belongs to a busy machine, not to the function.
    wall = max(statistics.median(walls) * (1.0 - busy), 1e-9)
    # CPU per call from the whole run's CPU share: per-call CPU clocks are too coarse
    # (and too costly to read) for calls of a few microseconds.
    share = sum(cpus) / sum(walls) if sum(walls) > 0 else 0.0
    cpu = min(wall * share / max(1.0 - busy, 1e-9), wall * cpu_count())
    thread_speedup: float | None = None
    if wall <= MAX_THREAD_TEST_SECONDS:
        per_thread = max(1, min(MAX_CALLS, math.ceil(0.05 / wall)))
        thread_speedup = _thread_speedup(fn, args, kwargs, per_thread)
    sent = pickle_cost((fn, args, kwargs))
    returned = pickle_cost(result)
    error = sent.error or returned.error
    if sent.error:
        error = f"function or arguments: {sent.error}"
    elif returned.error:
        error = f"result: {returned.error}"
    return Profile(
        function=describe_callable(fn),
        calls=len(walls),
        wall=wall,
        cpu=cpu,
        gil_held=None if free_threaded() else held,
        thread_speedup=thread_speedup,
        args_bytes=sent.size,
        args_seconds=sent.seconds,
        result_bytes=returned.size,
        result_seconds=returned.seconds,
        pickle_error=error,
        worker_startup=worker_startup_seconds(),
        cpus=cpu_count(),
        machine_busy=busy,
    )
