"""The checks wired to real threads: deadlock, stall, lock order, starvation, patching."""

from __future__ import annotations

import os
import pickle
import queue
import re
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

import fermion.sync as fsync
from fermion import check
from fermion.errors import (
    DeadlockError,
    LockOrderError,
    LockOrderWarning,
    LockReleaseWarning,
    StarvationWarning,
)
from fermion.sync import CheckedLock, _registry

WAIT = 10.0


def other_threads() -> set[int]:
    """Threads that exist before a test (pytest-timeout's timer): the stall check skips them."""
    me = threading.current_thread()
    return {t.ident for t in threading.enumerate() if t is not me and t.ident is not None}


@pytest.fixture
def checks() -> Iterator[None]:
    _registry.forget_holds()  # no holds left over from other tests
    check.clear_findings()
    with check.enable(on_lock_order="record", starvation=False, ignored_threads=other_threads()):
        yield
    check.clear_findings()


def wait_until_waiting(thread: threading.Thread) -> None:
    deadline = time.monotonic() + WAIT
    while thread.ident not in _registry.waiting():
        assert time.monotonic() < deadline, f"{thread.name} never started waiting"
        time.sleep(0.005)


def here() -> int:
    import sys

    return sys._getframe(1).f_lineno


def test_abba_raises_in_the_thread_that_closes_the_cycle(checks: None) -> None:
    a, b = fsync.Lock(), fsync.Lock()
    has_b = threading.Event()
    lines: dict[str, int] = {}

    def worker() -> None:
        with b:
            lines["worker_holds"] = here() - 1
            has_b.set()
            with a:
                pass

    t = threading.Thread(target=worker, name="worker")
    with a:
        lines["main_holds"] = here() - 1
        t.start()
        assert has_b.wait(WAIT)
        wait_until_waiting(t)
        with pytest.raises(DeadlockError, match="2 threads wait for each other in a cycle") as info:
            lines["main_waits"] = here() + 1
            b.acquire()
    t.join(WAIT)
    error = info.value
    assert error.kind == "cycle"
    threads = [entry["thread"] for entry in error.cycle]
    assert threads == ["MainThread", "worker"]
    main_entry, worker_entry = error.cycle
    assert main_entry["line"] == lines["main_waits"] and main_entry["file"] == __file__
    assert main_entry["holds"][0]["line"] == lines["main_holds"]
    assert worker_entry["holds"][0]["line"] == lines["worker_holds"]
    assert "waits for Lock#" in str(error) and "(held by 'worker')" in str(error)
    again = pickle.loads(pickle.dumps(error))
    assert again.cycle == error.cycle and str(again) == str(error)
    [finding] = check.findings()
    assert finding.kind == "deadlock"
    assert {loc.line for loc in finding.locations} >= {lines["main_waits"], lines["main_holds"]}


