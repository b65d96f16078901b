"""Checked Lock and RLock: locks that know their owner and where it took them.

They behave as ``threading.Lock``/``threading.RLock`` (same methods, same errors,
the private helpers ``threading.Condition`` uses), and on top:

* record the owning thread and the acquire site (file:line), shown by ``repr`` and
  :meth:`statistics`;
* a release by a thread that does not own it happens, as with ``threading.Lock``
  (which may legally be released by any thread: a lock used as a signal); the strict
  variant (``fermion.sync.Lock()`` under checks) also reports it as a
  :class:`~fermion.errors.LockReleaseWarning` naming both threads, the lenient one
  (what ``patch_threading`` installs as ``threading.Lock``) silently. An RLock's
  owner is defined: only it may release one;
* report holds and blocking waits to :mod:`fermion.sync._registry`, which the deadlock,
  lock-order, starvation and race checks read.

The uncontended path is kept short on purpose: the benchmark holds it to a few times
the cost of ``threading.Lock``.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any

from fermion.errors import LockReleaseWarning
from fermion.sync import _registry
from fermion.sync._registry import (
    Site,
    ThreadState,
    _lock_acquired,
    _lock_released,
    _tls,
    _waiting,
    blocking_wait,
    caller_site,
    push_nested,
    thread_name,
    thread_state,
    unlink,
)

__all__ = ["CheckedLock", "CheckedRLock", "LockStatistics"]

_allocate_lock = threading._allocate_lock  # type: ignore[attr-defined]
_getframe = sys._getframe
_serials = itertools.count(1)
_TIMEOUT_MAX = threading.TIMEOUT_MAX


@dataclass(frozen=True)
class LockStatistics:
    """What :meth:`CheckedLock.statistics` reports.

    ``owner`` is the owning thread's name (``None`` when unlocked), ``site`` where it
    took the lock, ``waiters`` how many threads are blocked acquiring it, ``count``
    the recursion level (RLock; 1 or 0 for Lock), ``acquisitions`` how many times it
    has been taken since it was created.
    """

    locked: bool
    owner: str | None
    site: Site | None
    waiters: int
    count: int
    acquisitions: int


_line_cache: dict[tuple[CodeType, int], int] = {}


def line_of(code: CodeType, offset: int) -> int:
    """The source line of the instruction at byte *offset* in *code* (cached).

    The fast paths record the caller's ``f_lasti`` (one attribute read) instead of
    ``f_lineno`` (which walks the line table); this turns it into a line on demand,
    when a report, ``repr`` or :meth:`statistics` needs it.
    """
    key = (code, offset)
    cached = _line_cache.get(key)
    if cached is not None:
        return cached
    found = code.co_firstlineno
    for start, end, number in code.co_lines():
        if start <= offset < end:
            if number is not None:
                found = number
            break
    if len(_line_cache) > 10_000:
        _line_cache.clear()
    _line_cache[key] = found
    return found


_sleep = time.sleep
_gil_enabled = getattr(sys, "_is_gil_enabled", lambda: True)
# How many times a thread that finds a lock taken gives the GIL away before it
# registers a blocking wait, and for how long each time (see _yield_then_try).
YIELDS_BEFORE_WAIT = 3
_YIELD_PAUSE = 1e-6


def _yield_then_try(lock: CheckedLock | CheckedRLock) -> bool:
    """On a GIL build: let the holder run a few times, retrying; True once *lock* is ours.

    A checked lock runs Python code while held, so the GIL can switch threads inside
    the critical section, which ``threading.Lock`` under ``with`` never does. A thread
    that then parked on the inner lock at once would be woken by each later release,
    could take the lock while the releaser (which holds the GIL) goes on, and force it
    to park in turn: a convoy, where every acquisition costs two thread switches and a
    registered wait (measured: 30x slower). Sleeping a moment instead hands the GIL to
    the holder, which finishes its critical section, and the waiter does not sit on
    the lock to be woken. Skipped when the holder is the caller or is blocked itself
    (it will not let go soon, and a deadlock is reported as soon as the wait is
    registered), and on a free-threaded build, where the holder runs meanwhile anyway.
    """
    holder = lock._holder
    if holder is not None and (holder.ident in _waiting or holder is getattr(_tls, "state", None)):
        return False
    if not _gil_enabled():
        return False
    block = lock._block
    for _ in range(YIELDS_BEFORE_WAIT):
        _sleep(_YIELD_PAUSE)
        if block.acquire(False):
            return True
    return False


def _check_acquire_args(blocking: bool, timeout: float) -> float | None:
    """Validate like ``_thread.lock.acquire`` and return the wait's timeout (None = forever)."""
    if not blocking:
        if timeout != -1:
            raise ValueError("can't specify a timeout for a non-blocking call")
        return 0.0
    if timeout < 0 and timeout != -1:
        raise ValueError("timeout value must be a non-negative number")
    if timeout > _TIMEOUT_MAX:
        raise OverflowError("timeout value is too large")
    return None if timeout == -1 else float(timeout)


