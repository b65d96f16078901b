"""Scalars in shared memory with a lock that works across processes and threads.

What is atomic, honestly: every operation of ``SharedValue`` and ``SharedCounter``
(``get``, ``set``, ``add``, ``update``, ``compare_and_set``...) runs under a
process-shared lock, so each one is atomic with respect to every other operation on
the same value from any thread of any process. Pure Python has no lock-free atomic
instructions on raw memory, so none of this is lock-free: an operation costs a
system call or two (about a microsecond), not a CPU instruction. For many updates
from a tight loop, accumulate locally and ``add`` once.

The lock is two locks: a ``threading.Lock`` for the threads of one process, and an
``flock`` on the process's own descriptor of the segment for the other processes.
The kernel drops an ``flock`` when its holder dies, so a worker killed while holding
the lock does not block the others forever (its half-done ``update`` function may
not have written anything; a single store never tears).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import numpy as np
from numpy.typing import DTypeLike

from fermion.sharing._mapped import MappedSegment

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: SharedValue is not available there
    fcntl = None  # type: ignore[assignment]

__all__ = ["ProcessSharedLock", "SharedCounter", "SharedValue"]

#: Linux allows flock on a shared-memory descriptor; elsewhere (macOS) the lock is
#: an flock on a small lock file beside the segment, named after it.
_LOCK_ON_SEGMENT = sys.platform.startswith("linux")

_V = TypeVar("_V", bound="SharedValue")


def _lock_file_path(name: str) -> str:
    return os.path.join(tempfile.gettempdir(), f"{name}.lock")


def _remove_lock_file(path: str, pid: int) -> None:
    if pid == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


class ProcessSharedLock:
    """A non-reentrant lock shared by every thread of every process using one segment.

    Use it as ``with value.lock: ...`` to make several operations one atomic step.
    One per segment and process (``_segment_lock``): an ``flock`` excludes other open
    file descriptions only, so the threads of one process must share one thread lock
    in front of one descriptor.
    """

    def __init__(self, name: str, fd: int | None) -> None:
        self._name = name
        self._thread_lock = threading.Lock()
        if fd is not None:
            self._fd = fd  # the segment's own descriptor, closed with the segment
        else:
            self._fd = os.open(_lock_file_path(name), os.O_RDWR | os.O_CREAT, 0o600)
            weakref.finalize(self, os.close, self._fd)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Like ``threading.Lock.acquire``: True once held, False if ``timeout`` passed."""
        if not blocking and timeout != -1:
            raise ValueError("can't specify a timeout for a non-blocking call")
        if timeout is not None and timeout != -1 and timeout < 0:
            raise ValueError(f"timeout must be a non-negative number or -1, not {timeout!r}")
        deadline = None if timeout == -1 or not blocking else time.monotonic() + timeout
        if not self._thread_lock.acquire(blocking, -1 if deadline is None else timeout):
            return False
        try:
            if blocking and deadline is None:
                fcntl.flock(self._fd, fcntl.LOCK_EX)  # releases the GIL while waiting
                return True
            delay = 0.0002
            while True:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    pass
                if deadline is None or time.monotonic() >= deadline:
                    self._thread_lock.release()
                    return False
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 0.01)
        except BaseException:
            self._thread_lock.release()
            raise

    def release(self) -> None:
        if not self._thread_lock.locked():
            raise RuntimeError(
                f"release of the lock of shared segment {self._name}, which is not held"
            )
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread_lock.release()

    def locked(self) -> bool:
        """Whether a thread of this process holds it (other processes are not seen)."""
        return self._thread_lock.locked()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


_segment_lock_guard = threading.Lock()


def _segment_lock(segment: MappedSegment, lock_on_segment: bool) -> ProcessSharedLock:
    """The one lock of ``segment`` in this process (values opened twice share it)."""
    with _segment_lock_guard:
        if segment.lock is None:
            if lock_on_segment and segment.fd is None:
                raise ValueError(f"segment {segment.name} was mapped without its descriptor")
            fd = segment.fd if lock_on_segment else None
            segment.lock = ProcessSharedLock(segment.name, fd)
        lock: ProcessSharedLock = segment.lock
        return lock


