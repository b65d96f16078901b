"""One test body x every backend: the public Executor's behaviour.

Backends: serial, threads, processes (default start method, forkserver on Linux) and
processes with spawn. Where a backend cannot do something (serial has no queue, so
nothing is ever pending), the test says so and skips.
"""

from __future__ import annotations

import concurrent.futures
import gc
import itertools
import math
import sys
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import executor_helpers as h
import numpy as np
import pytest

import fermion
from fermion import Executor, TaskKilledError, TaskTimeoutError

WAIT = 30.0  # safety net for every wait; never reached when things work

BACKENDS: dict[str, tuple[str, dict[str, Any]]] = {
    "serial": ("serial", {}),
    "threads": ("threads", {}),
    "processes": ("processes", {}),
    "processes-spawn": ("processes", {"start_method": "spawn"}),
}


def wait_running(future: concurrent.futures.Future[Any]) -> None:
    """Wait (polling, bounded) until a worker has started the task."""
    deadline = time.monotonic() + WAIT
    while not future.running() and not future.done() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert future.running(), future


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_executor(backend: str) -> Iterator[Callable[..., Executor]]:
    """Builds executors for ``backend`` (2 workers unless told) and shuts them all down."""
    made: list[Executor] = []
    name, options = BACKENDS[backend]

    def make(**kwargs: Any) -> Executor:
        kwargs.setdefault("workers", 2)
        executor = Executor(name, **options, **kwargs)
        made.append(executor)
        return executor

    yield make
    for executor in made:
        executor.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def executor(make_executor: Callable[..., Executor]) -> Executor:
    return make_executor()


def test_submit_returns_the_result(executor: Executor) -> None:
    assert executor.submit(h.square, 7).result(timeout=WAIT) == 49
    assert executor.submit(h.add, 1, b=2).result(timeout=WAIT) == 3
    future = executor.submit(h.square, 3)
    assert isinstance(future, concurrent.futures.Future)


def test_exception_is_reraised_with_type_and_message(executor: Executor) -> None:
    future = executor.submit(h.fail, "the sky fell")
    with pytest.raises(ValueError, match="the sky fell"):
        future.result(timeout=WAIT)
    assert executor.submit(h.square, 2).result(timeout=WAIT) == 4  # and it goes on


def test_schedule_passes_args_and_kwargs(executor: Executor) -> None:
    assert executor.schedule(h.add, (1,), {"b": 41}).result(timeout=WAIT) == 42


def test_map_keeps_input_order(executor: Executor) -> None:
    for chunksize in ("auto", 1, 7, 1000):
        assert list(executor.map(h.square, range(300), chunksize=chunksize)) == [
            x * x for x in range(300)
        ], chunksize


def test_map_takes_several_iterables_up_to_the_shortest(executor: Executor) -> None:
    assert list(executor.map(h.add, range(5), range(100, 110))) == [100, 102, 104, 106, 108]


def test_map_raises_the_first_exception_where_iteration_reaches_it(executor: Executor) -> None:
    results = executor.map(h.fail_on, range(10), chunksize=4)
    assert [next(results) for _ in range(3)] == [0, 1, 4]
    with pytest.raises(KeyError, match="item 3 is bad"):
        next(results)


def test_map_timeout_is_a_deadline_for_the_whole_iteration(
    backend: str, executor: Executor
) -> None:
    if backend == "serial":
        pytest.skip("serial runs map inside the call, before the deadline can be checked")
    assert executor.submit(h.square, 1).result(timeout=WAIT) == 1  # workers are up
    started = time.monotonic()
    results = executor.map(h.sleep_then, [0.0, 1.0], [1, 2], timeout=0.3, chunksize=1)
    assert next(results) == 1
    with pytest.raises(TimeoutError):
        next(results)
    assert time.monotonic() - started < 0.95  # it did not wait for the slow item


