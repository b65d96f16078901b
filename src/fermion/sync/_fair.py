"""FairLock (FIFO hand-off) and RWLock (readers-writer lock with a fairness policy).

``threading.Lock`` lets a releasing thread take the lock straight back, so a waiter
can be passed over again and again. :class:`FairLock` hands the lock directly to the
longest waiter on release: nobody overtakes. :class:`RWLock` lets many readers or one
writer in; its ``policy`` says who goes first when both wait:

* ``"fair"`` (default): arrival order; consecutive readers enter together;
* ``"readers"``: readers enter whenever no writer holds it (writers may starve);
* ``"writers"``: a waiting writer blocks new readers (readers may starve).

When checks are on at creation, waits on both are registered (stalls are reported)
and a FairLock takes part in deadlock and lock-order checks like a checked Lock. A
checked RWLock also counts its admissions and marks each waiter's whole wait for
admission (across the wake-ups its policy sends it back to sleep from), so the
starvation check sees a writer that readers keep passing under ``"readers"``.
"""

from __future__ import annotations

import itertools
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from time import monotonic
from typing import Any

from fermion.sync import _registry
from fermion.sync._conditions import CheckedCondition
from fermion.sync._config import checks_enabled
from fermion.sync._locks import _serials
from fermion.sync._registry import (
    Site,
    ThreadState,
    blocking_wait,
    caller_site,
    pop,
    push,
    thread_name,
    thread_state,
)

__all__ = ["FairLock", "RWLock", "RWLockStatistics"]

_allocate_lock = threading._allocate_lock  # type: ignore[attr-defined]
get_ident = threading.get_ident
_getframe = sys._getframe
POLICIES = ("fair", "readers", "writers")


def _validate_timeout(blocking: bool, timeout: float | None) -> float | None:
    if timeout is not None and timeout < 0 and timeout != -1:
        raise ValueError("timeout value must be a non-negative number")
    if not blocking and timeout not in (None, -1):
        raise ValueError("can't specify a timeout for a non-blocking call")
    return None if timeout is None or timeout == -1 else float(timeout)