# The fast paths below are written out in full (no helper calls) on purpose: the
# uncontended ``with lock:`` of a checked lock is held to a few times threading's, and
# on CPython each Python-level call or dictionary lookup is a visible share of that.
# They record only what a report may need later and cannot recover: the holder's
# ThreadState, the caller's code object and instruction offset, and the hold on the
# thread's chain. Listener dispatch is one truthiness test when nobody listens; the
# wait-for bookkeeping happens only on the blocking path.


class CheckedLock:
    """A ``threading.Lock`` that records its owner and acquire site (see the module doc)."""

    __slots__ = (
        "__weakref__",
        "_block",
        "_code",
        "_created",
        "_fermion_acquisitions",
        "_holder",
        "_lasti",
        "_serial",
        "_strict",
        "_waiters",
    )

    def __init__(self, *, strict: bool = True, _created: Site | None = None) -> None:
        self._block = _allocate_lock()
        self._holder: ThreadState | None = None
        self._code: CodeType | None = None
        self._lasti = 0
        self._strict = strict
        self._serial = next(_serials)
        self._fermion_acquisitions = 0
        self._waiters = 0
        self._created = _created if _created is not None else caller_site()

    @property
    def _owner(self) -> int | None:
        """The owning thread's ident (``None`` when unlocked)."""
        holder = self._holder
        return None if holder is None else holder.ident

    # -- acquiring -------------------------------------------------------------------
    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock, as ``threading.Lock.acquire``; see the module doc."""
        if timeout == -1 and self._block.acquire(False):
            try:
                state: ThreadState = _tls.state
            except AttributeError:
                state = thread_state()
            frame = _getframe(1)
            self._holder = state
            self._code = frame.f_code
            self._lasti = frame.f_lasti
            self._fermion_acquisitions += 1
            top = state.top
            if top is not None:
                top = self._nested(state, top)
            state.top = (self, top)
            if _lock_acquired:
                for callback in _lock_acquired:
                    callback(self, state.ident)
            return True
        return self._acquire_slow(blocking, timeout, _getframe(1))

    def __enter__(self) -> bool:
        if self._block.acquire(False):
            try:
                state: ThreadState = _tls.state
            except AttributeError:
                state = thread_state()
            frame = _getframe(1)
            self._holder = state
            self._code = frame.f_code
            self._lasti = frame.f_lasti
            self._fermion_acquisitions += 1
            top = state.top
            if top is not None:
                top = self._nested(state, top)
            state.top = (self, top)
            if _lock_acquired:
                for callback in _lock_acquired:
                    callback(self, state.ident)
            return True
        return self._acquire_slow(True, -1, _getframe(1))

    def _acquire_from(self, frame: FrameType, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire on behalf of a caller whose frame is *frame* (used by Condition)."""
        if timeout == -1 and self._block.acquire(False):
            self._took(frame.f_code, frame.f_lasti)
            return True
        return self._acquire_slow(blocking, timeout, frame)

    def _acquire_slow(self, blocking: bool, timeout: float, frame: FrameType) -> bool:
        wait_timeout = _check_acquire_args(blocking, timeout)
        if wait_timeout == 0.0:
            if self._block.acquire(False):
                self._took(frame.f_code, frame.f_lasti)
                return True
            return False
        block = self._block
        if wait_timeout is None and _yield_then_try(self):  # the holder let go meanwhile
            self._took(frame.f_code, frame.f_lasti)
            return True
        # Only a thread that must really wait publishes what it waits for (the site in
        # full, the owners for the wait-for graph).
        code, lasti = frame.f_code, frame.f_lasti
        site = Site(code.co_filename, frame.f_lineno, code.co_name)
        if self._strict:
            owners = self._owners
        else:
            # A lenient lock may be released by another thread (a signal), so waiting
            # for a lenient lock one holds oneself is no deadlock by itself; the stall
            # check reports it if nobody else can release it.
            waiter = thread_state()

            def owners() -> tuple[int, ...]:
                holder = self._holder
                return () if holder is None or holder is waiter else (holder.ident,)

        self._waiters += 1
        try:
            got = blocking_wait(
                self,
                site,
                wait_timeout,
                lambda seconds: block.acquire(True, seconds),
                lambda: not block.locked(),
                owners,
            )
        finally:
            self._waiters -= 1
        if got:
            self._took(code, lasti)
        return got

    def _took(self, code: CodeType, lasti: int) -> None:
        state = thread_state()
        self._holder = state
        self._code = code
        self._lasti = lasti
        self._fermion_acquisitions += 1
        top = state.top
        if top is not None:
            top = self._nested(state, top)
        state.top = (self, top)
        if _lock_acquired:
            for callback in _lock_acquired:
                callback(self, state.ident)

    def _nested(self, state: ThreadState, top: tuple[Any, Any]) -> tuple[Any, Any] | None:
        """Taken while holding others: the lock-order listeners run (and may refuse)."""
        try:
            return push_nested(self, state, top)
        except BaseException:
            self._holder = None
            self._block.release()
            raise

    def _owners(self) -> tuple[int, ...]:
        holder = self._holder
        return () if holder is None else (holder.ident,)

    # -- releasing -------------------------------------------------------------------
    def release(self) -> None:
        """Release the lock; a release by another thread is reported (strict lock)."""
        try:
            state: ThreadState = _tls.state
        except AttributeError:
            self._release_foreign()
            return
        if self._holder is not state:
            self._release_foreign()
            return
        if _lock_released:
            for callback in _lock_released:
                callback(self, state.ident)
        self._holder = None
        top = state.top
        if top is not None and top[0] is self:
            state.top = top[1]
        else:
            state.top = unlink(state, self)
        self._block.release()

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        try:
            state: ThreadState = _tls.state
        except AttributeError:
            self._release_foreign()
            return
        if self._holder is not state:
            self._release_foreign()
            return
        if _lock_released:
            for callback in _lock_released:
                callback(self, state.ident)
        self._holder = None
        top = state.top
        if top is not None and top[0] is self:
            state.top = top[1]
        else:
            state.top = unlink(state, self)
        self._block.release()

    def _release_foreign(self) -> None:
        """A release by a thread that does not hold the lock: allowed, as threading's.

        ``threading.Lock`` may be released by any thread (a lock used as a signal), so
        the release happens. A strict lock (``fermion.sync.Lock()`` under checks) also
        reports it: a :class:`~fermion.errors.LockReleaseWarning` naming both threads,
        and the ``on_foreign_release`` listeners (the checker records a finding).
        """
        holder = self._holder
        if holder is None:
            raise RuntimeError("release unlocked lock")
        if self._strict:
            self._report_foreign_release(holder)
        # The holder's chain is the holder's own to change: its entry goes stale there
        # (``_holder`` no longer names it) and is dropped at its next lock operation.
        for callback in _lock_released:
            callback(self, holder.ident)
        self._holder = None
        self._block.release()

    def _report_foreign_release(self, holder: ThreadState) -> None:
        me = threading.get_ident()
        releaser_site = caller_site(2)
        message = (
            f"{self._describe()} was released by thread {thread_name(me)!r} at "
            f"{releaser_site} while thread {thread_name(holder.ident)!r} holds it (taken at "
            f"{self._fermion_site()}). threading.Lock allows this, but a lock released by "
            "another thread protects nothing: use a Semaphore or an Event to signal "
            "between threads"
        )
        for callback in _registry._on_foreign_release:
            callback(self, message, releaser_site, holder.ident, me)
        warnings.warn(LockReleaseWarning(message), stacklevel=4)

    # -- queries ---------------------------------------------------------------------
    def locked(self) -> bool:
        """Whether the lock is held."""
        return self._block.locked()

    def statistics(self) -> LockStatistics:
        """A snapshot: locked, owner, acquire site, number of waiters, acquisitions."""
        holder = self._holder
        return LockStatistics(
            locked=self._block.locked(),
            owner=None if holder is None else thread_name(holder.ident),
            site=None if holder is None else self._fermion_site(),
            waiters=self._waiters,
            count=1 if holder is not None else 0,
            acquisitions=self._fermion_acquisitions,
        )

    def _fermion_site(self) -> Site:
        code = self._code
        if code is None:
            return _registry.UNKNOWN_SITE
        return Site(code.co_filename, line_of(code, self._lasti), code.co_name)

    def _describe(self) -> str:
        return f"Lock#{self._serial} (created at {self._created})"

    def _at_fork_reinit(self) -> None:
        self._block._at_fork_reinit()
        self._holder = None
        self._waiters = 0

    def __repr__(self) -> str:
        holder = self._holder
        state = "locked" if self._block.locked() else "unlocked"
        extra = ""
        if holder is not None:
            extra = f"owner={thread_name(holder.ident)!r} site={self._fermion_site()} "
        return f"<{state} fermion.sync.CheckedLock object #{self._serial} {extra}at {id(self):#x}>"