def test_map_with_buffersize_reads_lazily_and_keeps_order(executor: Executor) -> None:
    pulled = 0

    def numbers() -> Iterator[int]:
        nonlocal pulled
        for i in itertools.count():
            pulled += 1
            yield i

    results = executor.map(h.square, numbers(), buffersize=10)
    assert [next(results) for _ in range(50)] == [i * i for i in range(50)]
    assert pulled <= 50 + 10


def test_map_and_imap_on_empty_input(executor: Executor) -> None:
    assert list(executor.map(h.square, [])) == []
    assert list(executor.map(h.square)) == []
    assert list(executor.imap(h.square, [])) == []
    assert list(executor.imap(h.square, iter([]), ordered=False)) == []


def test_imap_ordered_and_unordered_give_every_result(executor: Executor) -> None:
    expected = [x * x for x in range(200)]
    for chunksize in ("auto", 1, 5):
        assert list(executor.imap(h.square, range(200), chunksize=chunksize)) == expected
        unordered = list(executor.imap(h.square, range(200), ordered=False, chunksize=chunksize))
        assert sorted(unordered) == expected, chunksize


def test_imap_unordered_yields_fast_results_before_slow_ones(
    backend: str, executor: Executor
) -> None:
    if backend == "serial":
        pytest.skip("serial runs one task at a time, in order")
    results = executor.imap(h.sleep_then, [1.0, 0.0, 0.0], ordered=False, chunksize=1)
    # sleep_then(x) with one argument returns 0; the slow one is last
    first = next(results)
    assert first == 0
    assert list(results) == [0, 0]


def test_imap_on_an_endless_generator_holds_at_most_buffersize_inputs(
    executor: Executor,
) -> None:
    pulled = 0

    def endless() -> Iterator[int]:
        nonlocal pulled
        for i in itertools.count():
            pulled += 1
            yield i

    buffersize = 16
    results = executor.imap(h.square, endless(), buffersize=buffersize)
    consumed = []
    for value in results:
        consumed.append(value)
        assert pulled <= len(consumed) + buffersize
        if len(consumed) == 200:
            break
    results.close()  # type: ignore[attr-defined]
    assert consumed == [i * i for i in range(200)]
    assert pulled <= 200 + buffersize


def test_imap_raises_an_error_of_the_input_iterable_where_it_happened(
    executor: Executor,
) -> None:
    def broken() -> Iterator[int]:
        yield 1
        yield 2
        raise OSError("input went away")

    results = executor.imap(h.square, broken())
    assert next(results) == 1
    assert next(results) == 4
    with pytest.raises(OSError, match="input went away"):
        next(results)


def test_imap_return_exceptions_yields_them_in_place(executor: Executor) -> None:
    results = list(executor.imap(h.fail_on, range(6), return_exceptions=True))
    assert results[:3] == [0, 1, 4] and results[4:] == [16, 25]
    assert isinstance(results[3], KeyError)


def test_futures_work_with_as_completed_and_wait(executor: Executor) -> None:
    futures = [executor.submit(h.square, i) for i in range(20)]
    done = {f.result() for f in concurrent.futures.as_completed(futures, timeout=WAIT)}
    assert done == {i * i for i in range(20)}
    finished, not_finished = concurrent.futures.wait(futures, timeout=WAIT)
    assert len(finished) == 20 and not not_finished


def test_shutdown_with_cancel_futures_cancels_pending_work(
    backend: str, make_executor: Callable[..., Executor]
) -> None:
    if backend == "serial":
        pytest.skip("serial runs each task inside submit: nothing is ever pending")
    executor = make_executor(workers=1)
    running = executor.submit(h.sleep_then, 0.5, 1)
    wait_running(running)
    queued = [executor.submit(h.square, i) for i in range(20)]
    executor.shutdown(wait=True, cancel_futures=True)
    assert running.result(timeout=WAIT) == 1
    cancelled = [f for f in queued if f.cancelled()]
    assert len(cancelled) >= 15  # a pool may already have handed a few to its worker
    for future in queued:
        assert future.done()
        if not future.cancelled():
            assert future.result() in {i * i for i in range(20)}


