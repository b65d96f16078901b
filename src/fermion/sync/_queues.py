"""Checked Queue, LifoQueue, PriorityQueue and SimpleQueue.

Subclasses of the ``queue`` module's classes (``isinstance`` keeps working and the
semantics are exactly the standard library's); they only swap in checked conditions,
so a blocked ``get``, ``put`` or ``join`` is a registered wait reported at the
caller's line, and they emit the happens-before hand-offs (put → get, task_done →
join) the race detector listens to.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from fermion.sync._conditions import CheckedCondition, _handoff_acquire, _handoff_release
from fermion.sync._registry import (
    _on_handoff_acquire,
    _on_handoff_release,
    blocking_wait,
    caller_site,
)

__all__ = ["CheckedLifoQueue", "CheckedPriorityQueue", "CheckedQueue", "CheckedSimpleQueue"]

_allocate_lock = threading._allocate_lock  # type: ignore[attr-defined]
_ORIGINAL_QUEUE = queue.Queue
_ORIGINAL_LIFO_QUEUE = queue.LifoQueue
_ORIGINAL_PRIORITY_QUEUE = queue.PriorityQueue
_ORIGINAL_SIMPLE_QUEUE = queue.SimpleQueue


class _CheckedQueueMixin:
    """What the three locked queues share: checked conditions and hand-offs."""

    mutex: Any
    not_empty: Any
    not_full: Any
    all_tasks_done: Any

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)  # type: ignore[call-arg]
        # The internal mutex is never held across a wait or a user call, so a raw lock
        # is enough; the conditions carry the waits, reported on the queue itself.
        self.mutex = _allocate_lock()
        self.not_empty = CheckedCondition(self.mutex, _target=self)
        self.not_full = CheckedCondition(self.mutex, _target=self)
        self.all_tasks_done = CheckedCondition(self.mutex, _target=self)
        self._fermion_created = caller_site()

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if _on_handoff_release:
            _handoff_release(self)
        super().put(item, block, timeout)  # type: ignore[misc]

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        item = super().get(block, timeout)  # type: ignore[misc]
        if _on_handoff_acquire:
            _handoff_acquire(self)
        return item

    def task_done(self) -> None:
        if _on_handoff_release:
            _handoff_release(self)
        super().task_done()  # type: ignore[misc]

    def join(self) -> None:
        super().join()  # type: ignore[misc]
        if _on_handoff_acquire:
            _handoff_acquire(self)

    def _fermion_describe(self) -> str:
        return f"{type(self).__name__.removeprefix('Checked')} (created at {self._fermion_created})"


class CheckedQueue(_CheckedQueueMixin, _ORIGINAL_QUEUE):
    """``queue.Queue`` with registered waits."""


class CheckedLifoQueue(_CheckedQueueMixin, _ORIGINAL_LIFO_QUEUE):
    """``queue.LifoQueue`` with registered waits."""


class CheckedPriorityQueue(_CheckedQueueMixin, _ORIGINAL_PRIORITY_QUEUE):
    """``queue.PriorityQueue`` with registered waits."""


class CheckedSimpleQueue(_ORIGINAL_SIMPLE_QUEUE):
    """``queue.SimpleQueue`` whose blocking ``get`` is a registered wait."""

    def __init__(self) -> None:
        super().__init__()
        self._fermion_created = caller_site()

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if _on_handoff_release:
            _handoff_release(self)
        super().put(item, block, timeout)

    def put_nowait(self, item: Any) -> None:
        self.put(item, False)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if not block:
            item = super().get(False)
        else:
            if timeout is not None and timeout < 0:
                raise ValueError("'timeout' must be a non-negative number")
            box: list[Any] = []
            base_get = _ORIGINAL_SIMPLE_QUEUE.get

            def try_get(seconds: float) -> bool:
                try:
                    box.append(base_get(self, True, seconds))
                except queue.Empty:
                    return False
                return True

            if not blocking_wait(self, caller_site(), timeout, try_get, lambda: not self.empty()):
                raise queue.Empty
            item = box[0]
        if _on_handoff_acquire:
            _handoff_acquire(self)
        return item

    def get_nowait(self) -> Any:
        return self.get(False)

    def _fermion_describe(self) -> str:
        return f"SimpleQueue (created at {self._fermion_created})"
