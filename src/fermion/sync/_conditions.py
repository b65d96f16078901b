"""Checked Condition, Semaphore, BoundedSemaphore, Event and Barrier.

Condition is written here in full (same algorithm as ``threading.Condition``) so that
each wait is a registered, abortable wait in :mod:`fermion.sync._registry`, reported
at the user's line and on the object the user waits on. Semaphore, BoundedSemaphore,
Event and Barrier subclass the standard library's pure-Python classes (so their
semantics are exactly threading's) and only swap in such a Condition and emit the
happens-before hand-offs the race detector listens to.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections import deque
from collections.abc import Callable
from time import monotonic
from typing import Any, TypeVar

from fermion.sync._locks import CheckedLock, CheckedRLock, acquire_restore_lock
from fermion.sync._registry import (
    _on_handoff_acquire,
    _on_handoff_release,
    blocking_wait,
    caller_site,
    thread_name,
)

__all__ = [
    "CheckedBarrier",
    "CheckedBoundedSemaphore",
    "CheckedCondition",
    "CheckedEvent",
    "CheckedSemaphore",
]

_allocate_lock = threading._allocate_lock  # type: ignore[attr-defined]
get_ident = threading.get_ident
_getframe = sys._getframe
T = TypeVar("T")

_ORIGINAL_CONDITION = threading.Condition
_ORIGINAL_SEMAPHORE = threading.Semaphore
_ORIGINAL_BOUNDED_SEMAPHORE = threading.BoundedSemaphore
_ORIGINAL_EVENT = threading.Event
_ORIGINAL_BARRIER = threading.Barrier


_active = threading._active  # type: ignore[attr-defined]
_limbo = threading._limbo  # type: ignore[attr-defined]


def _bootstrapping(me: int) -> bool:
    """Whether thread *me* is inside Thread._bootstrap_inner, before threading knows it.

    ``Thread._started.set()`` runs there; listeners calling ``current_thread()`` at
    that point would create a dummy thread under the real one's ident, so hand-offs
    of that moment are not emitted (the thread-start hand-off covers it).
    """
    return me not in _active and any(t._ident == me for t in list(_limbo))


def _handoff_release(token: object) -> None:
    me = get_ident()
    if me not in _active and _bootstrapping(me):
        return
    for callback in _on_handoff_release:
        callback(token, me)


def _handoff_acquire(token: object) -> None:
    me = get_ident()
    if me not in _active and _bootstrapping(me):
        return
    for callback in _on_handoff_acquire:
        callback(token, me)


class CheckedCondition:
    """A ``threading.Condition`` whose waits are registered and reported at the caller.

    ``lock`` defaults to a checked RLock. ``_target`` is the object reported as waited
    on (a Semaphore, Event, Queue... that uses this condition inside).
    """

    def __init__(self, lock: Any = None, *, _target: object = None) -> None:
        if lock is None:
            lock = CheckedRLock(_created=caller_site())
        self._lock = lock
        self._target = self if _target is None else _target
        self._waiters: deque[Any] = deque()
        if hasattr(lock, "_release_save"):
            self._release_save = lock._release_save  # type: ignore[method-assign]
        if hasattr(lock, "_acquire_restore"):
            self._acquire_restore = lock._acquire_restore  # type: ignore[method-assign]
        if hasattr(lock, "_is_owned"):
            self._is_owned = lock._is_owned  # type: ignore[method-assign]
        # Starvation bookkeeping, kept only while some thread is in a predicate loop (a
        # *streak*: its first wait() up to its release of the lock, across re-waits):
        # thread -> [streak start, waits in streak, served count at start, wait site];
        # ``_fermion_served`` counts the others served meanwhile (a thread entering the
        # condition, or leaving it after its own waits), ``_fermion_served_at`` where:
        # (file, line, function) -> (served count then, thread ident).
        self._fermion_streaks: dict[int, list[Any]] = {}
        self._fermion_served = 0
        self._fermion_served_at: dict[tuple[str, int, str], tuple[int, int]] = {}

    # -- the lock ----------------------------------------------------------------------
    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        lock = self._lock
        if isinstance(lock, (CheckedLock, CheckedRLock)):
            got = lock._acquire_from(_getframe(1), blocking, timeout)
        else:
            got = bool(lock.acquire(blocking, timeout))
        if got and self._fermion_streaks:
            self._entered(_getframe(1))
        return got

    def __enter__(self) -> bool:
        lock = self._lock
        if isinstance(lock, (CheckedLock, CheckedRLock)):
            got = lock._acquire_from(_getframe(1))
        else:
            got = bool(lock.__enter__())
        if self._fermion_streaks:
            self._entered(_getframe(1))
        return got

    def release(self) -> None:
        if self._fermion_streaks:
            self._end_streak()
        self._lock.release()

    def __exit__(self, *exc_info: object) -> None:
        if self._fermion_streaks:
            self._end_streak()
        self._lock.release()

    def _entered(self, frame: Any) -> None:
        """A thread entered while another is in a predicate loop: one more served."""
        code = frame.f_code
        self._fermion_served += 1
        self._fermion_served_at[(code.co_filename, frame.f_lineno, code.co_name)] = (
            self._fermion_served,
            get_ident(),
        )

    def _end_streak(self) -> None:
        streak = self._fermion_streaks.pop(get_ident(), None)
        if streak is not None:
            # Served after its own waits: counted where it waited.
            self._fermion_served += 1
            site = streak[3]
            self._fermion_served_at[(site.file, site.line, site.function)] = (
                self._fermion_served,
                get_ident(),
            )
            if not self._fermion_streaks:
                self._fermion_served_at.clear()

    def __repr__(self) -> str:
        return f"<fermion.sync.Condition({self._lock!r}, {len(self._waiters)})>"

    def _release_save(self) -> Any:
        self._lock.release()

    def _acquire_restore(self, state: Any) -> None:
        acquire_restore_lock(self._lock)

    def _is_owned(self) -> bool:
        if self._lock.acquire(False):
            self._lock.release()
            return False
        return True

    def _at_fork_reinit(self) -> None:
        self._lock._at_fork_reinit()
        self._waiters.clear()

    # -- waiting -------------------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> bool:
        """Wait until notified or until *timeout* seconds pass, as threading's."""
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        site = caller_site()
        me = get_ident()
        streak = self._fermion_streaks.get(me)
        if streak is None:
            self._fermion_streaks[me] = [monotonic(), 1, self._fermion_served, site]
        else:
            streak[1] += 1
        waiter = _allocate_lock()
        waiter.acquire()
        self._waiters.append(waiter)
        saved_state = self._release_save()
        gotit = False
        try:
            if timeout is None:
                gotit = blocking_wait(
                    self._target,
                    site,
                    None,
                    lambda seconds: waiter.acquire(True, seconds),
                    lambda: not waiter.locked(),
                )
            elif timeout > 0:
                gotit = blocking_wait(
                    self._target,
                    site,
                    timeout,
                    lambda seconds: waiter.acquire(True, seconds),
                    lambda: not waiter.locked(),
                )
            else:
                gotit = waiter.acquire(False)
            return gotit
        finally:
            self._acquire_restore(saved_state)
            if not gotit:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            elif _on_handoff_acquire:
                _handoff_acquire(self._target)

    def wait_for(self, predicate: Callable[[], T], timeout: float | None = None) -> T:
        """Wait until *predicate()* is true, as threading's."""
        endtime = None
        waittime = timeout
        result = predicate()
        while not result:
            if waittime is not None:
                if endtime is None:
                    endtime = monotonic() + waittime
                else:
                    waittime = endtime - monotonic()
                    if waittime <= 0:
                        break
            self.wait(waittime)
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        """Wake up to *n* waiters; the caller must hold the lock."""
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        if _on_handoff_release:
            _handoff_release(self._target)
        waiters = self._waiters
        while waiters and n > 0:
            waiter = waiters[0]
            try:
                waiter.release()
            except RuntimeError:
                pass  # a waiter that timed out concurrently; it removes itself
            else:
                n -= 1
            with contextlib.suppress(ValueError):
                waiters.remove(waiter)

    def notify_all(self) -> None:
        """Wake every waiter; the caller must hold the lock."""
        self.notify(len(self._waiters))

    # The deprecated alias is threading's own (it warns, then calls notify_all()).
    notifyAll = _ORIGINAL_CONDITION.notifyAll