class CheckedRLock:
    """A ``threading.RLock`` that records its owner and outermost acquire site."""

    __slots__ = (
        "__weakref__",
        "_block",
        "_code",
        "_count",
        "_created",
        "_fermion_acquisitions",
        "_holder",
        "_lasti",
        "_serial",
        "_waiters",
    )

    def __init__(self, *, _created: Site | None = None) -> None:
        self._block = _allocate_lock()
        self._holder: ThreadState | None = None
        self._count = 0
        self._code: CodeType | None = None
        self._lasti = 0
        self._serial = next(_serials)
        self._fermion_acquisitions = 0
        self._waiters = 0
        self._created = _created if _created is not None else caller_site()

    @property
    def _owner(self) -> int | None:
        """The owning thread's ident (``None`` when unlocked)."""
        holder = self._holder
        return None if holder is None else holder.ident

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock or enter it once more, as ``threading.RLock.acquire``."""
        if timeout == -1:
            try:
                state: ThreadState = _tls.state
            except AttributeError:
                state = thread_state()
            if self._holder is state:
                self._count += 1
                return True
            if self._block.acquire(False):
                self._own(state)
                frame = _getframe(1)
                self._placed(state, frame.f_code, frame.f_lasti)
                return True
        return self._acquire_from(_getframe(1), blocking, timeout)

    def __enter__(self) -> bool:
        try:
            state: ThreadState = _tls.state
        except AttributeError:
            state = thread_state()
        if self._holder is state:
            self._count += 1
            return True
        if self._block.acquire(False):
            # _own and _placed written out (the hottest path there is).
            self._holder = state
            self._count = 1
            if _lock_acquired:
                for callback in _lock_acquired:
                    callback(self, state.ident)
            frame = _getframe(1)
            self._code = frame.f_code
            self._lasti = frame.f_lasti
            self._fermion_acquisitions += 1
            top = state.top
            if top is not None:
                top = self._nested(state, top)
            state.top = (self, top)
            return True
        return self._acquire_from(_getframe(1))

    def _acquire_from(self, frame: FrameType, blocking: bool = True, timeout: float = -1) -> bool:
        state = thread_state()
        wait_timeout = _check_acquire_args(blocking, timeout)
        if self._holder is state:
            self._count += 1
            return True
        if self._block.acquire(False):
            self._took(state, frame.f_code, frame.f_lasti)
            return True
        if wait_timeout == 0.0:
            return False
        block = self._block
        if wait_timeout is None and _yield_then_try(self):  # the holder let go meanwhile
            self._took(state, frame.f_code, frame.f_lasti)
            return True
        code, lasti = frame.f_code, frame.f_lasti

        def take(seconds: float) -> bool:
            # Owned as soon as taken, before the wait's bookkeeping allocates (_own).
            if block.acquire(True, seconds):
                self._own(state)
                return True
            return False

        self._waiters += 1
        try:
            got = blocking_wait(
                self,
                Site(code.co_filename, frame.f_lineno, code.co_name),
                wait_timeout,
                take,
                lambda: not block.locked(),
                self._owners,
            )
        finally:
            self._waiters -= 1
        if got:
            self._placed(state, code, lasti)
        return got

    def _took(self, state: ThreadState, code: CodeType, lasti: int) -> None:
        self._own(state)
        self._placed(state, code, lasti)

    def _own(self, state: ThreadState) -> None:
        """Just acquired: the lock is *state*'s, and the listeners know it.

        First, before anything that allocates: the collector may run a finaliser from
        here on, and one that takes this lock must re-enter it (not wait for itself)
        and be seen holding it.
        """
        self._holder = state
        self._count = 1
        if _lock_acquired:
            for callback in _lock_acquired:
                callback(self, state.ident)

    def _placed(self, state: ThreadState, code: CodeType, lasti: int) -> None:
        """The rest of an acquisition: where it was taken, and the thread's chain of holds."""
        self._code = code
        self._lasti = lasti
        self._fermion_acquisitions += 1
        top = state.top
        if top is not None:
            top = self._nested(state, top)
        state.top = (self, top)

    def _owners(self) -> tuple[int, ...]:
        holder = self._holder
        return () if holder is None else (holder.ident,)

    def _nested(self, state: ThreadState, top: tuple[Any, Any]) -> tuple[Any, Any] | None:
        try:
            return push_nested(self, state, top)
        except BaseException:
            if _lock_released:  # they were told of the acquisition (_own)
                for callback in _lock_released:
                    callback(self, state.ident)
            self._holder = None
            self._count = 0
            self._block.release()
            raise

    def release(self) -> None:
        """Leave the lock once; the last release frees it. Only the owner may release."""
        holder = self._holder
        if holder is None:
            raise RuntimeError("cannot release un-acquired lock")
        current: ThreadState | None = getattr(_tls, "state", None)
        if holder is not current:
            raise RuntimeError(
                f"cannot release {self._describe()}: it is held by thread "
                f"{thread_name(holder.ident)!r} (taken at {self._fermion_site()}), not by the "
                f"calling thread {thread_name(threading.get_ident())!r}"
            )
        if self._count == 1:
            self._free(holder)
        else:
            self._count -= 1

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        try:
            state: ThreadState = _tls.state
        except AttributeError:
            self.release()  # raises the right error
            return
        if self._holder is not state:
            self.release()  # raises the right error
            return
        count = self._count - 1
        if count:
            self._count = count
            return
        # _free written out.
        top = state.top
        if top is not None and top[0] is self:
            state.top = top[1]
        else:
            state.top = unlink(state, self)
        if _lock_released:
            for callback in _lock_released:
                callback(self, state.ident)
        self._count = 0
        self._holder = None
        self._block.release()

    def _free(self, state: ThreadState) -> None:
        """The last level goes. Still *state*'s (at level 1) while anything allocates:
        a finaliser run meanwhile re-enters it and leaves it at level 1; the last steps
        allocate nothing."""
        top = state.top
        if top is not None and top[0] is self:
            state.top = top[1]
        else:
            state.top = unlink(state, self)
        if _lock_released:
            for callback in _lock_released:
                callback(self, state.ident)
        self._count = 0
        self._holder = None
        self._block.release()

    # threading.Condition's protocol
    def _is_owned(self) -> bool:
        holder = self._holder
        return holder is not None and holder is getattr(_tls, "state", None)

    def _release_save(self) -> tuple[int, int | None]:
        if self._count == 0:
            raise RuntimeError("cannot release un-acquired lock")
        holder = self._holder
        current: ThreadState | None = getattr(_tls, "state", None)
        if holder is None or holder is not current:
            raise RuntimeError("cannot release a lock held by another thread")
        saved = (self._count, holder.ident)
        self._count = 0
        self._free(holder)
        return saved

    def _acquire_restore(self, state: tuple[int, int | None]) -> None:
        count, _owner = state
        self._acquire_from(_registry_caller_frame())
        self._count = count

    def _recursion_count(self) -> int:
        return self._count if self._is_owned() else 0

    def locked(self) -> bool:
        """Whether some thread holds the lock."""
        return self._block.locked()

    def statistics(self) -> LockStatistics:
        """A snapshot: locked, owner, acquire site, waiters, recursion level, acquisitions."""
        holder = self._holder
        return LockStatistics(
            locked=self._block.locked(),
            owner=None if holder is None else thread_name(holder.ident),
            site=None if holder is None else self._fermion_site(),
            waiters=self._waiters,
            count=self._count if holder is not None else 0,
            acquisitions=self._fermion_acquisitions,
        )

    def _fermion_site(self) -> Site:
        code = self._code
        if code is None:
            return _registry.UNKNOWN_SITE
        return Site(code.co_filename, line_of(code, self._lasti), code.co_name)

    def _describe(self) -> str:
        return f"RLock#{self._serial} (created at {self._created})"

    def _at_fork_reinit(self) -> None:
        self._block._at_fork_reinit()
        self._holder = None
        self._count = 0
        self._waiters = 0

    def __repr__(self) -> str:
        holder = self._holder
        state = "locked" if self._block.locked() else "unlocked"
        extra = ""
        if holder is not None:
            extra = (
                f"owner={thread_name(holder.ident)!r} count={self._count} "
                f"site={self._fermion_site()} "
            )
        return f"<{state} fermion.sync.CheckedRLock object #{self._serial} {extra}at {id(self):#x}>"


def _registry_caller_frame() -> FrameType:
    """The first frame outside fermion.sync/threading/queue (for re-acquisition sites)."""
    frame: FrameType | None = _getframe(2)
    last = frame
    while frame is not None and _registry._is_internal(frame.f_code.co_filename):
        last = frame
        frame = frame.f_back
    return frame if frame is not None else last  # type: ignore[return-value]


def acquire_restore_lock(lock: Any) -> None:
    """Re-acquire a plain or checked Lock after a Condition wait, at the user's site."""
    if isinstance(lock, CheckedLock):
        lock._acquire_from(_registry_caller_frame())
    else:
        lock.acquire()
