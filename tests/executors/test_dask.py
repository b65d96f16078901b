"""The dask backend against a real local cluster on loopback.

One cluster serves the whole module (starting one takes seconds); each test connects
its own backend to it by address. Tests whose tasks block wait for a file that the test
creates, so that nothing depends on sleeps; every wait has a timeout.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError
from typing import Any

import cloudpickle
import pytest

from fermion.errors import (
    DaskClusterError,
    ExtraMissingError,
    RemoteTraceback,
    SerializationError,
    TaskKilledError,
    TaskTimeoutError,
)
from fermion.executors._base import Task

WAIT = 60.0  # safety net for every wait; a passing test takes a fraction of it


# -- task functions (pickled by value: the workers cannot import this test module) ----


def square(x: int) -> int:
    return x * x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"item {x} is bad")
    return x


def wait_for_file(path: str, value: Any = None) -> Any:
    deadline = time.monotonic() + WAIT
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)
    return value


def return_a_lock() -> Any:
    return threading.Lock()


def add(x: int, *, y: int = 0) -> int:
    return x + y


def plus(x: int, y: int) -> int:
    return x + y


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def distributed() -> Any:
    return pytest.importorskip("distributed", reason="the dask extra is not installed here")


@pytest.fixture(scope="module")
def cluster_address(distributed: Any) -> Iterator[str]:
    """A 2-worker local cluster for the module, owned by a DaskBackend itself."""
    from fermion.executors._dask import DaskBackend

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    owner = DaskBackend(workers=2)
    try:
        yield owner.scheduler_address
    finally:
        owner.shutdown(wait=True)
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture
def backend(cluster_address: str) -> Iterator[Any]:
    from fermion.executors._dask import DaskBackend

    connected = DaskBackend(address=cluster_address)
    try:
        yield connected
    finally:
        connected.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def release(tmp_path: pathlib.Path) -> Iterator[tuple[str, Any]]:
    """A file path that blocked tasks wait for, and the function that creates it."""
    path = str(tmp_path / "release")

    def open_gate() -> None:
        pathlib.Path(path).touch()

    try:
        yield path, open_gate
    finally:
        open_gate()  # never leave a worker blocked for the next test


def run(
    backend: Any, fn: Any, *calls: Any, batch: bool = True, timeout: float | None = None
) -> Task:
    task = Task(
        fn,
        [(c if isinstance(c, tuple) else ((c,), {})) for c in calls],
        batch=batch,
        timeout=timeout,
    )
    backend.submit(task)
    return task


def wait_until(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


# -- the extra is optional -------------------------------------------------------------


def test_missing_distributed_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from fermion.executors._dask import DaskBackend

    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(ExtraMissingError, match=r"pip install 'fermion\[dask\]'") as info:
        DaskBackend()
    assert info.value.extra == "dask"
    assert info.value.package == "distributed"


def test_importing_fermion_and_the_backend_module_does_not_import_dask() -> None:
    code = (
        "import sys, fermion, fermion.executors._dask\n"
        "loaded = [m for m in ('dask', 'distributed') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=WAIT)


# -- results, errors, serialisation ----------------------------------------------------


@pytest.mark.dask
def test_batch_gives_one_outcome_per_call_in_order(backend: Any) -> None:
    task = run(backend, square, *range(50))
    assert list(task.future.result(timeout=WAIT)) == [(True, i * i) for i in range(50)]


@pytest.mark.dask
def test_many_tasks_from_many_threads(backend: Any) -> None:
    tasks: list[Task] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def submit_some(offset: int) -> None:
        start.wait(timeout=WAIT)
        for i in range(25):
            task = run(backend, square, offset + i, batch=False)
            with lock:
                tasks.append(task)

    threads = [threading.Thread(target=submit_some, args=(100 * k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT)
    got = sorted(task.future.result(timeout=WAIT) for task in tasks)
    assert got == sorted((100 * k + i) ** 2 for k in range(4) for i in range(25))


@pytest.mark.dask
def test_exception_carries_the_worker_traceback(backend: Any) -> None:
    task = run(backend, fail_on_three, *range(5))
    outcomes = task.future.result(timeout=WAIT)
    assert [ok for ok, _ in outcomes] == [True, True, True, False, True]
    error = outcomes[3][1]
    assert isinstance(error, ValueError)
    assert str(error) == "item 3 is bad"
    assert isinstance(error.__cause__, RemoteTraceback)
    assert ", in fail_on_three\n" in str(error.__cause__)
    assert "ValueError: item 3 is bad" in str(error.__cause__)

    single = run(backend, fail_on_three, 3, batch=False)
    with pytest.raises(ValueError, match="item 3 is bad") as info:
        single.future.result(timeout=WAIT)
    assert isinstance(info.value.__cause__, RemoteTraceback)


@pytest.mark.dask
def test_keyword_arguments_travel(backend: Any) -> None:
    task = run(backend, add, ((1,), {"y": 2}), ((3,), {}), batch=True)
    assert list(task.future.result(timeout=WAIT)) == [(True, 3), (True, 3)]


@pytest.mark.dask
def test_unpicklable_argument_fails_only_its_call(backend: Any) -> None:
    lock = threading.Lock()
    task = run(backend, add, ((1,), {}), ((lock,), {}), ((2,), {"y": lock}), ((3,), {}))
    outcomes = task.future.result(timeout=WAIT)
    assert outcomes[0] == (True, 1)
    assert outcomes[3] == (True, 3)
    with pytest.raises(
        SerializationError,
        match=r"^item 1 of the map \(.*add\): the positional argument 1 of type lock cannot be",
    ):
        raise outcomes[1][1]
    with pytest.raises(
        SerializationError,
        match=r"^item 2 of the map \(.*\): the keyword argument 'y' of type lock",
    ):
        raise outcomes[2][1]

    single = run(backend, add, lock, batch=False)
    with pytest.raises(
        SerializationError,
        match=r"^the submitted call of .*add: the positional argument 1 of type lock cannot",
    ):
        single.future.result(timeout=WAIT)


@pytest.mark.dask
def test_unpicklable_function_fails_the_task(backend: Any) -> None:
    lock = threading.Lock()

    def uses_lock(x: int) -> int:
        with lock:
            return x

    task = run(backend, uses_lock, 1, 2)
    with pytest.raises(
        SerializationError, match=r"the function of type function cannot be pickled"
    ):
        task.future.result(timeout=WAIT)


@pytest.mark.dask
def test_unpicklable_result_is_named(backend: Any) -> None:
    task = run(backend, return_a_lock, ((), {}), batch=False)
    with pytest.raises(SerializationError, match=r"result of type lock cannot be pickled"):
        task.future.result(timeout=WAIT)


def _exit_here() -> None:
    raise SystemExit("culprit unpickled")


class _ExitsWhenUnpickled:
    def __reduce__(self) -> tuple[Any, ...]:
        return (_exit_here, ())


def return_one_that_exits_when_unpickled() -> _ExitsWhenUnpickled:
    return _ExitsWhenUnpickled()


def test_a_result_raising_system_exit_when_unpickled_fails_its_task_only(backend: Any) -> None:
    """The result is unpickled on the backend's event-loop thread: a SystemExit there is
    the task's error, and the loop goes on."""
    task = run(backend, return_one_that_exits_when_unpickled, ((), {}), batch=False)
    with pytest.raises(
        SerializationError,
        match=re.escape("the results could not be unpickled in the caller (SystemExit: culprit"),
    ):
        task.future.result(timeout=WAIT)
    assert run(backend, plus, ((1, 2), {}), batch=False).future.result(timeout=WAIT) == 3