def test_two_threads_closing_one_cycle_at_once_report_it_once() -> None:
    """Both waits are registered before either thread checks, and the first to find the
    cycle stays inside its report until the second has checked: only one may raise."""
    locks: list[Any] = []
    both_hold = threading.Barrier(2, timeout=WAIT)
    both_registered = threading.Barrier(2, timeout=WAIT)
    errors: list[DeadlockError] = []
    idents: dict[str, int] = {}

    class Rendezvous:
        def on_wait_begin(self, wait: _registry.Wait) -> None:
            if any(wait.primitive is lock for lock in locks):
                both_registered.wait()

    def other_has_checked(me: int) -> bool:
        other = next(ident for ident in idents.values() if ident != me)
        wait = _registry.waiting().get(other)
        return len(errors) == 2 or (wait is not None and wait.blocked)

    def hold_the_report(finding: Any) -> None:
        deadline = time.monotonic() + WAIT
        while not other_has_checked(threading.get_ident()) and time.monotonic() < deadline:
            time.sleep(0.005)

    def philosopher(first: Any, second: Any) -> None:
        idents[threading.current_thread().name] = threading.get_ident()
        with first:
            both_hold.wait()
            try:
                with second:
                    pass
            except DeadlockError as error:
                errors.append(error)

    rendezvous = Rendezvous()
    _registry.forget_holds()
    check.clear_findings()
    _registry.add_listener(rendezvous)  # before the checker: both waits are in the table
    unsubscribe = check.add_finding_listener(hold_the_report)
    try:
        with check.enable(starvation=False, ignored_threads=other_threads()):
            a, b = fsync.Lock(), fsync.Lock()  # checked locks are made while checks are on
            locks += [a, b]
            threads = [
                threading.Thread(target=philosopher, args=(a, b), name="ab"),
                threading.Thread(target=philosopher, args=(b, a), name="ba"),
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(WAIT)
            assert not any(t.is_alive() for t in threads)
        assert len(errors) == 1, [str(error) for error in errors]
        assert [f.kind for f in check.findings()] == ["deadlock"]
    finally:
        unsubscribe()
        _registry.remove_listener(rendezvous)
        check.clear_findings()


def test_self_deadlock_on_a_lock(checks: None) -> None:
    lock = fsync.Lock()
    with lock, pytest.raises(DeadlockError, match="waits for a lock it already holds itself"):
        lock.acquire()
    assert not lock.locked()


def test_rlock_reentry_is_fine(checks: None) -> None:
    lock = fsync.RLock()
    with lock, lock, lock:
        assert lock.statistics().count == 3
    assert check.findings() == []


def test_join_while_holding_the_lock_the_thread_needs(checks: None) -> None:
    lock = fsync.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with lock:
                pass
        except DeadlockError as exc:  # pragma: no cover - the main thread closes the cycle
            errors.append(exc)

    t = threading.Thread(target=worker, name="needs-lock")
    with check.patch_threading(), lock:  # Thread.join is instrumented by the patch
        t.start()
        wait_until_waiting(t)
        with pytest.raises(DeadlockError, match=r"waits for thread 'needs-lock' to finish"):
            t.join()
    t.join(WAIT)
    assert errors == []


def test_global_stall_is_reported_and_aborted_within_seconds(checks: None) -> None:
    never = fsync.Event()
    began = time.monotonic()
    with pytest.raises(DeadlockError, match=r"global stall.*\n.*\n.*waits for Event") as info:
        never.wait()
    assert time.monotonic() - began < 5.0
    assert info.value.kind == "stall"


def test_stall_across_threads_aborts_every_stalled_wait(checks: None) -> None:
    jobs = fsync.Queue()
    aborted: list[str] = []

    def worker() -> None:
        try:
            jobs.get()
        except DeadlockError:
            aborted.append("worker")

    t = threading.Thread(target=worker, name="getter")
    t.start()
    with check.patch_threading():
        try:
            t.join()
        except DeadlockError as exc:
            assert "waits for Queue" in str(exc)
        # else: the worker was aborted first and finished, so the join itself succeeded
    t.join(WAIT)
    assert aborted == ["worker"]
    [finding] = check.findings()
    assert {loc.thread for loc in finding.locations} == {"MainThread", "getter"}


def test_a_sleeping_thread_is_not_stalled(checks: None) -> None:
    go = fsync.Event()

    def slow_setter() -> None:
        time.sleep(1.0)
        go.set()

    t = threading.Thread(target=slow_setter)
    t.start()
    assert go.wait()
    t.join(WAIT)
    assert check.findings() == []


def test_a_timed_wait_is_never_a_deadlock(checks: None) -> None:
    assert fsync.Event().wait(0.8) is False
    lock = fsync.Lock()
    with lock:
        assert lock.acquire(timeout=0.05) is False
    assert check.findings() == []


def _invert(first: object, second: object) -> None:
    def forward() -> None:
        with first, second:  # type: ignore[attr-defined]
            pass

    t = threading.Thread(target=forward, name="forward")
    t.start()
    t.join(WAIT)
    with second, first:  # type: ignore[attr-defined]
        pass


def test_lock_order_inversion_is_recorded_without_a_hang(checks: None) -> None:
    a, b = fsync.Lock(), fsync.Lock()
    _invert(a, b)
    [finding] = check.findings()
    assert finding.kind == "lock-order"
    assert "lock-order inversion" in finding.message and "stack:" in finding.message
    assert {loc.thread for loc in finding.locations} == {"forward", "MainThread"}
    assert len(finding.locations) == 4


def test_lock_order_warn_and_raise_modes() -> None:
    check.clear_findings()
    with check.enable(on_lock_order="warn", starvation=False):
        a, b = fsync.Lock(), fsync.Lock()
        with pytest.warns(LockOrderWarning, match="lock-order inversion"):
            _invert(a, b)
    with check.enable(on_lock_order="raise", starvation=False):
        a, b = fsync.Lock(), fsync.Lock()
        with pytest.raises(LockOrderError, match="lock-order inversion") as info:
            _invert(a, b)
        assert not a.locked() and not b.locked()
        assert len(info.value.cycle) == 2
    check.clear_findings()


def test_a_fair_lock_refused_by_the_lock_order_check_is_given_back() -> None:
    check.clear_findings()
    with check.enable(on_lock_order="raise", starvation=False):
        fair, plain = fsync.FairLock(), fsync.Lock()
        with pytest.raises(LockOrderError, match="lock-order inversion"):
            _invert(fair, plain)  # the FairLock's acquire closes the cycle
        assert not fair.locked() and not plain.locked()
        assert _registry.held() == []
        taken: list[bool] = []

        def take() -> None:
            got = fair.acquire(blocking=False)
            taken.append(got)
            if got:
                fair.release()

        t = threading.Thread(target=take)
        t.start()
        t.join(WAIT)
        assert taken == [True]
    check.clear_findings()


def test_consistent_order_and_same_site_ordering_give_no_finding(checks: None) -> None:
    locks = [fsync.Lock() for _ in range(3)]  # one allocation site
    for _ in range(3):
        with locks[0], locks[1], locks[2]:
            pass
        with locks[0], locks[2]:
            pass
    assert check.findings() == []


def test_lock_order_per_allocation_site() -> None:
    check.clear_findings()
    with check.enable(on_lock_order="record", starvation=False):

        def make_cache_lock() -> CheckedLock:
            return fsync.Lock()

        def make_store_lock() -> CheckedLock:
            return fsync.Lock()

        with make_cache_lock(), make_store_lock():
            pass
        with make_store_lock(), make_cache_lock():  # other instances, same two sites
            pass
        [finding] = check.findings()
        assert "locks created at the same places" in finding.message
    check.clear_findings()


def test_condition_starvation_is_reported_with_counts_and_the_lines_served() -> None:
    check.clear_findings()
    lines: dict[str, int] = {}
    with check.enable(
        on_lock_order="record", starvation=True, starvation_threshold=0.3, starvation_min_others=5
    ):
        cond = fsync.Condition()
        state = {"victim_may_go": False, "stop": False}

        def victim() -> None:
            with cond:
                while not state["victim_may_go"]:
                    lines["victim"] = here() + 1
                    cond.wait(WAIT)

        def other() -> None:
            while True:
                with cond:
                    lines["other"] = here() + 1
                    cond.wait(WAIT)
                    if state["stop"]:
                        return

        threads = [
            threading.Thread(target=victim, name="victim"),
            threading.Thread(target=other, name="other"),
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 5.0
        while (
            not any(f.kind == "starvation" for f in check.findings())
            and time.monotonic() < deadline
        ):
            lines["main"] = here() + 1
            with cond:
                cond.notify_all()
            time.sleep(0.01)
        with cond:
            state["victim_may_go"] = state["stop"] = True
            cond.notify_all()
        for t in threads:
            t.join(WAIT)
        starving = [f for f in check.findings() if f.kind == "starvation"]
    check.clear_findings()
    assert starving, "no starvation finding"
    [finding] = starving
    assert re.search(
        r"thread 'victim' has waited \d+\.\d s in its predicate loop on Condition at "
        rf".*test_checker.py:{lines['victim']} in victim \(re-waited \d+ times\) while other "
        r"threads were served \d+ times \(at ",
        finding.message,
    ), finding.message
    located = {(loc.line, loc.thread) for loc in finding.locations}
    assert finding.locations[0].line == lines["victim"]
    assert {(lines["main"], "MainThread"), (lines["other"], "other")} <= located, located


def _starve_a_writer(policy: str) -> tuple[list[Any], int]:
    """A relay of readers (each leaves once the next is in) and a writer, for one second."""
    rw = fsync.RWLock(policy)
    readers = 3
    inside = [threading.Event() for _ in range(readers)]
    relay_stops = threading.Event()
    write_line: list[int] = []

    def reader(i: int) -> None:
        successor = inside[(i + 1) % readers]
        while not relay_stops.is_set():
            with rw.read():
                inside[i].set()
                time.sleep(0.001)
                successor.wait(0.2)
                inside[i].clear()

    def writer() -> None:
        assert inside[0].wait(WAIT)
        write_line.append(here() + 1)
        with rw.write():
            pass

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(readers)]
    threads.append(threading.Thread(target=writer, name="writer"))
    for t in threads:
        t.start()
    deadline = time.monotonic() + (WAIT if policy == "readers" else 1.0)
    while time.monotonic() < deadline:
        if any(f.kind == "starvation" for f in check.findings()):
            break
        time.sleep(0.02)
    relay_stops.set()
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive()
    return [f for f in check.findings() if f.kind == "starvation"], write_line[0]


@pytest.mark.parametrize("policy", ["readers", "fair"])
def test_a_writer_passed_over_by_readers_starves_only_under_the_readers_policy(
    policy: str,
) -> None:
    check.clear_findings()
    with (
        check.enable(
            starvation=True,
            starvation_threshold=0.3,
            starvation_min_others=5,
            ignored_threads=other_threads(),
        ),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        starving, line = _starve_a_writer(policy)
    check.clear_findings()
    if policy == "fair":
        assert starving == []
        return
    [finding] = starving  # one finding for the whole wait, not one per wake-up
    assert re.search(
        r"thread 'writer' has waited \d+\.\d s for RWLock\(policy='readers'\) .* "
        r"while other threads took it \d+ times\. Its policy 'readers' lets the other "
        r"side pass waiting writers",
        finding.message,
    ), finding.message
    others = int(re.search(r"took it (\d+) times", finding.message).group(1))  # type: ignore[union-attr]
    assert others >= 5
    assert [(loc.file, loc.line, loc.thread) for loc in finding.locations] == [
        (__file__, line, "writer")
    ]
    assert any(issubclass(w.category, StarvationWarning) for w in caught)


def test_enable_is_a_context_manager_that_restores_the_previous_state() -> None:
    assert not check.enabled()
    with check.enable(starvation=False):
        assert check.enabled() and isinstance(fsync.Lock(), CheckedLock)
        with check.enable(lock_order=False, starvation=False):
            assert check._checker is not None and not check._checker.config.lock_order
        assert check._checker is not None and check._checker.config.lock_order
    assert not check.enabled() and check._checker is None
    assert type(fsync.Lock()) is type(threading.Lock())


def test_enable_validates_its_options() -> None:
    with pytest.raises(
        ValueError, match="on_lock_order='loud' is not one of 'record', 'warn', 'raise'"
    ):
        check.enable(on_lock_order="loud")
    assert not check.enabled()


def test_patch_threading_swaps_and_restores_everything() -> None:
    names = ["Lock", "RLock", "Condition", "Semaphore", "BoundedSemaphore", "Event", "Barrier"]
    before = {n: getattr(threading, n) for n in names}
    queues = {n: getattr(queue, n) for n in ("Queue", "LifoQueue", "PriorityQueue", "SimpleQueue")}
    methods = {n: threading.Thread.__dict__[n] for n in ("join", "start", "_bootstrap_inner")}
    with check.patch_threading() as patch:
        assert patch.active
        assert isinstance(threading.Lock(), CheckedLock)
        assert isinstance(queue.Queue(), fsync.CheckedQueue)
        assert threading.Thread.__dict__["join"] is not methods["join"]
        with check.patch_threading() as nested:  # nested: the outer patch restores
            assert nested.active
        assert isinstance(threading.Lock(), CheckedLock)
        # patched threads still run and join normally
        out: list[int] = []
        t = threading.Thread(target=out.append, args=(1,))
        t.start()
        t.join()
        assert out == [1]
    assert {n: getattr(threading, n) for n in names} == before
    assert {n: getattr(queue, n) for n in queues} == queues
    assert {n: threading.Thread.__dict__[n] for n in methods} == methods


def test_a_waiter_passed_over_by_others_is_reported_as_starving() -> None:
    """The watchdog's lock-waiter rule, on a registered wait whose primitive others keep taking."""

    class Holder:
        ident = threading.get_ident()  # the main thread keeps taking it

    class Contended:
        _fermion_acquisitions = 0
        _holder: Any = None

        def _fermion_describe(self) -> str:
            return "the contended resource"

        def _fermion_site(self) -> _registry.Site:
            return _registry.Site(__file__, 99, "greedy")

    resource = Contended()
    served = threading.Event()
    site = _registry.Site(__file__, 7, "victim")

    def victim() -> None:
        _registry.blocking_wait(resource, site, None, served.wait, served.is_set)

    check.clear_findings()
    with check.enable(
        starvation=True,
        starvation_threshold=0.3,
        starvation_min_others=5,
        ignored_threads=other_threads(),
    ):
        t = threading.Thread(target=victim, name="victim")
        t.start()
        wait_until_waiting(t)
        deadline = time.monotonic() + WAIT
        while not check.findings() and time.monotonic() < deadline:
            resource._fermion_acquisitions += 1  # another thread took it
            resource._holder = Holder()  # and holds it now, taken at line 99
            time.sleep(0.01)
        served.set()
        t.join(WAIT)
        found = check.findings()
    check.clear_findings()
    assert [f.kind for f in found] == ["starvation"]
    assert "thread 'victim' has waited" in found[0].message
    assert (
        "for the contended resource" in found[0].message
        and "while other threads took it" in found[0].message
    )
    assert [(loc.line, loc.function, loc.thread) for loc in found[0].locations] == [
        (7, "victim", "victim"),
        (99, "greedy", "MainThread"),
    ]
    assert f"{__file__}:99 in greedy" in found[0].message


def test_a_lock_released_by_another_thread_is_a_finding_naming_both_threads(
    checks: None,
) -> None:
    lock = fsync.Lock()
    assert isinstance(lock, CheckedLock)
    taken_line = here() + 1
    lock.acquire()
    release_line: list[int] = []

    def releaser() -> None:
        release_line.append(here() + 1)
        lock.release()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = threading.Thread(target=releaser, name="releaser")
        t.start()
        t.join(WAIT)
    assert not lock.locked()
    [finding] = [f for f in check.findings() if f.kind == "lock-release"]
    assert "released by thread 'releaser'" in finding.message
    assert "while thread 'MainThread' holds it" in finding.message
    assert [(loc.line, loc.thread) for loc in finding.locations] == [
        (release_line[0], "releaser"),
        (taken_line, "MainThread"),
    ]
    assert [w.category for w in caught] == [LockReleaseWarning]
    # An RLock's owner is defined: only it may release it.
    rlock = fsync.RLock()
    with rlock:
        errors: list[BaseException] = []

        def intruder() -> None:
            try:
                rlock.release()
            except RuntimeError as exc:
                errors.append(exc)

        t = threading.Thread(target=intruder, name="intruder")
        t.start()
        t.join(WAIT)
    assert len(errors) == 1 and "held by thread 'MainThread'" in str(errors[0])


def test_patched_types_look_like_the_originals_and_old_captures_still_work() -> None:
    captured = threading.BoundedSemaphore
    originals = {n: getattr(threading, n) for n in ("Lock", "RLock", "Condition", "Event")}
    originals.update({n: getattr(queue, n) for n in ("Queue", "SimpleQueue")})
    lock_type = type(threading.Lock())
    with check.patch_threading():
        semaphore = captured(2)  # its __init__ calls the (patched) global Semaphore's
        assert semaphore.acquire(timeout=1)
        semaphore.release()
        with pytest.raises(ValueError, match="Semaphore released too many times"):
            semaphore.release()
        for name, original in originals.items():
            patched = getattr(threading, name, None) or getattr(queue, name)
            assert patched is not original
            # Each pickles by reference where it is installed (threading.Lock's original
            # lives in _thread, under another name).
            module = "queue" if name.endswith("Queue") else "threading"
            assert (patched.__module__, patched.__name__) == (module, original.__name__)
            assert pickle.loads(pickle.dumps(patched)) is patched
        lock = threading.Lock()
        assert isinstance(lock, CheckedLock)
        assert type(lock).__name__ == lock_type.__name__
        if not isinstance(originals["Lock"], type):  # 3.11/3.12: the type refuses instantiation
            with pytest.raises(TypeError, match=r"cannot create '_thread.lock' instances"):
                type(lock)()
        cond = threading.Condition()
        with cond, pytest.warns(DeprecationWarning, match=r"use notify_all\(\)"):
            cond.notifyAll()
        with pytest.warns(DeprecationWarning, match=r"use is_set\(\)"):
            threading.Event().isSet()


def _lock_from_one_site() -> Any:
    return fsync.Lock()


def test_a_lock_dropped_while_held_stops_feeding_the_lock_order_graph() -> None:
    import gc
    import weakref

    _registry.forget_holds()
    check.clear_findings()
    with check.enable(on_lock_order="record", starvation=False, deadlocks=False):
        # An earlier "test" takes a lock and drops it while holding it.
        dropped = _lock_from_one_site()
        dropped.acquire()
        gone = weakref.ref(dropped)
        del dropped
        gc.collect()
        # Unrelated code afterwards: 'other' then a lock created at the same site as the
        # dropped one. With the dropped lock still "held", the first acquire would record
        # site -> other, and this order other -> site would close a cycle by site.
        other = fsync.Lock()
        with other:
            pass
        again = _lock_from_one_site()
        with other, again:
            pass
        found = [f for f in check.findings() if f.kind == "lock-order"]
    check.clear_findings()
    _registry.forget_holds()
    assert found == []
    gc.collect()
    assert gone() is None  # no longer kept alive as "held"


def test_a_pool_whose_workers_all_wait_for_its_own_queued_tasks_is_a_deadlock(
    checks: None,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    lines: list[int] = []
    with check.patch_threading():
        pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="nested")
        both_in = threading.Barrier(2, timeout=WAIT)

        inners: list[Any] = []

        def outer() -> int:
            both_in.wait()  # both workers busy before either submits
            inner = pool.submit(int, "7")
            inners.append(inner)
            lines.append(here() + 1)
            return inner.result()

        futures = [pool.submit(outer) for _ in range(2)]
        try:
            errors = [f.exception(timeout=WAIT) for f in futures]
        finally:
            for inner in inners:  # unblock the workers if the check missed it
                inner.cancel()
            pool.shutdown(wait=True)
    assert any(isinstance(e, DeadlockError) and e.kind == "pool" for e in errors), errors
    [finding] = check.findings()
    assert finding.kind == "deadlock"
    assert finding.message.startswith(
        "deadlock (pool capacity): all 2 worker(s) of a thread pool wait for tasks queued on "
        "the same pool"
    )
    assert "waits for the result of a task queued on ThreadPoolExecutor 'nested'" in finding.message
    # Each worker's line in the user's code, not concurrent/futures/_base.py.
    assert {(loc.file, loc.line) for loc in finding.locations} == {(__file__, lines[0])}
    assert sorted(loc.thread for loc in finding.locations) == ["nested_0", "nested_1"]


def test_a_stalled_future_wait_is_reported_at_the_callers_line(checks: None) -> None:
    from concurrent.futures import Future

    with check.patch_threading():
        never: Future[int] = Future()
        line = here() + 2
        with pytest.raises(DeadlockError, match=r"global stall") as info:
            never.result()
    [entry] = info.value.cycle
    assert (entry["file"], entry["line"]) == (__file__, line)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_fork_while_another_thread_holds_a_lock_names_the_lock_the_holder_and_the_fork(
    checks: None,
) -> None:
    lock = fsync.Lock()
    held, done = threading.Event(), threading.Event()
    holder_line: list[int] = []

    def holder() -> None:
        holder_line.append(here() + 1)
        with lock:
            held.set()
            done.wait(WAIT)

    t = threading.Thread(target=holder, name="holder")
    t.start()
    try:
        assert held.wait(WAIT)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
            fork_line = here() + 1
            pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    finally:
        done.set()
        t.join(WAIT)
    [finding] = check.findings()
    assert finding.kind == "deadlock"
    assert re.match(
        rf"deadlock \(fork while a lock is held\): thread 'MainThread' forks at .*:{fork_line} "
        rf"in test_a_fork.* while thread 'holder' holds Lock#\d+ \(created at .*\), taken at "
        rf".*:{holder_line[0]} in holder\. In the child only the forking thread exists",
        finding.message,
    ), finding.message
    assert [(loc.line, loc.thread) for loc in finding.locations] == [
        (fork_line, "MainThread"),
        (holder_line[0], "holder"),
    ]
    # The forking thread's own locks are no hazard.
    check.clear_findings()
    with lock, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    assert check.findings() == []


def _drop_a_held_condition() -> None:
    """What CPython's test_old_threading_api does: acquire a Condition and drop it."""
    cond = fsync.Condition()
    cond.acquire()
    cond.cycle = cond  # type: ignore[attr-defined]  # garbage only the collector frees


def _fork_and_wait() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_lock_only_garbage_refers_to_is_no_fork_hazard(checks: None) -> None:
    """CPython's test_old_threading_api acquires a Condition and drops it; a later test's
    fork must not report it (nothing can take it again, in the child or here)."""
    import gc

    gc.disable()  # the collector must not free it before the fork check looks
    try:
        _drop_a_held_condition()
        assert _registry.live_holders()  # still held, by garbage
        t = threading.Thread(target=_fork_and_wait, name="forker")
        t.start()
        t.join(WAIT)
        assert not t.is_alive()
    finally:
        gc.enable()
    assert check.findings() == []
    assert not _registry.live_holders()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("attempt", range(3))
def test_threads_forking_at_once_do_not_see_a_dropped_lock_as_held(
    checks: None, attempt: int
) -> None:
    """CPython's test_reinit_tls_after_fork: 16 threads fork at once after
    test_old_threading_api dropped a held Condition. Each fork check's own list of held
    locks refers to the dropped one; checked side by side (3.13t: 15 of 20 runs reported
    it), each made it look alive to the others."""
    import gc

    forkers = 12
    barrier = threading.Barrier(forkers)
    failures: list[BaseException] = []

    def fork() -> None:
        try:
            barrier.wait(WAIT)
            _fork_and_wait()
        except BaseException as exc:
            failures.append(exc)

    gc.disable()
    try:
        _drop_a_held_condition()
        threads = [threading.Thread(target=fork, name=f"forker-{i}") for i in range(forkers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        assert not any(t.is_alive() for t in threads)
    finally:
        gc.enable()
    assert failures == []
    assert check.findings() == []


_LOCK_TAKEN_AROUND_EACH_FORK = """
import os, threading, warnings
import fermion.sync as fsync
from fermion import check

warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
shutdown = None
inside_a, b_checked = threading.Event(), threading.Event()

def before():  # concurrent.futures' pattern: its lock is held across each fork
    if threading.current_thread().name == "b":
        b_checked.set()  # fermion's hook (registered later, so run earlier) has looked
    shutdown.acquire()
    if threading.current_thread().name == "a":
        inside_a.set()
        assert b_checked.wait(10)

os.register_at_fork(
    before=before,
    after_in_parent=lambda: shutdown.release(),
    after_in_child=lambda: shutdown.release(),
)
with check.enable(starvation=False):
    shutdown = fsync.Lock()

    def fork():
        if threading.current_thread().name == "b":
            assert inside_a.wait(10)
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)

    threads = [threading.Thread(target=fork, name=name) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    print(len(check.findings()), "finding(s)")
    for finding in check.findings():
        print(finding.message)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.timeout(60)
def test_a_lock_an_at_fork_handler_holds_across_another_threads_fork_is_no_hazard() -> None:
    """Thread b forks while thread a is inside its own fork, holding the lock a
    ``register_at_fork(before=lock.acquire)`` handler takes around every fork: b's handler
    waits for it, so at b's fork a holds nothing b's child would miss."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_LOCK_TAKEN_AROUND_EACH_FORK)],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("0 finding(s)"), done.stdout