def test_shutdown_with_cancel_futures_cancels_the_rest_of_a_map(
    backend: str, make_executor: Callable[..., Executor]
) -> None:
    if backend == "serial":
        pytest.skip("serial runs map inside the call: nothing is left to cancel")
    executor = make_executor(workers=1)
    results = executor.map(h.sleep_then, [0.3] * 50, chunksize=1)
    executor.shutdown(wait=True, cancel_futures=True)
    with pytest.raises(concurrent.futures.CancelledError):
        list(results)


def test_shutdown_without_cancel_runs_all_of_a_map_not_iterated(
    make_executor: Callable[..., Executor],
) -> None:
    executor = make_executor()
    results = executor.map(h.square, range(500))
    executor.shutdown(wait=True)
    assert list(results) == [x * x for x in range(500)]


def test_submit_after_shutdown_raises(executor: Executor) -> None:
    executor.shutdown()
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        executor.submit(h.square, 1)
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        executor.map(h.square, [1])
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        executor.imap(h.square, [1])
    executor.shutdown()  # twice is fine


def test_context_manager_waits_for_the_work(backend: str) -> None:
    name, options = BACKENDS[backend]
    with Executor(name, 2, **options) as executor:
        future = executor.submit(h.sleep_then, 0.2, 5)
        results = executor.map(h.square, range(10))
    assert future.done() and future.result() == 5
    assert list(results) == [x * x for x in range(10)]
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(h.square, 1)


def test_task_timeout_fails_the_task_and_the_pool_goes_on(executor: Executor) -> None:
    future = executor.schedule(h.sleep_then, (0.6, 1), timeout=0.15)
    with pytest.raises(TaskTimeoutError, match=r"timeout of 0\.15 s"):
        future.result(timeout=WAIT)
    assert executor.submit(h.square, 3).result(timeout=WAIT) == 9


def test_executor_task_timeout_is_the_default_and_inf_turns_it_off(
    make_executor: Callable[..., Executor],
) -> None:
    executor = make_executor(task_timeout=0.15)
    with pytest.raises(TaskTimeoutError):
        executor.submit(h.sleep_then, 0.6, 1).result(timeout=WAIT)
    assert executor.schedule(h.sleep_then, (0.3, 2), timeout=math.inf).result(timeout=WAIT) == 2


def test_map_task_timeout_is_per_item(executor: Executor) -> None:
    results = executor.map(h.sleep_then, [0.0, 0.6, 0.0], [1, 2, 3], task_timeout=0.15)
    assert next(results) == 1
    with pytest.raises(TaskTimeoutError):
        next(results)
    items = list(
        executor.imap(h.sleep_then, [0.0, 0.6, 0.0], task_timeout=0.15, return_exceptions=True)
    )
    assert items[0] == 0 and items[2] == 0 and isinstance(items[1], TaskTimeoutError)


def test_kill_stops_a_running_task(backend: str, executor: Executor) -> None:
    if backend == "serial":
        future = executor.submit(h.square, 2)
        assert executor.kill(future) is False  # already done: serial ran it in submit
        return
    future = executor.submit(h.spin, 20.0)
    wait_running(future)
    assert executor.kill(future) is True
    with pytest.raises(TaskKilledError):
        future.result(timeout=WAIT)
    assert executor.kill(future) is False  # done now
    assert executor.submit(h.square, 5).result(timeout=WAIT) == 25


def test_progress_callback_counts_items(make_executor: Callable[..., Executor]) -> None:
    seen: list[tuple[int, int | None]] = []
    executor = make_executor(progress=lambda done, total: seen.append((done, total)))
    assert list(executor.map(h.square, range(100), chunksize=7)) == [x * x for x in range(100)]
    assert seen[-1] == (100, 100)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    seen.clear()
    list(executor.imap(h.square, iter(range(30)), progress=lambda d, t: seen.append((d, t))))
    assert seen[-1] == (30, None)