# -- running, timeouts, kill, cancel ---------------------------------------------------


@pytest.mark.dask
def test_timeout_fails_the_task_and_the_cluster_goes_on(backend: Any, release: Any) -> None:
    path, open_gate = release
    task = run(backend, wait_for_file, path, batch=False, timeout=0.3)
    with pytest.raises(TaskTimeoutError, match=r"timeout of 0.3 s; .*Dask cannot stop a running"):
        task.future.result(timeout=WAIT)
    assert task.future.exception().timeout == 0.3
    open_gate()
    assert run(backend, square, 7, batch=False).future.result(timeout=WAIT) == 49


@pytest.mark.dask
def test_timeout_counts_from_the_start_not_the_queue(backend: Any, release: Any) -> None:
    path, open_gate = release
    blockers = [run(backend, wait_for_file, path, batch=False) for _ in range(backend.workers)]
    wait_until(lambda: all(t.future.running() for t in blockers), "both workers busy")
    queued = run(backend, square, 5, batch=False, timeout=0.5)
    time.sleep(1.0)  # queued for twice its timeout: that must not count
    assert not queued.future.running() and not queued.future.done()
    open_gate()
    assert queued.future.result(timeout=WAIT) == 25
    for blocker in blockers:
        blocker.future.result(timeout=WAIT)


