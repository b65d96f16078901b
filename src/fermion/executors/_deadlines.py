"""One thread that calls functions at deadlines: the timer behind task timeouts.

A heap of deadlines and a Condition wait until the earliest one; no polling. Entries
are cancelled lazily (a flag), and the heap is compacted when most of it is cancelled,
so a long run of tasks that finish in time costs no growing memory.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["DeadlineTimer", "TimerHandle"]

_log = logging.getLogger("fermion")
_order = itertools.count()


class TimerHandle:
    """A scheduled call; ``cancel()`` stops it if it has not run yet."""

    __slots__ = ("_timer", "callback", "cancelled", "deadline", "seq")

    def __init__(self, timer: DeadlineTimer, deadline: float, callback: Callable[[], None]) -> None:
        self._timer = timer
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False
        self.seq = next(_order)

    def __lt__(self, other: TimerHandle) -> bool:
        return (self.deadline, self.seq) < (other.deadline, other.seq)

    def cancel(self) -> None:
        self._timer._cancel(self)


class DeadlineTimer:
    """Calls each scheduled function at its ``time.monotonic()`` deadline, in one daemon thread.

    The thread starts with the first call scheduled and ends at ``close()``. Callbacks
    run in that thread and must be quick; an exception in one is logged and the timer
    goes on.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[TimerHandle] = []
        self._cancelled = 0
        self._thread: threading.Thread | None = None
        self._closed = False

    def call_at(self, deadline: float, callback: Callable[[], None]) -> TimerHandle:
        handle = TimerHandle(self, deadline, callback)
        with self._cond:
            if self._closed:
                raise RuntimeError(f"timer {self._name!r} is closed")
            heapq.heappush(self._heap, handle)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            if self._heap[0] is handle:
                self._cond.notify()
        return handle

    def _cancel(self, handle: TimerHandle) -> None:
        with self._cond:
            if handle.cancelled:
                return
            handle.cancelled = True
            self._cancelled += 1
            if self._cancelled > 64 and self._cancelled * 2 > len(self._heap):
                self._heap = [h for h in self._heap if not h.cancelled]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def close(self, wait: bool = True) -> None:
        """Stop the thread; pending calls never run."""
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()
            thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    if not self._heap:
                        self._cond.wait()
                        continue
                    first = self._heap[0]
                    if first.cancelled:
                        heapq.heappop(self._heap)
                        self._cancelled -= 1
                        continue
                    delay = first.deadline - time.monotonic()
                    if delay > 0:
                        self._cond.wait(delay)
                        continue
                    heapq.heappop(self._heap)
                    first.cancelled = True  # ran: a later cancel() is a no-op
                    break
            try:
                first.callback()
            except Exception:
                _log.exception("fermion: a deadline callback of %s failed", self._name)