def test_fermion_map_is_the_one_liner(backend: str) -> None:
    name, options = BACKENDS[backend]
    assert fermion.map(h.square, range(50), backend=name, workers=2, **options) == [
        x * x for x in range(50)
    ]
    unordered = fermion.map(h.square, range(50), backend=name, workers=2, ordered=False, **options)
    assert sorted(unordered) == [x * x for x in range(50)]
    with pytest.raises(KeyError, match="item 3 is bad"):
        fermion.map(h.fail_on, range(10), backend=name, workers=2, **options)


def test_backend_name_and_instance_are_exposed(backend: str, executor: Executor) -> None:
    assert executor.backend_name == BACKENDS[backend][0]
    assert executor.backend.name == BACKENDS[backend][0]
    assert executor.workers == (1 if backend == "serial" else 2)
    assert BACKENDS[backend][0] in repr(executor)


def test_a_crashed_worker_fails_only_its_item_of_a_map(backend: str, executor: Executor) -> None:
    if not backend.startswith("processes"):
        pytest.skip("only a process can crash without taking the caller with it")
    results = list(executor.imap(h.crash_on_77, range(200), chunksize=20, return_exceptions=True))
    errors = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
    assert errors == [77]
    assert isinstance(results[77], fermion.WorkerCrashedError)
    assert "3" in str(results[77])  # the exit code is named
    assert [r for i, r in enumerate(results) if i != 77] == [i * i for i in range(200) if i != 77]
    assert executor.submit(h.square, 4).result(timeout=WAIT) == 16  # the pool goes on


def test_keyboard_interrupt_in_with_cancels_pending_work(backend: str) -> None:
    if backend == "serial":
        pytest.skip("serial has no pending work")
    name, options = BACKENDS[backend]
    with pytest.raises(KeyboardInterrupt), Executor(name, 1, **options) as executor:
        running = executor.submit(h.sleep_then, 0.3, 1)
        wait_running(running)
        pending = [executor.submit(h.square, i) for i in range(10)]
        raise KeyboardInterrupt
    assert all(f.done() for f in pending)
    assert sum(f.cancelled() for f in pending) >= 8


@pytest.mark.parametrize("chunksize", [1, "auto"])
def test_map_frees_its_arguments_without_the_garbage_collector(
    executor: Executor, chunksize: int | str
) -> None:
    # No reference cycle may hold a map's calls: a big argument must go as soon as the
    # map is done with it and the caller drops it, not at the collector's next pass.
    if not getattr(sys, "_is_gil_enabled", lambda: True)() and executor.backend_name != "serial":
        # Free-threaded CPython frees an object released by a thread other than the one
        # that made it only once that thread merges its queue (biased reference
        # counting), so "freed at once" cannot be observed across threads there. The
        # same code is checked for cycles on the GIL builds.
        pytest.skip("free-threaded builds defer frees of objects released by other threads")
    argument = np.ones(10)
    alive = weakref.ref(argument)
    gc.disable()
    try:
        assert list(executor.map(len, [argument] * 5, chunksize=chunksize)) == [10] * 5
        del argument
        deadline = time.monotonic() + WAIT  # a worker thread may still hold its task
        while alive() is not None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert alive() is None, gc.get_referrers(alive())
    finally:
        gc.enable()


@pytest.mark.parametrize("chunksize", [1, 4, "auto"])
def test_map_frees_each_result_once_the_consumer_drops_it(
    executor: Executor, chunksize: int | str
) -> None:
    # As the standard map: the iterator holds no result it has yielded (CPython's
    # test_free_reference), even while the rest of that result's chunk is unread.
    if not getattr(sys, "_is_gil_enabled", lambda: True)() and executor.backend_name != "serial":
        pytest.skip("free-threaded builds defer frees of objects released by other threads")
    gc.disable()
    try:
        for box in executor.map(h.make_box, range(10), chunksize=chunksize):
            alive = weakref.ref(box)
            del box
            assert alive() is None, gc.get_referrers(alive())
    finally:
        gc.enable()