@pytest.mark.dask
def test_kill_a_running_task(backend: Any, release: Any) -> None:
    path, _ = release
    task = run(backend, wait_for_file, path, batch=False)
    wait_until(task.future.running, "the task to start on a worker")
    assert backend.kill(task) is True
    with pytest.raises(TaskKilledError, match=r"killed on request; it was cancelled on the Dask"):
        task.future.result(timeout=WAIT)
    assert backend.kill(task) is False  # done already


@pytest.mark.dask
def test_cancel_a_queued_task(backend: Any, release: Any) -> None:
    path, open_gate = release
    blockers = [run(backend, wait_for_file, path, batch=False) for _ in range(backend.workers)]
    wait_until(lambda: all(t.future.running() for t in blockers), "both workers busy")
    queued = run(backend, square, 5, batch=False)
    assert queued.future.cancel()
    open_gate()
    for blocker in blockers:
        blocker.future.result(timeout=WAIT)
    with pytest.raises(CancelledError):
        queued.future.result(timeout=WAIT)


@pytest.mark.dask
def test_shutdown_cancel_futures_cancels_queued_and_finishes_running(
    cluster_address: str, release: Any
) -> None:
    from fermion.executors._dask import DaskBackend

    path, open_gate = release
    backend = DaskBackend(address=cluster_address)
    try:
        running = [
            run(backend, wait_for_file, ((path, i), {}), batch=False)
            for i in range(backend.workers)
        ]
        wait_until(lambda: all(t.future.running() for t in running), "both workers busy")
        queued = [run(backend, square, i, batch=False) for i in range(5)]
        closer = threading.Thread(target=backend.shutdown, kwargs={"cancel_futures": True})
        closer.start()
        wait_until(lambda: all(t.future.cancelled() for t in queued), "queued tasks cancelled")
        assert closer.is_alive()  # waits for the running tasks
        open_gate()
        closer.join(timeout=WAIT)
        assert not closer.is_alive()
        assert sorted(t.future.result(timeout=0) for t in running) == list(range(backend.workers))
        with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
            run(backend, square, 1)
    finally:
        open_gate()
        backend.shutdown()


# -- connecting ------------------------------------------------------------------------


@pytest.mark.dask
def test_workers_counts_the_cluster_threads(backend: Any) -> None:
    assert backend.workers == 2


@pytest.mark.dask
def test_a_users_client_is_used_and_left_open(distributed: Any, cluster_address: str) -> None:
    from fermion.executors._dask import DaskBackend

    with distributed.Client(cluster_address, set_as_default=False) as client:
        backend = DaskBackend(address=client)
        try:
            assert run(backend, square, 3, batch=False).future.result(timeout=WAIT) == 9
        finally:
            backend.shutdown()
        assert client.submit(square, 4).result(timeout=WAIT) == 16


@pytest.mark.dask
def test_unreachable_scheduler_is_a_named_error(distributed: Any) -> None:
    import socket

    from fermion.executors._dask import DaskBackend

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DaskClusterError, match=r"could not reach the Dask scheduler at tcp://127"):
        DaskBackend(address=f"tcp://127.0.0.1:{port}", connect_timeout=1)


@pytest.mark.dask
def test_invalid_options_are_named(distributed: Any) -> None:
    from fermion.executors._dask import DaskBackend

    with pytest.raises(ValueError, match="workers must be a positive int"):
        DaskBackend(workers=0)
    with pytest.raises(ValueError, match="with address= the cluster's own workers"):
        DaskBackend(workers=2, address="tcp://127.0.0.1:1")
    with pytest.raises(ValueError, match="threads_per_worker must be a positive int"):
        DaskBackend(threads_per_worker=0)
    with pytest.raises(TypeError, match="address must be None, a scheduler address"):
        DaskBackend(address=8786)


# -- the public Executor over the dask backend -----------------------------------------


