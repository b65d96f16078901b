"""CPython's own conformance suite for locks (Lib/test/lock_tests.py), on fermion's primitives.

The suite ships with CPython's ``test`` package; where an interpreter lacks it the
module is skipped (CI's interpreters have it). Each type runs checked, and the
factories run unchecked (where they must be the standard library's own objects).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import fermion.sync as fsync
from fermion.sync import (
    CheckedBarrier,
    CheckedBoundedSemaphore,
    CheckedCondition,
    CheckedEvent,
    CheckedLock,
    CheckedRLock,
    CheckedSemaphore,
    _registry,
)

lock_tests = pytest.importorskip("test.lock_tests")


@pytest.fixture(autouse=True)
def _forget_abandoned_holds() -> Iterator[None]:
    """Some of lock_tests drop a lock while holding it; a checked lock is then still
    recorded as held by the thread (it is: nobody can release it). Forget those records
    so they do not leak into later tests."""
    yield
    _registry.forget_holds()


class _Quiet:
    """Skip lock_tests' own thread-count bookkeeping: it counts pytest-timeout's timer
    threads as dangling and waits on them; tests/conftest.py checks leaks instead."""

    def setUp(self) -> None:
        pass

    def tearDown(self) -> None:
        pass


def _lenient_lock() -> CheckedLock:
    return CheckedLock(strict=False)


# -- checked ---------------------------------------------------------------------------
class TestCheckedLock(_Quiet, lock_tests.LockTests):  # type: ignore[misc,name-defined]
    """What patch_threading installs as threading.Lock: full threading semantics."""

    locktype = staticmethod(_lenient_lock)


@pytest.mark.filterwarnings("ignore::fermion.errors.LockReleaseWarning")
class TestStrictCheckedLock(_Quiet, lock_tests.LockTests):  # type: ignore[misc,name-defined]
    """fermion.sync.Lock() under checks: threading.Lock's semantics too (a release by
    another thread happens, and is reported as a LockReleaseWarning)."""

    locktype = staticmethod(CheckedLock)


class TestCheckedRLock(_Quiet, lock_tests.RLockTests):  # type: ignore[misc,name-defined]
    locktype = staticmethod(CheckedRLock)


class TestCheckedEvent(_Quiet, lock_tests.EventTests):  # type: ignore[misc,name-defined]
    eventtype = staticmethod(CheckedEvent)


class TestCheckedCondition(_Quiet, lock_tests.ConditionTests):  # type: ignore[misc,name-defined]
    condtype = staticmethod(CheckedCondition)


class TestCheckedSemaphore(_Quiet, lock_tests.SemaphoreTests):  # type: ignore[misc,name-defined]
    semtype = staticmethod(CheckedSemaphore)


class TestCheckedBoundedSemaphore(_Quiet, lock_tests.BoundedSemaphoreTests):  # type: ignore[misc,name-defined]
    semtype = staticmethod(CheckedBoundedSemaphore)


class TestCheckedBarrier(_Quiet, lock_tests.BarrierTests):  # type: ignore[misc,name-defined]
    barriertype = staticmethod(CheckedBarrier)

    def setUp(self) -> None:
        self.barrier = self.barriertype(self.N, timeout=self.defaultTimeout)

    def tearDown(self) -> None:
        self.barrier.abort()


# -- unchecked: the factories with checks off --------------------------------------------
class TestUncheckedLock(_Quiet, lock_tests.LockTests):  # type: ignore[misc,name-defined]
    locktype = staticmethod(fsync.Lock)


class TestUncheckedRLock(_Quiet, lock_tests.RLockTests):  # type: ignore[misc,name-defined]
    locktype = staticmethod(fsync.RLock)


class TestUncheckedEvent(_Quiet, lock_tests.EventTests):  # type: ignore[misc,name-defined]
    eventtype = staticmethod(fsync.Event)


class TestUncheckedCondition(_Quiet, lock_tests.ConditionTests):  # type: ignore[misc,name-defined]
    condtype = staticmethod(fsync.Condition)


class TestUncheckedSemaphore(_Quiet, lock_tests.SemaphoreTests):  # type: ignore[misc,name-defined]
    semtype = staticmethod(fsync.Semaphore)


class TestUncheckedBoundedSemaphore(_Quiet, lock_tests.BoundedSemaphoreTests):  # type: ignore[misc,name-defined]
    semtype = staticmethod(fsync.BoundedSemaphore)


class TestUncheckedBarrier(_Quiet, lock_tests.BarrierTests):  # type: ignore[misc,name-defined]
    barriertype = staticmethod(fsync.Barrier)

    def setUp(self) -> None:
        self.barrier = self.barriertype(self.N, timeout=self.defaultTimeout)

    def tearDown(self) -> None:
        self.barrier.abort()