def _skip_without_initializer(backend: str) -> None:
    if backend == "dask":
        pytest.skip("the dask backend takes no initializer (Dask's worker plugins do that)")


def test_initializer_runs_in_each_worker_before_its_tasks(
    backend: str, make_executor: Callable[..., Executor]
) -> None:
    _skip_without_initializer(backend)
    executor = make_executor(initializer=h.init_mark, initargs=("ready",))
    futures = [executor.submit(h.read_mark) for _ in range(6)]
    assert [f.result(timeout=WAIT) for f in futures] == ["ready"] * 6
    assert list(executor.map(h.read_mark, range(4))) == ["ready"] * 4


def test_failing_initializer_breaks_the_executor(
    backend: str, make_executor: Callable[..., Executor], caplog: pytest.LogCaptureFixture
) -> None:
    _skip_without_initializer(backend)
    # As the standard pools: the task fails with a BrokenExecutor naming the error, the
    # failure is logged on concurrent.futures, and from then on submit raises.
    executor = make_executor(initializer=h.init_fail, initargs=("no database",))
    try:
        future = executor.submit(h.square, 2)
    except fermion.errors.InitializerError:
        pass
    else:
        with pytest.raises(fermion.errors.InitializerError, match="raised ValueError: no database"):
            future.result(timeout=WAIT)
    deadline = time.monotonic() + WAIT
    while executor.backend.broken is None and time.monotonic() < deadline:
        time.sleep(0.005)
    with pytest.raises(concurrent.futures.BrokenExecutor, match="ValueError: no database"):
        executor.submit(h.square, 3)
    if executor.backend_name != "processes":  # there, logged in the worker process
        assert any("Exception in initializer" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("backend_name", ["threads", "serial", "auto", "processes"])
def test_initializer_must_be_callable(backend_name: str) -> None:
    with pytest.raises(TypeError, match="initializer must be callable or None, got 42"):
        Executor(backend_name, initializer=42)


@pytest.mark.parametrize("backend_name", ["threads", "processes", "auto"])
def test_map_timeout_yields_every_result_ready_before_the_deadline(backend_name: str) -> None:
    # As the standard map with chunksize=1: the five quick results are yielded before
    # the TimeoutError. (Automatic chunking may hold a result back with its chunk: one
    # task per item made a map of 300,000 quick calls time out on 3.13t.)
    with Executor(backend_name, 2) as executor:
        results = []
        with pytest.raises(TimeoutError):
            items = ([0.0] * 5 + [3.0], range(6))
            for value in executor.map(h.sleep_then, *items, timeout=1.5, chunksize=1):
                results.append(value)
        assert results == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("backend_name", ["serial", "threads", "auto"])
def test_submit_passes_self_and_fn_as_keywords(backend_name: str) -> None:
    with Executor(backend_name, 2) as executor:
        future = executor.submit(h.keywords, 1, self=2, fn=3)
        assert future.result(timeout=WAIT) == {"self": 2, "fn": 3}


@pytest.mark.parametrize("backend_name", ["serial", "threads", "processes", "auto"])
def test_submit_from_an_atexit_handler_is_refused(backend_name: str) -> None:
    # As the standard executors: once the interpreter exits, submit raises RuntimeError
    # naming the executor, whichever the backend.
    import subprocess

    script = (
        "import atexit\n"
        "from fermion import Executor\n"
        "@atexit.register\n"
        "def last():\n"
        "    try:\n"
        "        ex.submit(id, None)\n"
        "    except RuntimeError as exc:\n"
        "        print(exc)\n"
        "if __name__ == '__main__':\n"
        f"    ex = Executor({backend_name!r}, 2)\n"
        "    ex.submit(id, 42).result()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=60, text=True, check=False
    )
    assert "cannot schedule new futures after interpreter shutdown" in done.stdout, done.stderr
    assert f"backend={backend_name!r}" in done.stdout
