"""How busy the GIL is, measured from the outside with a sampling probe thread.

The method: a probe thread sleeps for a short interval, again and again, and times how
late it wakes up. Sleeping releases the GIL and waking up needs it back. When the GIL
is free, the probe is late only by the operating system's wake-up latency (tens of
microseconds). When another thread holds the GIL, the probe must wait until that thread
lets go, which for pure-Python code is a whole switch interval (5 ms by default, see
``sys.getswitchinterval``). The fraction of wake-ups that were late by more than a
threshold (0.5 ms, well above wake-up noise and well below the switch interval) estimates
the fraction of time the GIL was held by someone else: wake-ups happen at moments that do
not depend on what the other threads do, so they sample the GIL's state fairly.

On Linux the probe subtracts the time it spent runnable but waiting for a core
(``/proc/thread-self/schedstat``), so a machine busy with other processes does not read
as GIL contention. It needs nothing from CPython beyond ``time.sleep`` and works the same
on 3.11-3.13.
Holds shorter than the threshold go unseen, which is what we want: a NumPy loop that
takes the GIL for microseconds between long GIL-free operations reads as low.

"""

from __future__ import annotations

import _thread
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from fermion._costs._cost import RunQueueClock
from fermion._costs._platform import gil_enabled

__all__ = ["GilLoad", "GilProbe", "gil_enabled", "gil_load"]

#: How long the probe sleeps between samples.
DEFAULT_INTERVAL = 0.001
#: A wake-up later than this counts as "the GIL was busy".
DEFAULT_THRESHOLD = 0.0005


class GilProbe:
    """A daemon thread that samples how long it waits for the GIL after short sleeps.

    ``start()`` and ``stop()`` bracket a measurement; ``held_fraction()`` and
    ``mean_wait()`` read the samples so far (thread-safe, usable while running).
    """

    def __init__(
        self, *, interval: float = DEFAULT_INTERVAL, threshold: float = DEFAULT_THRESHOLD
    ) -> None:
        if not interval > 0:
            raise ValueError(
                f"GilProbe interval must be a positive number of seconds, not {interval!r}"
            )
        if not threshold > 0:
            raise ValueError(
                f"GilProbe threshold must be a positive number of seconds, not {threshold!r}"
            )
        self.interval = interval
        self.threshold = threshold
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._samples = 0
        self._late = 0
        self._total_wait = 0.0
        self._started = False
        self._finished = threading.Event()

    def start(self) -> None:
        if self._started:
            raise RuntimeError(
                "this GilProbe was already started; create a new one per measurement"
            )
        self._started = True
        # Not threading.Thread.start, which waits until the new thread runs: next to
        # calls that hold the GIL for milliseconds (C code), each of the turns that
        # takes would wait for a call to end. (A daemon thread, as _thread's are.)
        _thread.start_new_thread(self._run, ())

    def stop(self, *, wait: bool = True) -> None:
        """End the sampling; ``wait``: until the probe's thread has ended."""
        self._stop.set()
        if wait and self._started:
            self._finished.wait(timeout=5.0)

    def _run(self) -> None:
        clock = time.perf_counter
        interval = self.interval
        threshold = self.threshold
        runqueue = RunQueueClock()
        try:
            while not self._stop.is_set():
                queued = runqueue()
                before = clock()
                time.sleep(interval)
                delay = clock() - before - interval
                # Time spent waiting for a core (a busy machine) is not GIL time.
                delay -= runqueue() - queued
                self._record(delay, threshold)
        finally:
            runqueue.close()
            self._finished.set()

    def _record(self, delay: float, threshold: float) -> None:
        with self._lock:
            self._samples += 1
            self._total_wait += max(delay, 0.0)
            if delay > threshold:
                self._late += 1

    @property
    def samples(self) -> int:
        with self._lock:
            return self._samples

    @property
    def late(self) -> int:
        """Samples that found the GIL busy."""
        with self._lock:
            return self._late

    def held_fraction(self) -> float:
        """Fraction of wake-ups that found the GIL busy (0.0 before any sample)."""
        with self._lock:
            return self._late / self._samples if self._samples else 0.0

    def mean_wait(self) -> float:
        """Mean seconds a waking thread waited beyond its sleep (GIL plus OS latency)."""
        with self._lock:
            return self._total_wait / self._samples if self._samples else 0.0


@dataclass
class GilLoad:
    """What ``gil_load()`` measured; read it after the ``with`` block.

    ``held``: fraction of the block's time the GIL was held (so a thread that wanted it
    had to wait); 0.0 where there is no GIL. ``mean_wait``: mean seconds a thread that
    woke up waited to get the GIL back. ``gil_enabled``: False on a free-threaded build
    running without the GIL, where no probe runs.
    """

    gil_enabled: bool = True
    samples: int = 0
    duration: float = 0.0
    _held: float = 0.0
    _mean_wait: float = 0.0
    _finished: bool = field(default=False, repr=False)

    def _require_finished(self, what: str) -> None:
        if not self._finished:
            raise RuntimeError(
                f"GilLoad.{what} is known only after the 'with fermion.gil_load()' block ends; "
                "read it after the block"
            )

    @property
    def held(self) -> float:
        self._require_finished("held")
        return self._held

    @property
    def mean_wait(self) -> float:
        self._require_finished("mean_wait")
        return self._mean_wait

    def __str__(self) -> str:
        if not self._finished:
            return "GIL load: still measuring"
        if not self.gil_enabled:
            return f"GIL load: no GIL (free-threaded build), {self.duration:.3g} s"
        return (
            f"GIL load: held {self._held:.0%} of {self.duration:.3g} s; a waking thread waited "
            f"{self._mean_wait * 1e3:.2f} ms on average ({self.samples} samples)"
        )


@contextmanager
def gil_load(
    *, interval: float = DEFAULT_INTERVAL, threshold: float = DEFAULT_THRESHOLD
) -> Iterator[GilLoad]:
    """Measure how busy the GIL is while the block runs::

        with fermion.gil_load() as load:
            run_my_threads()
        print(load.held)   # 0.97: pure-Python threads; 0.05: NumPy or I/O

    A probe thread samples the GIL every ``interval`` seconds (see the module docstring
    for the method); it costs a thread switch every few milliseconds. On a free-threaded
    build without a GIL nothing is sampled and ``load.gil_enabled`` is False.
    """
    result = GilLoad(gil_enabled=gil_enabled())
    probe = GilProbe(interval=interval, threshold=threshold) if result.gil_enabled else None
    started = time.perf_counter()
    if probe is not None:
        probe.start()
    try:
        yield result
    finally:
        if probe is not None:
            probe.stop()
            result.samples = probe.samples
            result._held = probe.held_fraction()
            result._mean_wait = probe.mean_wait()
        result.duration = time.perf_counter() - started
        result._finished = True
