"""fermion.sync's primitives: unchecked identity, checked behaviour, and what threading lacks."""

from __future__ import annotations

import os
import queue
import sys
import threading

import pytest

import fermion.sync as fsync
from fermion.errors import LockReleaseWarning
from fermion.sync import (
    AtomicInt,
    AtomicRef,
    CheckedCondition,
    CheckedLock,
    CheckedQueue,
    CheckedRLock,
    CheckedSimpleQueue,
    FairLock,
    RWLock,
    _config,
)

WAIT = 10.0  # safety-net timeout for every wait in these tests


@pytest.fixture
def checks_on() -> object:
    was = _config._enabled
    _config.set_checks_enabled(True)
    yield
    _config._enabled = was


def run_threads(*targets: object, names: tuple[str, ...] = ()) -> list[threading.Thread]:
    threads = [
        threading.Thread(target=t, name=names[i] if i < len(names) else None)  # type: ignore[arg-type]
        for i, t in enumerate(targets)
    ]
    for t in threads:
        t.start()
    return threads


def join_all(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive(), f"{t.name} did not finish"


# -- checks off: the standard library's own objects --------------------------------------
def test_unchecked_factories_return_the_standard_library_objects() -> None:
    assert not fsync.checks_enabled()
    assert type(fsync.Lock()) is type(threading.Lock())
    assert type(fsync.RLock()) is type(threading.RLock())
    assert type(fsync.Condition()) is threading.Condition
    assert type(fsync.Semaphore()) is threading.Semaphore
    assert type(fsync.BoundedSemaphore()) is threading.BoundedSemaphore
    assert type(fsync.Event()) is threading.Event
    assert type(fsync.Barrier(2)) is threading.Barrier
    assert type(fsync.Queue()) is queue.Queue
    assert type(fsync.LifoQueue()) is queue.LifoQueue
    assert type(fsync.PriorityQueue()) is queue.PriorityQueue
    assert type(fsync.SimpleQueue()) is queue.SimpleQueue


def test_checked_factories_return_checked_subclasses(checks_on: object) -> None:
    assert isinstance(fsync.Lock(), CheckedLock)
    assert isinstance(fsync.RLock(), CheckedRLock)
    assert isinstance(fsync.Condition(), CheckedCondition)
    assert isinstance(fsync.Semaphore(), threading.Semaphore)
    assert isinstance(fsync.Event(), threading.Event)
    assert isinstance(fsync.Queue(), queue.Queue) and isinstance(fsync.Queue(), CheckedQueue)
    assert isinstance(fsync.SimpleQueue(), CheckedSimpleQueue)


def test_environment_variable_turns_checks_on_when_first_needed() -> None:
    import subprocess

    code = (
        "import fermion.sync as s, fermion.check as c\n"
        "print(type(s.Lock()).__name__, c.enabled())\n"
        "c.disable()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "FERMION_CHECK"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "FERMION_CHECK": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.split() == ["CheckedLock", "True"], out.stderr
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.split() == ["lock", "False"], out.stderr


# -- checked locks ---------------------------------------------------------------------------
def test_checked_lock_records_owner_and_site() -> None:
    lock = CheckedLock()
    assert lock.statistics().locked is False and lock.statistics().owner is None
    with lock:
        line = test_checked_lock_records_owner_and_site.__code__.co_firstlineno + 3
        stats = lock.statistics()
    assert stats.locked and stats.owner == "MainThread" and stats.count == 1
    assert stats.site is not None and stats.site.line == line and stats.site.file == __file__
    assert stats.acquisitions == 1
    assert "unlocked" in repr(lock)


def test_checked_lock_acquire_site_via_acquire_call() -> None:
    lock = CheckedLock()
    lock.acquire()
    line = test_checked_lock_acquire_site_via_acquire_call.__code__.co_firstlineno + 2
    try:
        assert lock.statistics().site.line == line  # type: ignore[union-attr]
        assert "owner='MainThread'" in repr(lock)
    finally:
        lock.release()


def test_release_by_non_owner_happens_and_is_reported_naming_both_threads() -> None:
    lock = CheckedLock()
    taken, done = threading.Event(), threading.Event()

    def holder() -> None:
        lock.acquire()
        taken.set()
        done.wait(WAIT)

    threads = run_threads(holder, names=("holder",))
    assert taken.wait(WAIT)
    try:
        with pytest.warns(
            LockReleaseWarning,
            match=r"Lock#\d+ \(created at .*\) was released by thread 'MainThread' at "
            r".*test_sync_primitives.py:\d+ in test_release_by_non_owner.* while thread "
            r"'holder' holds it \(taken at .*test_sync_primitives.py:\d+ in holder\)",
        ):
            lock.release()  # as threading.Lock: the release happens
        assert not lock.locked() and lock.statistics().owner is None
    finally:
        done.set()
        join_all(threads)


def test_release_of_unlocked_lock_raises_like_threading() -> None:
    with pytest.raises(RuntimeError, match="release unlocked lock"):
        CheckedLock().release()
    with pytest.raises(RuntimeError, match="cannot release un-acquired lock"):
        CheckedRLock().release()


def test_rlock_release_by_non_owner_names_the_owner() -> None:
    lock = CheckedRLock()
    taken, done = threading.Event(), threading.Event()

    def holder() -> None:
        with lock, lock:
            taken.set()
            done.wait(WAIT)

    threads = run_threads(holder, names=("rholder",))
    assert taken.wait(WAIT)
    try:
        assert lock.statistics().count == 2 and lock.statistics().owner == "rholder"
        with pytest.raises(RuntimeError, match="held by thread 'rholder'"):
            lock.release()
    finally:
        done.set()
        join_all(threads)


def test_lenient_lock_may_be_released_by_another_thread() -> None:
    lock = CheckedLock(strict=False)
    lock.acquire()
    threads = run_threads(lock.release)
    join_all(threads)
    assert not lock.locked()
    assert lock.acquire(timeout=1)
    lock.release()


def test_statistics_count_waiters() -> None:
    lock = CheckedLock()
    lock.acquire()
    got: list[bool] = []
    threads = run_threads(lambda: got.append(lock.acquire(timeout=WAIT)))
    for _ in range(1000):
        if lock.statistics().waiters == 1:
            break
        threading.Event().wait(0.01)
    assert lock.statistics().waiters == 1
    lock.release()
    join_all(threads)
    assert got == [True]
    lock.release() if lock.statistics().owner == "MainThread" else None


# -- the registry's record of holds ---------------------------------------------------------
def _line_above() -> int:
    return sys._getframe(1).f_lineno - 1


def test_held_lists_the_threads_locks_oldest_first_even_after_out_of_order_releases() -> None:
    from fermion.sync import _registry

    a, b, c = CheckedLock(), CheckedRLock(), CheckedLock()
    a.acquire(), b.acquire(), b.acquire(), c.acquire()
    line = _line_above()
    seen_elsewhere: list[list[object]] = []
    me = threading.get_ident()
    join_all(run_threads(lambda: seen_elsewhere.append([h.primitive for h in _registry.held(me)])))
    try:
        holds = _registry.held()
        assert [h.primitive for h in holds] == [a, b, c]  # the re-entered RLock once
        assert seen_elsewhere == [[a, b, c]]
        assert {h.site.line for h in holds} == {line} and holds[0].site.file == __file__
        a.release()  # hand-over-hand: not the newest hold
        assert [h.primitive for h in _registry.held()] == [b, c]
        b.release()
        assert [h.primitive for h in _registry.held()] == [b, c]  # still entered once
        b.release()
        assert [h.primitive for h in _registry.held()] == [c]
    finally:
        c.release()
    assert _registry.held() == []


def test_a_lenient_lock_released_elsewhere_leaves_no_hold_behind() -> None:
    from fermion.sync import _registry

    signal, other = CheckedLock(strict=False), CheckedLock()
    for _ in range(50):  # the lock-as-signal pattern: taken here, released by a helper
        signal.acquire()
        join_all(run_threads(signal.release))
        assert _registry.held() == []
        with other:  # the next acquire drops the stale entry from the chain
            assert [h.primitive for h in _registry.held()] == [other]
            assert _registry.thread_state().top == (other, None)
    assert _registry.thread_state().top is None


def test_acquire_listeners_get_the_lock_and_thread_and_the_site_on_demand() -> None:
    from fermion.sync import _registry

    events: list[tuple[str, object, int, int]] = []

    class Listener:
        def on_acquired(self, primitive: CheckedLock, thread: int) -> None:
            events.append(("acquired", primitive, thread, primitive._fermion_site().line))

        def on_released(self, primitive: CheckedLock, thread: int) -> None:
            events.append(("released", primitive, thread, 0))

    lock, listener = CheckedLock(), Listener()
    _registry.add_listener(listener)
    try:
        with lock:
            line = _line_above()
    finally:
        _registry.remove_listener(listener)
    me = threading.get_ident()
    assert events == [("acquired", lock, me, line), ("released", lock, me, 0)]
    assert not _registry._lock_acquired and not _registry._lock_released


def test_a_listener_may_take_lock_hand_offs_or_leave_them() -> None:
    from fermion.sync import CheckedSemaphore, _registry

    class Listener:
        def __init__(self) -> None:
            self.events: list[tuple[str, object]] = []

        def on_acquired(self, primitive: object, thread: int) -> None:
            self.events.append(("acquired", primitive))

        def on_handoff_acquire(self, token: object, thread: int) -> None:
            self.events.append(("handoff-acquire", token))

        def on_handoff_release(self, token: object, thread: int) -> None:
            self.events.append(("handoff-release", token))

    class LocksetListener(Listener):
        handoffs_from_locks = False  # its lockset covers locks: no hand-offs from them

    lock, rlock, sem = CheckedLock(), CheckedRLock(), CheckedSemaphore(1)
    every, lockset = Listener(), LocksetListener()
    _registry.add_listener(every)
    _registry.add_listener(lockset)
    try:
        for primitive in (lock, rlock, sem):
            with primitive:
                pass
    finally:
        _registry.remove_listener(every)
        _registry.remove_listener(lockset)
    on_locks = [event for event in every.events if event[1] is not sem]
    assert on_locks == [
        ("acquired", lock),
        ("handoff-acquire", lock),
        ("handoff-release", lock),
        ("acquired", rlock),
        ("handoff-acquire", rlock),
        ("handoff-release", rlock),
    ]
    assert [event for event in lockset.events if event[1] is not sem] == [
        ("acquired", lock),
        ("acquired", rlock),
    ]
    # Other primitives' hand-offs reach both listeners alike.
    on_sem = [event for event in every.events if event[1] is sem]
    assert {kind for kind, _ in on_sem} == {"handoff-acquire", "handoff-release"}
    assert [event for event in lockset.events if event[1] is sem] == on_sem
    assert not _registry._lock_acquired and not _registry._lock_released


def test_a_checked_event_seen_set_by_is_set_is_a_hand_off() -> None:
    from fermion.sync import CheckedEvent, _registry

    seen: list[tuple[object, int]] = []

    class Listener:
        def on_handoff_acquire(self, token: object, thread: int) -> None:
            seen.append((token, thread))

    event, listener = CheckedEvent(), Listener()
    _registry.add_listener(listener)
    try:
        assert event.is_set() is False
        assert seen == []  # nothing to see yet
        event.set()
        assert event.is_set() is True
    finally:
        _registry.remove_listener(listener)
    assert seen == [(event, threading.get_ident())]


# -- FairLock ----------------------------------------------------------------------------------
def _wait_until(predicate: object) -> None:
    for _ in range(2000):
        if predicate():  # type: ignore[operator]
            return
        threading.Event().wait(0.005)
    raise AssertionError("condition not reached")


@pytest.mark.parametrize("repeat", range(5))
def test_fair_lock_serves_waiters_in_arrival_order(repeat: int) -> None:
    lock = FairLock()
    order: list[int] = []
    lock.acquire()

    def waiter(i: int) -> None:
        with lock:
            order.append(i)

    threads = []
    for i in range(6):
        t = threading.Thread(target=waiter, args=(i,))
        t.start()
        threads.append(t)
        _wait_until(lambda n=i + 1: len(lock._waiters) == n)
    lock.release()
    join_all(threads)
    assert order == list(range(6))


def test_fair_lock_timeout_and_errors() -> None:
    lock = FairLock()
    assert lock.acquire()
    result: list[bool] = []
    threads = run_threads(lambda: result.append(lock.acquire(timeout=0.05)))
    join_all(threads)
    assert result == [False] and lock._waiters == type(lock._waiters)()
    with pytest.raises(RuntimeError, match="is not re-entrant"):
        lock.acquire()
    lock.release()
    with pytest.raises(RuntimeError, match="it is not locked"):
        lock.release()
    with pytest.raises(ValueError, match="can't specify a timeout for a non-blocking call"):
        lock.acquire(False, 1)


def test_fair_lock_refuses_release_by_non_owner() -> None:
    lock = FairLock()
    lock.acquire()
    errors: list[Exception] = []

    def intruder() -> None:
        try:
            lock.release()
        except RuntimeError as exc:
            errors.append(exc)

    join_all(run_threads(intruder, names=("intruder",)))
    assert len(errors) == 1 and "held by thread 'MainThread'" in str(errors[0])
    lock.release()


def test_fair_lock_mutual_exclusion_stress() -> None:
    lock = FairLock()
    counter = {"n": 0}

    def work() -> None:
        for _ in range(500):
            with lock:
                value = counter["n"]
                counter["n"] = value + 1

    join_all(run_threads(*[work] * 4))
    assert counter["n"] == 2000


# -- RWLock -------------------------------------------------------------------------------------
def test_rwlock_lets_readers_in_together() -> None:
    rw = RWLock()
    inside = threading.Barrier(3, timeout=WAIT)

    def reader() -> None:
        with rw.read():
            inside.wait()  # only passes if all three readers are inside at once

    join_all(run_threads(reader, reader, reader))


def test_rwlock_writer_excludes_everyone() -> None:
    rw = RWLock()
    got: list[bool] = []

    def other() -> None:
        got.append(rw.acquire_read(blocking=False))
        got.append(rw.acquire_write(timeout=0.05))

    with rw.write():
        join_all(run_threads(other))
    assert got == [False, False]
    with pytest.raises(RuntimeError, match="holds the write lock; it cannot also read"), rw.write():
        rw.acquire_read()


def test_rwlock_write_reentry_and_upgrade_are_refused() -> None:
    rw = RWLock()
    with rw.write(), pytest.raises(RuntimeError, match="already holds the write lock"):
        rw.acquire_write()
    with rw.read(), pytest.raises(RuntimeError, match="upgrading to write would deadlock"):
        rw.acquire_write()


def test_rwlock_rejects_unknown_policy() -> None:
    with pytest.raises(
        ValueError, match="RWLock policy 'lifo' is not one of 'fair', 'readers', 'writers'"
    ):
        RWLock("lifo")


def test_rwlock_release_without_holding_raises() -> None:
    rw = RWLock()
    with pytest.raises(RuntimeError, match="does not hold the read lock"):
        rw.release_read()
    with pytest.raises(RuntimeError, match="does not hold the write lock"):
        rw.release_write()


@pytest.mark.parametrize(
    ("policy", "reader_gets_in"), [("fair", False), ("writers", False), ("readers", True)]
)
def test_rwlock_policy_decides_whether_a_reader_passes_a_waiting_writer(
    policy: str, reader_gets_in: bool
) -> None:
    rw = RWLock(policy)
    rw.acquire_read()
    writer_done = threading.Event()

    def writer() -> None:
        with rw.write():
            pass
        writer_done.set()

    threads = run_threads(writer)
    _wait_until(lambda: rw.statistics().waiting_writers == 1)
    got: list[bool] = []

    def late_reader() -> None:
        ok = rw.acquire_read(timeout=0.2)
        got.append(ok)
        if ok:
            rw.release_read()

    join_all(run_threads(late_reader))
    assert got == [reader_gets_in]
    rw.release_read()
    assert writer_done.wait(WAIT)
    join_all(threads)


def test_rwlock_stress_keeps_writers_exclusive() -> None:
    for policy in ("fair", "readers", "writers"):
        rw = RWLock(policy)
        state = {"writers": 0, "readers": 0, "bad": 0}
        guard = threading.Lock()

        def worker(
            i: int, rw: RWLock = rw, state: dict[str, int] = state, guard: object = guard
        ) -> None:
            for n in range(200):
                if (i + n) % 5 == 0:
                    with rw.write():
                        with guard:
                            state["writers"] += 1
                            if state["writers"] != 1 or state["readers"]:
                                state["bad"] += 1
                        with guard:
                            state["writers"] -= 1
                else:
                    with rw.read():
                        with guard:
                            state["readers"] += 1
                            if state["writers"]:
                                state["bad"] += 1
                        with guard:
                            state["readers"] -= 1

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        join_all(threads)
        assert state["bad"] == 0, policy


# -- atomics ---------------------------------------------------------------------------------------
def test_atomic_int_operations() -> None:
    n = AtomicInt(5)
    assert n.add_and_get(2) == 7 and n.get_and_add(3) == 7 and n.get() == 10
    assert n.compare_and_set(10, 1) and not n.compare_and_set(10, 2) and n.get() == 1
    assert n.get_and_set(9) == 1 and n.increment_and_get() == 10 and n.decrement_and_get() == 9
    assert n.update_and_get(lambda v: v * 2) == 18 and int(n) == 18 and repr(n) == "AtomicInt(18)"
    with pytest.raises(TypeError, match="AtomicInt needs an int, got str"):
        AtomicInt("1")  # type: ignore[arg-type]


def test_atomic_int_loses_no_update_under_contention() -> None:
    n = AtomicInt()
    cas_wins = AtomicInt()

    def work() -> None:
        for _ in range(5000):
            n.add_and_get(1)
            while True:
                current = cas_wins.get()
                if cas_wins.compare_and_set(current, current + 1):
                    break

    join_all(run_threads(*[work] * 4))
    assert n.get() == 20000 and cas_wins.get() == 20000


def test_atomic_ref_compares_identity() -> None:
    a, b = [1], [1]
    ref = AtomicRef(a)
    assert not ref.compare_and_set(b, b)  # equal but not the same object
    assert ref.compare_and_set(a, b) and ref.get() is b
    assert ref.get_and_set(a) is b and ref.update_and_get(lambda v: [*v, 2]) == [1, 2]


# -- checked queues and conditions (semantics) ------------------------------------------------------
def test_checked_queues_keep_their_order() -> None:
    from fermion.sync import CheckedLifoQueue, CheckedPriorityQueue

    for cls, expected in (
        (CheckedQueue, [3, 1, 2]),
        (CheckedLifoQueue, [2, 1, 3]),
        (CheckedPriorityQueue, [1, 2, 3]),
    ):
        q = cls()
        for item in (3, 1, 2):
            q.put(item)
        assert [q.get(timeout=WAIT) for _ in range(3)] == expected
    with pytest.raises(queue.Empty):
        CheckedQueue().get(timeout=0.01)
    full = CheckedQueue(1)
    full.put(1)
    with pytest.raises(queue.Full):
        full.put(2, timeout=0.01)


def test_checked_queue_join_and_simple_queue() -> None:
    q = CheckedQueue()
    results: list[int] = []

    def worker() -> None:
        for _ in range(3):
            results.append(q.get(timeout=WAIT))
            q.task_done()

    threads = run_threads(worker)
    for i in range(3):
        q.put(i)
    q.join()
    join_all(threads)
    assert results == [0, 1, 2]
    sq = CheckedSimpleQueue()
    with pytest.raises(queue.Empty):
        sq.get(timeout=0.01)
    with pytest.raises(queue.Empty):
        sq.get_nowait()
    threads = run_threads(lambda: sq.put("x"))
    assert sq.get(timeout=WAIT) == "x"
    join_all(threads)
    with pytest.raises(ValueError, match="'timeout' must be a non-negative number"):
        sq.get(timeout=-1)


def test_checked_condition_producer_consumer() -> None:
    cond = CheckedCondition()
    items: list[int] = []
    got: list[int] = []

    def consumer() -> None:
        for _ in range(50):
            with cond:
                assert cond.wait_for(lambda: items, timeout=WAIT)
                got.append(items.pop(0))

    threads = run_threads(consumer)
    for i in range(50):
        with cond:
            items.append(i)
            cond.notify()
    join_all(threads)
    assert got == list(range(50))


# -- stress: real parallelism on free-threaded builds -------------------------------------------
@pytest.mark.parametrize(
    "make_lock", [CheckedLock, CheckedRLock, FairLock], ids=["Lock", "RLock", "FairLock"]
)
def test_checked_locks_exclude_under_contention(make_lock: object) -> None:
    lock = make_lock()  # type: ignore[operator]
    box = {"n": 0}
    holders = AtomicInt()
    overlaps = AtomicInt()

    def work() -> None:
        for _ in range(2000):
            with lock:
                if holders.add_and_get(1) != 1:
                    overlaps.add_and_get(1)
                box["n"] += 1
                holders.add_and_get(-1)

    join_all(run_threads(*[work] * 4))
    assert box["n"] == 8000 and overlaps.get() == 0
    assert not lock.locked()


@pytest.mark.skipif(
    not getattr(sys, "_is_gil_enabled", lambda: True)(),
    reason="a GIL effect: without the GIL the holder runs on while others wait",
)
@pytest.mark.parametrize("make_lock", [CheckedLock, CheckedRLock], ids=["Lock", "RLock"])
def test_a_contended_checked_lock_does_not_convoy(make_lock: object) -> None:
    # The GIL may switch threads inside a checked lock's critical section (it runs
    # Python code); a thread that then parked on the lock at once could take it from
    # the running thread on its next release and send that one to park in turn, on
    # and on: every acquisition a registered wait and two thread switches. A waiter
    # first gives the GIL to the holder; registered waits stay rare.
    from fermion.sync import _registry

    waits = AtomicInt()
    total = {"n": 0}

    class CountWaits:
        def on_wait_begin(self, wait: object) -> None:
            waits.add_and_get(1)

    def inside() -> None:  # a Python call in the critical section: a GIL switch point
        total["n"] += 1

    listener = CountWaits()
    _registry.add_listener(listener)
    try:
        for _ in range(5):  # a convoy, once formed, lasts: without the fix most rounds have one
            lock = make_lock()  # type: ignore[operator]

            def work(lock: object = lock) -> None:
                for _ in range(10_000):
                    with lock:  # type: ignore[attr-defined]
                        inside()

            join_all(run_threads(*[work] * 4))
    finally:
        _registry.remove_listener(listener)
    assert total["n"] == 200_000
    assert waits.get() < 2_000, f"{waits.get()} of 200000 acquisitions waited: a convoy"


def test_checked_queue_and_semaphore_under_contention() -> None:
    from fermion.sync import CheckedBoundedSemaphore

    q = CheckedQueue(maxsize=8)
    sem = CheckedBoundedSemaphore(2)
    inside = AtomicInt()
    peak = AtomicInt()
    received: list[int] = []

    def produce(base: int) -> None:
        for i in range(500):
            q.put(base + i, timeout=WAIT)

    def consume() -> None:
        for _ in range(500):
            item = q.get(timeout=WAIT)
            with sem:
                now = inside.add_and_get(1)
                peak.update_and_get(lambda p, now=now: max(p, now))
                inside.add_and_get(-1)
            received.append(item)

    join_all(
        run_threads(*[lambda b=b: produce(b) for b in (0, 1000, 2000)], consume, consume, consume)
    )
    assert sorted(received) == sorted(b + i for b in (0, 1000, 2000) for i in range(500))
    assert peak.get() <= 2