class SharedValue:
    """One scalar of a fixed NumPy dtype in shared memory, shared by name across processes.

    Pickles by name (to workers under forkserver and spawn alike): every process sees
    and updates the same value. The creating process owns the memory; it is freed
    when the creator drops the value, and at the latest when it exits.

    >>> best = SharedValue("float64", float("inf"))
    >>> best.update(lambda current: min(current, score))   # atomic read-modify-write
    """

    def __init__(self, dtype: DTypeLike = np.int64, value: Any = 0) -> None:
        dt = np.dtype(dtype)
        if dt.hasobject or dt.itemsize == 0:
            raise TypeError(
                f"SharedValue cannot hold dtype {dt}: it needs a fixed-size numeric, "
                "bool or structured dtype"
            )
        segment = MappedSegment.create(max(dt.itemsize, 8), keep_fd=True)
        if not _LOCK_ON_SEGMENT:
            weakref.finalize(segment, _remove_lock_file, _lock_file_path(segment.name), os.getpid())
        self._attach(segment, dt, _LOCK_ON_SEGMENT)
        self._cell[0] = value

    def _attach(self, segment: MappedSegment, dtype: np.dtype[Any], lock_on_segment: bool) -> None:
        self._segment = segment
        self._dtype = dtype
        self._lock_on_segment = lock_on_segment
        self._cell: np.ndarray[Any, Any] = np.ndarray((1,), dtype, buffer=segment.mmap)
        self._lock = _segment_lock(segment, lock_on_segment)
        self._pid = os.getpid()

    @classmethod
    def _open(cls: type[_V], name: str, dtype: np.dtype[Any], lock_on_segment: bool) -> _V:
        value = cls.__new__(cls)
        value._attach(MappedSegment.open(name, keep_fd=True), dtype, lock_on_segment)
        return value

    def __reduce__(self) -> Any:
        return (type(self)._open, (self._segment.name, self._dtype, self._lock_on_segment))

    def _check_process(self) -> None:
        if self._pid != os.getpid():  # forked: get this process's own descriptor
            self._attach(
                MappedSegment.open(self._segment.name, keep_fd=True),
                self._dtype,
                self._lock_on_segment,
            )

    @property
    def lock(self) -> ProcessSharedLock:
        """The lock every operation takes; hold it to group several into one."""
        self._check_process()
        return self._lock

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._dtype

    @property
    def name(self) -> str:
        """The shared-memory segment's name."""
        return self._segment.name

    def _read(self) -> Any:
        return self._cell[0].item()

    def get(self) -> Any:
        """The current value, as a Python scalar."""
        with self.lock:
            return self._read()

    def set(self, value: Any) -> None:
        with self.lock:
            self._cell[0] = value

    @property
    def value(self) -> Any:
        return self.get()

    @value.setter
    def value(self, value: Any) -> None:
        self.set(value)

    def update(self, fn: Callable[[Any], Any]) -> Any:
        """Atomically replace the value by ``fn(value)``; returns the new value.

        ``fn`` runs with the lock held: keep it short, and don't touch this value in it.
        """
        with self.lock:
            self._cell[0] = fn(self._read())
            return self._read()

    def get_and_set(self, value: Any) -> Any:
        """Atomically store ``value``; returns the previous one."""
        with self.lock:
            previous = self._read()
            self._cell[0] = value
            return previous

    def compare_and_set(self, expected: Any, value: Any) -> bool:
        """Atomically store ``value`` if the current value equals ``expected``."""
        with self.lock:
            if self._read() != expected:
                return False
            self._cell[0] = value
            return True

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._dtype.str!r}, {self.get()!r})"


class SharedCounter(SharedValue):
    """A 64-bit signed integer shared across processes, with atomic ``add``.

    >>> done = SharedCounter()
    >>> done.add(1)    # from any worker; returns the new count
    """

    _MIN = int(np.iinfo(np.int64).min)
    _MAX = int(np.iinfo(np.int64).max)

    def __init__(self, value: int = 0) -> None:
        super().__init__(np.int64, self._checked(value))

    @classmethod
    def _checked(cls, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"SharedCounter holds integers, not {type(value).__name__}")
        number = int(value)
        if not cls._MIN <= number <= cls._MAX:
            raise OverflowError(f"SharedCounter value {number} does not fit in a signed 64-bit int")
        return number

    def add(self, amount: int = 1) -> int:
        """Atomically add ``amount`` (may be negative); returns the new value."""
        amount = self._checked(amount)
        with self.lock:
            new = self._checked(self._read() + amount)
            self._cell[0] = new
            return new

    def increment(self) -> int:
        return self.add(1)

    def decrement(self) -> int:
        return self.add(-1)

    def set(self, value: Any) -> None:
        super().set(self._checked(value))

    def __int__(self) -> int:
        return int(self.get())