@pytest.fixture
def executor(cluster_address: str) -> Iterator[Any]:
    from fermion import Executor

    with Executor(backend="dask", address=cluster_address) as ex:
        yield ex


def test_executor_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from fermion import Executor

    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ExtraMissingError, match=r"dask backend .*pip install 'fermion\[dask\]'"):
        Executor(backend="dask")


@pytest.mark.dask
def test_executor_submit_map_and_as_completed(executor: Any) -> None:
    import concurrent.futures

    futures = [executor.submit(square, i) for i in range(20)]
    done = {f.result() for f in concurrent.futures.as_completed(futures, timeout=WAIT)}
    assert done == {i * i for i in range(20)}
    assert list(executor.map(square, range(3000), timeout=WAIT)) == [i * i for i in range(3000)]
    assert list(executor.map(plus, [1, 2], [10, 20])) == [11, 22]


@pytest.mark.dask
def test_executor_map_raises_the_remote_error_in_order(executor: Any) -> None:
    results = executor.map(fail_on_three, range(6), timeout=WAIT)
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="item 3 is bad") as info:
        next(results)
    assert isinstance(info.value.__cause__, RemoteTraceback)


@pytest.mark.dask
def test_executor_imap_ordered_and_unordered_with_progress(executor: Any) -> None:
    seen: list[tuple[int, Any]] = []
    ordered = list(executor.imap(square, range(500), progress=lambda d, t: seen.append((d, t))))
    assert ordered == [i * i for i in range(500)]
    assert seen and seen[-1][0] == 500
    unordered = executor.imap(square, iter(range(500)), ordered=False, buffersize=64)
    assert sorted(unordered) == [i * i for i in range(500)]


@pytest.mark.dask
def test_executor_task_timeout_and_kill(executor: Any, release: Any) -> None:
    path, _ = release
    timed = executor.schedule(wait_for_file, (path,), timeout=0.3)
    with pytest.raises(
        TaskTimeoutError, match=r"timeout of 0.3 s; it was cancelled on the Dask cluster"
    ):
        timed.result(timeout=WAIT)
    running = executor.submit(wait_for_file, path)
    wait_until(running.running, "the task to start on a worker")
    assert executor.kill(running) is True
    with pytest.raises(TaskKilledError, match="killed on request"):
        running.result(timeout=WAIT)


@pytest.mark.dask
def test_executor_map_task_timeout_is_per_item(executor: Any, release: Any) -> None:
    path, open_gate = release
    results = executor.map(wait_for_file, [path, path], task_timeout=0.3, timeout=WAIT)
    with pytest.raises(
        TaskTimeoutError, match=r"timeout of 0.3 s; it was cancelled on the Dask cluster"
    ):
        next(results)
    open_gate()


@pytest.mark.dask
@pytest.mark.slow
def test_executor_starts_and_closes_a_local_cluster_and_restarts_on_timeout(
    distributed: Any, release: Any
) -> None:
    from fermion import Executor

    path, _ = release
    with Executor(backend="dask", workers=1) as executor:
        assert executor.workers == 1
        timed = executor.schedule(wait_for_file, (path,), timeout=0.3)
        with pytest.raises(
            TaskTimeoutError, match=r"its worker tcp://127.0.0.1:\d+ is being restarted"
        ):
            timed.result(timeout=WAIT)
        # The only worker was killed and replaced: the next task still runs.
        assert executor.submit(square, 6).result(timeout=WAIT) == 36


@pytest.mark.dask
def test_terminate_fails_running_and_cancels_queued_at_once(
    cluster_address: str, release: Any
) -> None:
    from fermion.executors._dask import DaskBackend

    path, open_gate = release
    backend = DaskBackend(address=cluster_address)
    try:
        running = [run(backend, wait_for_file, path, batch=False) for _ in range(backend.workers)]
        wait_until(lambda: all(t.future.running() for t in running), "both workers busy")
        queued = [run(backend, square, i, batch=False) for i in range(5)]
        backend.terminate("KeyboardInterrupt")
        assert all(t.future.cancelled() for t in queued)
        for task in running:
            with pytest.raises(TaskKilledError, match=r"terminated \(KeyboardInterrupt\)"):
                task.future.result(timeout=0)
    finally:
        open_gate()
        backend.shutdown()