class CheckedSemaphore(_ORIGINAL_SEMAPHORE):
    """``threading.Semaphore`` with registered waits and happens-before hand-offs."""

    def __init__(self, value: int = 1) -> None:
        _ORIGINAL_SEMAPHORE.__init__(self, value)
        if not isinstance(self, CheckedSemaphore):
            # threading.BoundedSemaphore.__init__ of a class captured before
            # patch_threading() calls the global Semaphore.__init__ (this one) on its
            # own, unchecked instance: initialise it as threading does, nothing more.
            return
        self._cond = CheckedCondition(_allocate_lock(), _target=self)
        self._fermion_acquisitions = 0
        self._fermion_created = caller_site()

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        got = super().acquire(blocking, timeout)
        if got:
            self._fermion_acquisitions += 1
            if _on_handoff_acquire:
                _handoff_acquire(self)
        return bool(got)

    __enter__ = acquire

    def release(self, n: int = 1) -> None:
        if _on_handoff_release:
            _handoff_release(self)
        super().release(n)

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def _fermion_describe(self) -> str:
        return f"Semaphore (created at {self._fermion_created})"

    def __repr__(self) -> str:
        return f"<fermion.Semaphore at {id(self):#x}: value={self._value}>"


class CheckedBoundedSemaphore(_ORIGINAL_BOUNDED_SEMAPHORE):
    """``threading.BoundedSemaphore`` with registered waits and hand-offs."""

    def __init__(self, value: int = 1) -> None:
        # threading.BoundedSemaphore.__init__ calls the *global* Semaphore, which
        # patch_threading replaces; initialise through the original classes directly.
        _ORIGINAL_SEMAPHORE.__init__(self, value)
        self._initial_value = value
        self._cond = CheckedCondition(_allocate_lock(), _target=self)
        self._fermion_acquisitions = 0
        self._fermion_created = caller_site()

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        got = super().acquire(blocking, timeout)
        if got:
            self._fermion_acquisitions += 1
            if _on_handoff_acquire:
                _handoff_acquire(self)
        return bool(got)

    __enter__ = acquire

    def release(self, n: int = 1) -> None:
        if _on_handoff_release:
            _handoff_release(self)
        super().release(n)

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def _fermion_describe(self) -> str:
        return f"BoundedSemaphore (created at {self._fermion_created})"

    def __repr__(self) -> str:
        return f"<fermion.BoundedSemaphore at {id(self):#x}: value={self._value}/{self._initial_value}>"


