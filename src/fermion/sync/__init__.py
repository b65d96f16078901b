"""fermion.sync: drop-in threading/queue primitives, and what threading lacks.

``Lock``, ``RLock``, ``Semaphore``, ``BoundedSemaphore``, ``Condition``, ``Event``,
``Barrier``, ``Queue``, ``LifoQueue``, ``PriorityQueue`` and ``SimpleQueue`` take the
same arguments and behave as the standard library's. Whether they are *checked* is
decided when each is created: with checks off (the default) they return the standard
library's own objects, so they cost exactly what threading's cost; with checks on
(``fermion.check.enable()``, ``FERMION_CHECK=1`` or ``fermion check``) they return
checked versions that know their owner and acquire site, report blocking waits, and
feed the deadlock, lock-order, starvation and race checks.

Beyond threading: :class:`FairLock` (FIFO hand-off), :class:`RWLock` (policy
``"fair"``, ``"readers"`` or ``"writers"``), :class:`AtomicInt` and :class:`AtomicRef`.
"""

from __future__ import annotations

import queue as _queue
import threading as _threading
from typing import Any

from fermion.sync._atomic import AtomicInt, AtomicRef
from fermion.sync._conditions import (
    CheckedBarrier,
    CheckedBoundedSemaphore,
    CheckedCondition,
    CheckedEvent,
    CheckedSemaphore,
)
from fermion.sync._config import checks_enabled
from fermion.sync._fair import FairLock, RWLock, RWLockStatistics
from fermion.sync._locks import CheckedLock, CheckedRLock, LockStatistics
from fermion.sync._queues import (
    CheckedLifoQueue,
    CheckedPriorityQueue,
    CheckedQueue,
    CheckedSimpleQueue,
)
from fermion.sync._registry import caller_site

__all__ = [
    "AtomicInt",
    "AtomicRef",
    "Barrier",
    "BoundedSemaphore",
    "CheckedBarrier",
    "CheckedBoundedSemaphore",
    "CheckedCondition",
    "CheckedEvent",
    "CheckedLifoQueue",
    "CheckedLock",
    "CheckedPriorityQueue",
    "CheckedQueue",
    "CheckedRLock",
    "CheckedSemaphore",
    "CheckedSimpleQueue",
    "Condition",
    "Event",
    "FairLock",
    "LifoQueue",
    "Lock",
    "LockStatistics",
    "PriorityQueue",
    "Queue",
    "RLock",
    "RWLock",
    "RWLockStatistics",
    "Semaphore",
    "SimpleQueue",
    "checks_enabled",
]

_allocate_lock = _threading._allocate_lock  # type: ignore[attr-defined]
_plain_rlock = _threading.RLock
_PlainCondition = _threading.Condition
_PlainSemaphore = _threading.Semaphore
_PlainBoundedSemaphore = _threading.BoundedSemaphore
_PlainEvent = _threading.Event
_PlainBarrier = _threading.Barrier
_PlainQueue = _queue.Queue
_PlainLifoQueue = _queue.LifoQueue
_PlainPriorityQueue = _queue.PriorityQueue
_PlainSimpleQueue = _queue.SimpleQueue


def Lock() -> Any:
    """A mutual-exclusion lock: ``threading.Lock()`` itself, or a :class:`CheckedLock`."""
    if checks_enabled():
        return CheckedLock(_created=caller_site())
    return _allocate_lock()


def RLock() -> Any:
    """A re-entrant lock: ``threading.RLock()`` itself, or a :class:`CheckedRLock`."""
    if checks_enabled():
        return CheckedRLock(_created=caller_site())
    return _plain_rlock()


def Condition(lock: Any = None) -> Any:
    """A condition variable over *lock* (default: a new RLock of the same kind)."""
    if checks_enabled():
        return CheckedCondition(lock)
    return _PlainCondition(lock)


def Semaphore(value: int = 1) -> Any:
    """A counting semaphore, as ``threading.Semaphore``."""
    return CheckedSemaphore(value) if checks_enabled() else _PlainSemaphore(value)


def BoundedSemaphore(value: int = 1) -> Any:
    """A semaphore that refuses to be released above its initial value."""
    return CheckedBoundedSemaphore(value) if checks_enabled() else _PlainBoundedSemaphore(value)


def Event() -> Any:
    """A flag threads can wait for, as ``threading.Event``."""
    return CheckedEvent() if checks_enabled() else _PlainEvent()


def Barrier(parties: int, action: Any = None, timeout: float | None = None) -> Any:
    """A barrier for *parties* threads, as ``threading.Barrier``."""
    if checks_enabled():
        return CheckedBarrier(parties, action, timeout)
    return _PlainBarrier(parties, action, timeout)


def Queue(maxsize: int = 0) -> Any:
    """A FIFO queue, as ``queue.Queue`` (checked ones subclass it)."""
    return CheckedQueue(maxsize) if checks_enabled() else _PlainQueue(maxsize)


def LifoQueue(maxsize: int = 0) -> Any:
    """A LIFO queue, as ``queue.LifoQueue``."""
    return CheckedLifoQueue(maxsize) if checks_enabled() else _PlainLifoQueue(maxsize)


def PriorityQueue(maxsize: int = 0) -> Any:
    """A priority queue, as ``queue.PriorityQueue``."""
    return CheckedPriorityQueue(maxsize) if checks_enabled() else _PlainPriorityQueue(maxsize)


def SimpleQueue() -> Any:
    """An unbounded FIFO queue, as ``queue.SimpleQueue``."""
    return CheckedSimpleQueue() if checks_enabled() else _PlainSimpleQueue()
