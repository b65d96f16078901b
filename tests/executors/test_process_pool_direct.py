"""Tasks sent by the submitting thread: a task for an idle worker skips the pool's thread.

The shortcut must keep everything the pool's thread guarantees: order of one thread's
tasks, timeouts watched, unpicklable arguments failed with the culprit named, many
threads at once, callbacks that submit. Each test checks through
``statistics()["tasks_sent_directly"]`` which path its tasks took.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import process_pool_helpers as helpers
import pytest

from fermion.errors import SerializationError, TaskTimeoutError
from fermion.executors._base import Task
from fermion.executors._processes import ProcessBackend
from fermion.executors._processes._state import PoolState

WAIT = 60.0  # safety net for every wait; tests finish far sooner


def one(fn: Callable[..., Any], *args: Any, timeout: float | None = None) -> Task:
    return Task(fn, [(args, {})], batch=False, timeout=timeout)


def run(backend: ProcessBackend, fn: Callable[..., Any], *args: Any) -> Any:
    task = one(fn, *args)
    backend.submit(task)
    return task.future.result(timeout=WAIT)


def sent_directly(backend: ProcessBackend) -> int:
    return int(backend.statistics()["tasks_sent_directly"])


@pytest.fixture
def make_backend() -> Iterator[Callable[..., ProcessBackend]]:
    made: list[ProcessBackend] = []

    def make(workers: int = 1) -> ProcessBackend:
        backend = ProcessBackend(workers=workers)
        made.append(backend)
        assert run(backend, helpers.square, 3) == 9  # starts the pool's thread and workers
        return backend

    yield make
    for backend in made:
        backend.terminate("test teardown")


def test_one_task_at_a_time_goes_straight_to_an_idle_worker(
    make_backend: Callable[..., ProcessBackend],
) -> None:
    backend = make_backend(workers=2)
    before = sent_directly(backend)
    assert [run(backend, helpers.square, i) for i in range(50)] == [i * i for i in range(50)]
    # The pool's thread lets go of the state lock before it reports a result, so the
    # caller it wakes finds the lock free: (nearly) every task goes directly.
    assert sent_directly(backend) - before >= 40


def test_one_threads_tasks_start_in_the_order_submitted(
    make_backend: Callable[..., ProcessBackend],
) -> None:
    backend = make_backend(workers=1)
    for _ in range(5):
        before = sent_directly(backend)
        tasks = [one(helpers.started_at) for _ in range(100)]
        for task in tasks:
            backend.submit(task)
        starts = [task.future.result(timeout=WAIT) for task in tasks]
        assert starts == sorted(starts)
        # The first went directly, the ones queued behind it through the pool's thread.
        assert 1 <= sent_directly(backend) - before < 100


def test_tasks_are_sent_in_the_order_submitted_under_contention(
    make_backend: Callable[..., ProcessBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tiny tasks submitted as fast as one thread can: the pool's thread is often busy,
    # so tasks take both paths, and one sent directly must never pass one in the inbox.
    sent: list[int] = []
    deliver = PoolState._deliver

    def recording_deliver(self: PoolState, worker: Any, task: Task, *args: Any, **kw: Any) -> None:
        sent.append(task.id)  # under the state lock: one writer at a time
        deliver(self, worker, task, *args, **kw)

    monkeypatch.setattr(PoolState, "_deliver", recording_deliver)
    backend = make_backend(workers=1)
    for _ in range(3):
        sent.clear()
        before = sent_directly(backend)
        tasks = [one(helpers.square, i) for i in range(2000)]
        for task in tasks:
            backend.submit(task)
        assert [t.future.result(timeout=WAIT) for t in tasks] == [i * i for i in range(2000)]
        assert sent == [t.id for t in tasks]
        assert 1 <= sent_directly(backend) - before < 2000


def test_a_timeout_on_a_task_sent_directly_is_watched(
    make_backend: Callable[..., ProcessBackend],
) -> None:
    backend = make_backend(workers=1)
    before = sent_directly(backend)
    task = one(helpers.nap, 30.0, timeout=0.3)
    backend.submit(task)
    with pytest.raises(TaskTimeoutError, match=r"timeout of 0\.3 s"):
        task.future.result(timeout=WAIT)
    assert sent_directly(backend) == before + 1
    assert run(backend, helpers.square, 4) == 16  # the pool replaced the worker


def test_an_unpicklable_argument_is_failed_by_the_pools_thread(
    make_backend: Callable[..., ProcessBackend],
) -> None:
    backend = make_backend(workers=1)
    before = sent_directly(backend)
    task = one(helpers.echo, threading.Lock())
    backend.submit(task)
    with pytest.raises(SerializationError, match=r"argument 1 of type lock"):
        task.future.result(timeout=WAIT)
    assert sent_directly(backend) == before  # not sent: failed with the culprit named
    assert run(backend, helpers.square, 5) == 25


def test_many_threads_submitting_one_at_a_time(
    make_backend: Callable[..., ProcessBackend],
) -> None:
    backend = make_backend(workers=2)
    before = sent_directly(backend)
    threads, calls = 4, 100
    start = threading.Barrier(threads)
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def submitter(n: int) -> None:
        try:
            start.wait(timeout=WAIT)
            results[n] = [run(backend, helpers.square, n * calls + i) for i in range(calls)]
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=submitter, args=(n,)) for n in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(WAIT)
    assert not errors
    for n in range(threads):
        assert results[n] == [(n * calls + i) ** 2 for i in range(calls)]
    assert sent_directly(backend) > before
    stats = backend.statistics()
    assert stats["workers_crashed"] == 0


def test_a_done_callback_can_submit_from_the_pools_thread(
    make_backend: Callable[..., ProcessBackend],
) -> None:
    backend = make_backend(workers=1)
    follow = one(helpers.square, 7)
    first = one(helpers.square, 6)
    first.future.add_done_callback(lambda _: backend.submit(follow))
    backend.submit(first)
    assert first.future.result(timeout=WAIT) == 36
    assert follow.future.result(timeout=WAIT) == 49
