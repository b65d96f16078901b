"""What only the threads backend does: interrupting threads, replacing stuck ones."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

import pytest

from fermion import Executor, TaskKilledError, TaskTimeoutError
from fermion.executors._base import Task
from fermion.executors._threads import ThreadBackend

WAIT = 30.0


def test_a_timed_out_python_loop_is_interrupted_and_its_thread_ends() -> None:
    threads: list[threading.Thread] = []
    progress: list[int] = []

    def loop() -> None:
        threads.append(threading.current_thread())
        while True:
            progress.append(1)
            del progress[:]

    with Executor("threads", 1, task_timeout=0.1) as executor:
        with pytest.raises(TaskTimeoutError, match="interrupt"):
            executor.submit(loop).result(timeout=WAIT)
        threads[0].join(timeout=WAIT)
        assert not threads[0].is_alive()  # the interrupt stopped the loop
        assert executor.submit(lambda: 7).result(timeout=WAIT) == 7


def test_a_thread_stuck_in_c_is_replaced_so_the_pool_keeps_its_size() -> None:
    release = threading.Event()

    def stuck() -> str:
        release.wait()  # blocks in C: the interrupt waits until it returns
        return "late"

    executor = Executor("threads", 1)
    try:
        stuck_future = executor.schedule(stuck, timeout=0.1)
        with pytest.raises(TaskTimeoutError):
            stuck_future.result(timeout=WAIT)
        # Only worker is stuck, yet the next task runs: a new thread took its place.
        assert executor.submit(lambda: "fresh").result(timeout=WAIT) == "fresh"
        assert executor.backend.statistics()["retired_running"] == 1  # type: ignore[attr-defined]
    finally:
        release.set()
        executor.shutdown(wait=True)
    with pytest.raises(TaskTimeoutError):
        stuck_future.result()  # the late result does not replace the timeout


def test_kill_interrupts_a_running_thread() -> None:
    started = threading.Event()

    def loop() -> None:
        started.set()
        while True:
            pass

    with Executor("threads", 2) as executor:
        future = executor.submit(loop)
        assert started.wait(WAIT)
        assert executor.kill(future) is True
        with pytest.raises(TaskKilledError, match="killed on request"):
            future.result(timeout=WAIT)


def test_kill_of_a_pending_task_cancels_it() -> None:
    release = threading.Event()
    with Executor("threads", 1) as executor:
        blocker = executor.submit(release.wait, WAIT)
        pending = executor.submit(lambda: 1)
        assert executor.kill(pending) is True
        assert pending.cancelled()
        release.set()
        assert blocker.result(timeout=WAIT) is True


def test_code_that_catches_the_interrupt_still_times_out_for_the_caller() -> None:
    done = threading.Event()

    def stubborn() -> str:
        try:
            while True:
                pass
        except BaseException:
            done.set()
            return "swallowed"

    with Executor("threads", 1) as executor:
        future = executor.schedule(stubborn, timeout=0.1)
        with pytest.raises(TaskTimeoutError):
            future.result(timeout=WAIT)
        assert done.wait(WAIT)


def test_pool_grows_to_workers_threads_running_at_once() -> None:
    barrier = threading.Barrier(3, timeout=WAIT)
    with Executor("threads", 3) as executor:
        futures = [executor.submit(barrier.wait) for _ in range(3)]
        assert sorted(f.result(timeout=WAIT) for f in futures) == [0, 1, 2]


def test_shutdown_wait_joins_the_pool_threads() -> None:
    backend = ThreadBackend(2, thread_name_prefix="joined-pool")
    for _ in range(4):
        task = Task(time.sleep, [((0.01,), {})], batch=False)
        backend.submit(task)
    backend.shutdown(wait=True)
    assert not [t for t in threading.enumerate() if t.name.startswith("joined-pool")]


def test_shutdown_without_cancel_runs_queued_tasks() -> None:
    backend = ThreadBackend(1)
    tasks = [Task(pow, [((2, i), {})], batch=False) for i in range(10)]
    for task in tasks:
        backend.submit(task)
    backend.shutdown(wait=True)
    assert [t.future.result(timeout=0) for t in tasks] == [2**i for i in range(10)]


def test_many_submitters_at_once() -> None:
    with Executor("threads", 4) as executor:
        results: list[int] = []
        lock = threading.Lock()

        def submitter(base: int) -> None:
            futures = [executor.submit(int.__add__, base, i) for i in range(200)]
            values = [f.result(timeout=WAIT) for f in futures]
            with lock:
                results.extend(values)

        threads = [threading.Thread(target=submitter, args=(k * 1000,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        assert sorted(results) == sorted(k * 1000 + i for k in range(4) for i in range(200))


def test_round_trips_from_many_threads_never_lose_a_wake_up() -> None:
    # Each round trip leaves the pool's threads asleep and wakes one: a wake-up lost
    # between a thread going to sleep and a task arriving would time out here.
    with Executor("threads", 2) as executor:

        def round_trips(base: int) -> list[int]:
            return [executor.submit(int.__add__, base, i).result(timeout=WAIT) for i in range(500)]

        with Executor("threads", 4) as callers:
            outcomes = [callers.submit(round_trips, k * 1000) for k in range(4)]
            for k, outcome in enumerate(outcomes):
                assert outcome.result(timeout=WAIT) == [k * 1000 + i for i in range(500)]


def test_shutdown_wakes_and_joins_sleeping_threads() -> None:
    backend = ThreadBackend(3, thread_name_prefix="sleeping-pool")
    barrier = threading.Barrier(4, timeout=WAIT)
    tasks = [Task(barrier.wait, [((), {})], batch=False) for _ in range(3)]
    for task in tasks:
        backend.submit(task)
    barrier.wait()  # all three threads ran a task; now they go to sleep
    for task in tasks:
        task.future.result(timeout=WAIT)
    backend.shutdown(wait=True)
    assert not [t for t in threading.enumerate() if t.name.startswith("sleeping-pool")]
    assert backend.statistics()["threads"] == 0


def test_the_task_a_thread_is_started_for_is_not_cancelled_by_shutdown() -> None:
    # As ThreadPoolExecutor: submit, then shutdown(wait=False, cancel_futures=True) at
    # once; the task already has its thread and runs (it was left queued for the new
    # thread to find, and was cancelled first).
    for _ in range(50):
        executor = Executor("threads", 2)
        first = executor.submit(pow, 2, 5)
        executor.shutdown(wait=False, cancel_futures=True)
        assert first.result(timeout=WAIT) == 32
        executor.shutdown(wait=True)


def test_terminate_cancels_the_task_a_thread_was_started_for() -> None:
    backend = ThreadBackend(workers=1)
    gate = threading.Event()
    running = Task(gate.wait, [((WAIT,), {})], batch=False)
    backend.submit(running)
    backend.terminate("test")
    gate.set()
    assert running.future.cancelled() or running.future.exception(timeout=WAIT) is not None


def test_a_dropped_executor_lets_its_threads_end_after_its_work() -> None:
    # As ThreadPoolExecutor (CPython's test_del_shutdown): an executor dropped without
    # shutdown, its map still being read, shuts down; its threads finish and end.
    for _ in range(5):
        executor = Executor("threads", 5, thread_name_prefix="dropped")
        results = executor.map(abs, range(-5, 5), chunksize=1)
        threads = [t for t in threading.enumerate() if t.name.startswith("dropped-")]
        assert threads
        del executor
        for thread in threads:
            thread.join(timeout=WAIT)
            assert not thread.is_alive(), thread
        assert list(results) == [abs(v) for v in range(-5, 5)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork with threads running
def test_a_forked_child_exits_without_waiting_for_the_parents_pool() -> None:
    # A fork pool's worker inherits the parent's exit hooks, and the pool's lock as a
    # pool thread held it at the fork (here: this thread holds it). Its exit must not
    # shut down a pool whose threads are not in it.
    release = threading.Event()
    backend = ThreadBackend(1)
    try:
        task = Task(release.wait, [((), {})], batch=False)
        backend.submit(task)
        with backend._lock:
            child = multiprocessing.get_context("fork").Process(target=int)
            child.start()
        child.join(WAIT)
        if child.exitcode is None:
            child.kill()
            child.join(WAIT)
            pytest.fail("the forked child hung at exit in the threads backend's exit handler")
        assert child.exitcode == 0
    finally:
        release.set()
        backend.shutdown(wait=True)
