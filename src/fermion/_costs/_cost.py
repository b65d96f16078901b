"""Measuring primitives shared by ``profile``, ``advise``, ``bench`` and the ``auto``
backend: timing calls, the cost of sending objects to another process, and a thread's
wait for a core."""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cloudpickle

from fermion._costs._platform import cpu_count, free_threaded, gil_enabled

__all__ = [
    "PickleCost",
    "RunQueueClock",
    "call_transfer_estimate",
    "cpu_count",
    "free_threaded",
    "gil_enabled",
    "pickle_cost",
    "sampled_transfer_estimate",
    "timed_call",
    "transfer_estimate",
]


@dataclass(frozen=True)
class PickleCost:
    """Bytes and seconds (pickle plus unpickle) to send one object to another process.

    ``error`` holds the pickler's message where the object cannot be pickled.
    """

    size: int
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def pickle_cost(obj: Any) -> PickleCost:
    """Pickle and unpickle ``obj`` with cloudpickle, as the processes backend would."""
    started = time.perf_counter()
    try:
        data = cloudpickle.dumps(obj)
        cloudpickle.loads(data)
    except Exception as exc:  # any pickling failure means "cannot be sent"
        return PickleCost(0, time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
    return PickleCost(len(data), time.perf_counter() - started)


#: Bytes per second of copying a large buffer into fresh memory, page faults included
#: (what pickling a big array costs per copy on a laptop: 1-4 GB/s; the low end here).
COPY_BYTES_PER_SECOND = 2e9


def transfer_estimate(obj: Any) -> PickleCost:
    """What sending ``obj`` to another process costs, without copying its large buffers.

    Like ``pickle_cost``, but buffers that pickle protocol 5 can send out of band (NumPy
    arrays, ``pickle.PickleBuffer``) are not copied: their bytes are counted, and the
    seconds to copy them (once to pickle, once to unpickle) are estimated from their
    size at ``COPY_BYTES_PER_SECOND``. Timing a copy would be noisier than that
    constant: whether the pages are fresh or reused and cached changes it tenfold. A
    4 MB array costs microseconds to estimate instead of milliseconds to pickle, which
    matters to the ``auto`` backend, which measures the first call's arguments while
    the user waits.
    """
    started = time.perf_counter()
    buffers: list[Any] = []
    try:
        data = cloudpickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
        cloudpickle.loads(data, buffers=buffers)
    except Exception as exc:  # any pickling failure means "cannot be sent"
        return PickleCost(0, time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - started
    size = len(data)
    for buffer in buffers:
        with memoryview(buffer) as view:
            size += view.nbytes
            seconds += 2 * view.nbytes / COPY_BYTES_PER_SECOND
    return PickleCost(size, seconds)


#: Containers longer than this are costed on a prefix of this many items, scaled.
SAMPLE_ITEMS = 512


def call_transfer_estimate(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> PickleCost:
    """What sending one call (the function and its arguments) to another process costs,
    each argument costed apart: a list or tuple of more than ``SAMPLE_ITEMS`` items on
    a prefix of them, scaled to its length. Pickling a list of 50,000 NumPy floats
    whole takes longer than many calls of a function: ``auto`` estimates while the work
    runs, and the estimate must not compete with it."""
    parts = [fn, *args, *kwargs.values()]
    size, seconds, error = 0, 0.0, None
    for part in parts:
        cost = sampled_transfer_estimate(part)
        size += cost.size
        seconds += cost.seconds
        error = error or cost.error
    return PickleCost(size, seconds, error)


def sampled_transfer_estimate(obj: Any) -> PickleCost:
    """``transfer_estimate``, a list or tuple of more than ``SAMPLE_ITEMS`` items costed
    on a prefix of them, scaled to its length."""
    if isinstance(obj, list | tuple) and len(obj) > SAMPLE_ITEMS:
        cost = transfer_estimate(obj[:SAMPLE_ITEMS])
        scale = len(obj) / SAMPLE_ITEMS
        return PickleCost(int(cost.size * scale), cost.seconds * scale, cost.error)
    return transfer_estimate(obj)


@functools.cache
def _libc_pread() -> Any:
    """libc's ``pread`` through ``ctypes.PyDLL`` (see ``RunQueueClock``), or None.
    Looked up once per process: the lookup costs more than a tiny call (about 250 µs on
    free-threaded 3.13t), and ``auto`` makes a clock in each measuring thread."""
    try:
        import ctypes

        pread = ctypes.PyDLL(None).pread
    except (ImportError, AttributeError, OSError):
        return None
    pread.restype = ctypes.c_ssize_t
    pread.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long]
    return pread


class RunQueueClock:
    """Seconds the calling thread has spent runnable but waiting for a free core.

    On a busy machine a thread is often ready to run while other processes hold every
    core; that delay is neither I/O nor GIL contention, so the measurements subtract it.
    Linux reports it in ``/proc/thread-self/schedstat``; elsewhere this clock reads 0.
    Create it in the thread it measures; ``close()`` it when done.

    The file is read with libc's ``pread`` called through ``ctypes.PyDLL``, which keeps
    the GIL: ``os.pread`` would release it, and getting it back would add a GIL wait
    between the reading and the caller's next clock reading.
    """

    def __init__(self) -> None:
        self._fd: int | None = None
        self._pread: Any = None
        self._buffer: Any = None
        pread = _libc_pread()
        if pread is None:
            return
        try:
            self._fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        except OSError:
            return
        import ctypes

        self._pread = pread
        self._buffer = ctypes.create_string_buffer(128)

    @property
    def available(self) -> bool:
        return self._fd is not None

    def __call__(self) -> float:
        if self._fd is None:
            return 0.0
        count = self._pread(self._fd, self._buffer, 127, 0)
        if count <= 0:
            return 0.0
        try:
            return int(self._buffer.raw[:count].split()[1]) / 1e9
        except (IndexError, ValueError):
            return 0.0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        # A clock kept per thread (the ``auto`` backend's) closes when its thread ends.
        with contextlib.suppress(OSError):
            self.close()


def timed_call(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, float, float]:
    """Call ``fn(*args, **kwargs)``; return (result, wall seconds, process CPU seconds)."""
    # The CPU clock is a system call: read it outside the wall-clock interval so that
    # calls of a microsecond are not timed as mostly clock reading.
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    result = fn(*args, **kwargs)
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    return result, wall, cpu