class CheckedEvent(_ORIGINAL_EVENT):
    """``threading.Event`` with registered waits and hand-offs (set → wait returning True,
    or is_set returning True: polling a set event sees the setter's past too)."""

    def __init__(self) -> None:
        super().__init__()
        self._cond = CheckedCondition(_allocate_lock(), _target=self)
        self._fermion_created = caller_site()

    def set(self) -> None:
        if _on_handoff_release:
            _handoff_release(self)
        super().set()

    def wait(self, timeout: float | None = None) -> bool:
        got = super().wait(timeout)
        if got and _on_handoff_acquire:
            _handoff_acquire(self)
        return bool(got)

    def is_set(self) -> bool:
        """Whether the flag is set; seeing it set is a hand-off, as ``wait()`` returning True."""
        flag: bool = self._flag  # type: ignore[attr-defined]
        if flag and _on_handoff_acquire:
            _handoff_acquire(self)
        return flag

    def _fermion_describe(self) -> str:
        return f"Event (created at {self._fermion_created})"

    def __repr__(self) -> str:
        return f"<fermion.Event at {id(self):#x}: {'set' if self.is_set() else 'unset'}>"


class CheckedBarrier(_ORIGINAL_BARRIER):
    """``threading.Barrier`` with registered waits and hand-offs (arrival → release)."""

    def __init__(
        self, parties: int, action: Callable[[], None] | None = None, timeout: float | None = None
    ) -> None:
        super().__init__(parties, action, timeout)
        self._cond = CheckedCondition(_allocate_lock(), _target=self)
        self._fermion_created = caller_site()

    def wait(self, timeout: float | None = None) -> int:
        if _on_handoff_release:
            _handoff_release(self)
        index = super().wait(timeout)
        if _on_handoff_acquire:
            _handoff_acquire(self)
        return int(index)

    def _fermion_describe(self) -> str:
        return f"Barrier of {self.parties} (created at {self._fermion_created})"

    def __repr__(self) -> str:
        if self.broken:
            return f"<fermion.Barrier at {id(self):#x}: broken>"
        return f"<fermion.Barrier at {id(self):#x}: waiters={self.n_waiting}/{self.parties}>"


def describe(primitive: object) -> str:
    """A short human description of a primitive for reports."""
    describe_method = getattr(primitive, "_fermion_describe", None) or getattr(
        primitive, "_describe", None
    )
    if describe_method is not None:
        return str(describe_method())
    if isinstance(primitive, threading.Thread):
        return f"thread {primitive.name!r} to finish"
    if isinstance(primitive, CheckedCondition):
        # A future's condition names the task it stands for (fermion.check tags it).
        task_of = getattr(primitive, "_fermion_task_of", None)
        return "Condition" if task_of is None else str(task_of[2])
    return type(primitive).__name__


def owner_name(ident: int) -> str:
    return thread_name(ident)