class FairLock:
    """A lock handed to waiters in arrival order (FIFO); only its owner may release it."""

    def __init__(self) -> None:
        self._mutex = _allocate_lock()
        self._owner: int | None = None
        self._holder: ThreadState | None = None  # checked: the owner's registry state
        self._locked = False
        self._waiters: deque[Any] = deque()  # lock objects, oldest first
        self._checked = checks_enabled()
        self._serial = next(_serials)
        self._site: Site | None = None
        self._created = caller_site()
        self._fermion_acquisitions = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the lock, after every thread that asked before; ``False`` on timeout."""
        wait_timeout = _validate_timeout(blocking, timeout)
        me = get_ident()
        with self._mutex:
            if self._owner == me and wait_timeout is None and blocking and not self._checked:
                raise RuntimeError(
                    f"FairLock#{self._serial} is already held by the calling thread "
                    f"{thread_name(me)!r}; it is not re-entrant (use an RLock)"
                )
            free = not self._locked
            if free:
                self._locked = True
                self._owner = me
            elif not blocking:
                return False
            else:
                waiter = _allocate_lock()
                waiter.acquire()
                self._waiters.append(waiter)
        if free:  # granted outside the mutex: the checks' listeners may refuse it
            self._grant(me)
            return True
        if self._checked:
            got = blocking_wait(
                self,
                caller_site(),
                wait_timeout,
                lambda seconds: waiter.acquire(True, seconds),
                lambda: not waiter.locked(),
                lambda: () if self._owner is None else (self._owner,),
            )
        else:
            got = waiter.acquire(True, -1 if wait_timeout is None else wait_timeout)
        if not got:
            with self._mutex:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    got = True  # handed to us just as we gave up: we own it
        if got:
            self._grant(me)
        return got

    def _grant(self, me: int) -> None:
        self._owner = me
        self._fermion_acquisitions += 1
        if self._checked:
            self._site = caller_site()
            state = thread_state()
            self._holder = state
            try:
                push(self, state)
            except BaseException:  # the lock-order check refused: give the lock back
                self._holder = None
                with self._mutex:
                    self._hand_over()
                raise
            for callback in _registry._on_acquired:
                callback(self, me)
            for callback in _registry._on_handoff_acquire:
                callback(self, me)

    def release(self) -> None:
        """Release the lock, handing it to the longest waiter if there is one."""
        me = get_ident()
        with self._mutex:
            if not self._locked:
                raise RuntimeError(f"cannot release FairLock#{self._serial}: it is not locked")
            if self._owner != me:
                owner = self._owner
                raise RuntimeError(
                    f"cannot release FairLock#{self._serial}: it is held by thread "
                    f"{thread_name(owner) if owner is not None else '?'!r}, not by the "
                    f"calling thread {thread_name(me)!r}"
                )
            if self._checked:
                for callback in _registry._on_released:
                    callback(self, me)
                for callback in _registry._on_handoff_release:
                    callback(self, me)
                state = self._holder
                self._holder = None
                if state is not None:
                    pop(self, state)
            self._hand_over()

    def _hand_over(self) -> None:
        """Give the lock to the longest waiter, or free it (the caller holds ``_mutex``)."""
        self._owner = None
        if self._waiters:
            self._waiters.popleft().release()  # stays locked: ownership moves
        else:
            self._locked = False

    def __enter__(self) -> bool:
        if not self._checked:  # the uncontended, unchecked case without the extra calls
            with self._mutex:
                if not self._locked:
                    self._locked = True
                    self._owner = get_ident()
                    self._fermion_acquisitions += 1
                    return True
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def locked(self) -> bool:
        """Whether some thread holds the lock (or it is being handed over)."""
        return self._locked

    def _fermion_site(self) -> Site:
        return self._site or _registry.UNKNOWN_SITE

    def _describe(self) -> str:
        return f"FairLock#{self._serial} (created at {self._created})"

    def __repr__(self) -> str:
        state = "locked" if self._locked else "unlocked"
        owner = self._owner
        extra = f" owner={thread_name(owner)!r}" if owner is not None else ""
        return (
            f"<{state} fermion.sync.FairLock #{self._serial}{extra} waiters={len(self._waiters)}>"
        )


@dataclass(frozen=True)
class RWLockStatistics:
    """Readers inside, whether a writer is inside, and how many of each wait."""

    readers: int
    writer: str | None
    waiting_readers: int
    waiting_writers: int


class RWLock:
    """A readers-writer lock: ``with rw.read():`` for many readers, ``with rw.write():`` for one writer."""

    def __init__(self, policy: str = "fair") -> None:
        if policy not in POLICIES:
            raise ValueError(
                f"RWLock policy {policy!r} is not one of {', '.join(map(repr, POLICIES))}"
            )
        self.policy = policy
        mutex = _allocate_lock()
        self._checked = checks_enabled()
        self._cond: Any = (
            CheckedCondition(mutex, _target=self) if self._checked else threading.Condition(mutex)
        )
        self._readers: dict[int, int] = {}  # thread -> read depth
        self._writer: int | None = None
        self._queue: deque[tuple[int, str]] = deque()  # (ticket, "r"|"w") waiting, fair policy
        self._tickets = itertools.count()
        self._waiting_readers = 0
        self._waiting_writers = 0
        self._created = caller_site()
        # Read by the starvation check: admissions so far (readers and writers), and per
        # waiting thread (checked only) when its wait for admission began and the
        # admissions then — one episode across all the condition waits it takes.
        self._fermion_acquisitions = 0
        self._fermion_episodes: dict[int, tuple[float, int]] = {}

    # -- admission rules -----------------------------------------------------------
    def _reader_may_enter(self, ticket: int) -> bool:
        if self._writer is not None:
            return False
        if self.policy == "readers":
            return True
        if self.policy == "writers":
            return self._waiting_writers == 0
        return bool(self._queue) and self._queue[0][0] == ticket

    def _writer_may_enter(self, ticket: int) -> bool:
        if self._writer is not None or self._readers:
            return False
        if self.policy == "fair":
            return bool(self._queue) and self._queue[0][0] == ticket
        return True

    def _admit(
        self, me: int, may_enter: Callable[[], bool], blocking: bool, timeout: float | None
    ) -> bool:
        """Wait (holding the condition) until *may_enter*; one starvation episode."""
        if may_enter():
            return True
        if not blocking:
            return False
        if self._checked:
            self._fermion_episodes[me] = (monotonic(), self._fermion_acquisitions)
        try:
            return bool(self._cond.wait_for(may_enter, timeout))
        finally:
            if self._checked:
                del self._fermion_episodes[me]

    # -- reading ---------------------------------------------------------------------
    def acquire_read(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Enter as a reader; ``False`` if not admitted within *timeout*."""
        wait_timeout = _validate_timeout(blocking, timeout)
        me = get_ident()
        with self._cond:
            if me == self._writer:
                raise RuntimeError(
                    "RWLock: the calling thread holds the write lock; it cannot also read"
                )
            if (
                me in self._readers
            ):  # re-entrant read never waits (it would deadlock behind writers)
                self._readers[me] += 1
                return True
            ticket = next(self._tickets)
            self._queue.append((ticket, "r"))
            self._waiting_readers += 1
            try:
                ok = self._admit(me, lambda: self._reader_may_enter(ticket), blocking, wait_timeout)
            finally:
                self._waiting_readers -= 1
                self._queue.remove((ticket, "r"))
            if ok:
                self._readers[me] = 1
                self._fermion_acquisitions += 1
            self._cond.notify_all()  # the next reader in line may enter too
            return bool(ok)

    def release_read(self) -> None:
        """Leave as a reader."""
        me = get_ident()
        with self._cond:
            depth = self._readers.get(me)
            if depth is None:
                raise RuntimeError(
                    f"RWLock.release_read: thread {thread_name(me)!r} does not hold the read lock"
                )
            if depth > 1:
                self._readers[me] = depth - 1
                return
            del self._readers[me]
            if not self._readers:
                self._cond.notify_all()

    # -- writing ---------------------------------------------------------------------
    def acquire_write(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Enter as the writer; ``False`` if not admitted within *timeout*."""
        wait_timeout = _validate_timeout(blocking, timeout)
        me = get_ident()
        with self._cond:
            if me == self._writer:
                raise RuntimeError("RWLock: the calling thread already holds the write lock")
            if me in self._readers:
                raise RuntimeError(
                    "RWLock: the calling thread holds the read lock; upgrading to write would "
                    "deadlock (release the read lock first)"
                )
            ticket = next(self._tickets)
            self._queue.append((ticket, "w"))
            self._waiting_writers += 1
            try:
                ok = self._admit(me, lambda: self._writer_may_enter(ticket), blocking, wait_timeout)
            finally:
                self._waiting_writers -= 1
                self._queue.remove((ticket, "w"))
            if ok:
                self._writer = me
                self._fermion_acquisitions += 1
            else:
                self._cond.notify_all()  # readers held back by this writer may go
            return bool(ok)

    def release_write(self) -> None:
        """Leave as the writer."""
        me = get_ident()
        with self._cond:
            if self._writer != me:
                raise RuntimeError(
                    f"RWLock.release_write: thread {thread_name(me)!r} does not hold the write lock"
                )
            self._writer = None
            self._cond.notify_all()

    def read(self) -> _Held:
        """``with rw.read():`` — hold the lock as a reader for the block."""
        return _Held(self.acquire_read, self.release_read)

    def write(self) -> _Held:
        """``with rw.write():`` — hold the lock as the writer for the block."""
        return _Held(self.acquire_write, self.release_write)

    def statistics(self) -> RWLockStatistics:
        """A snapshot of who is inside and who waits."""
        writer = self._writer
        return RWLockStatistics(
            readers=len(self._readers),
            writer=None if writer is None else thread_name(writer),
            waiting_readers=self._waiting_readers,
            waiting_writers=self._waiting_writers,
        )

    def _fermion_describe(self) -> str:
        return f"RWLock(policy={self.policy!r}) (created at {self._created})"

    def _fermion_starvation_advice(self) -> str:
        if self.policy == "fair":
            return "Hold the lock for less time."
        passed_over = "writers" if self.policy == "readers" else "readers"
        return (
            f"Its policy {self.policy!r} lets the other side pass waiting {passed_over}: "
            'use RWLock(policy="fair") (arrival order) or hold the lock for less time.'
        )

    def __repr__(self) -> str:
        s = self.statistics()
        return (
            f"<fermion.sync.RWLock policy={self.policy!r} readers={s.readers} writer={s.writer!r} "
            f"waiting={s.waiting_readers}r/{s.waiting_writers}w>"
        )


class _Held:
    """What :meth:`RWLock.read` and :meth:`RWLock.write` return: a plain context manager
    (not a generator one, so a wait inside is reported at the user's ``with`` line)."""

    __slots__ = ("_acquire", "_release")

    def __init__(self, acquire: Callable[[], bool], release: Callable[[], None]) -> None:
        self._acquire = acquire
        self._release = release

    def __enter__(self) -> None:
        self._acquire()

    def __exit__(self, *exc_info: object) -> None:
        self._release()
