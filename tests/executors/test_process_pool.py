"""The processes backend on its own: ProcessBackend driven with Task objects.

Every behaviour runs under forkserver and spawn. Orderings are forced with files that a
task writes when it has started; every wait has a timeout.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

import numpy as np
import process_pool_helpers as helpers
import psutil
import pytest

from fermion.errors import (
    InitializerError,
    RemoteError,
    RemoteTraceback,
    SerializationError,
    TaskKilledError,
    TaskTimeoutError,
    WorkerCrashedError,
    WorkerMemoryError,
)
from fermion.executors._base import PositionalCalls, Task
from fermion.executors._processes import ProcessBackend
from fermion.executors._processes._start import default_workers
from fermion.executors._processes._state import PoolState

WAIT = 60.0  # safety net for every wait; tests finish far sooner


def one(fn: Callable[..., Any], *args: Any, timeout: float | None = None, **kwargs: Any) -> Task:
    return Task(fn, [(args, kwargs)], batch=False, timeout=timeout)


def run(backend: ProcessBackend, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    task = one(fn, *args, **kwargs)
    backend.submit(task)
    return task.future.result(timeout=WAIT)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def worker_pids(backend: ProcessBackend, count: int) -> tuple[int, ...]:
    """The pids of the backend's workers, once it has ``count`` of them."""
    wait_until(lambda: len(backend.statistics()["worker_pids"]) == count, f"{count} workers")
    return tuple(backend.statistics()["worker_pids"])


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(params=["forkserver", "spawn"])
def start_method(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_backend(start_method: str) -> Iterator[Callable[..., ProcessBackend]]:
    made: list[ProcessBackend] = []

    def make(workers: int = 2, **options: Any) -> ProcessBackend:
        backend = ProcessBackend(workers=workers, start_method=start_method, **options)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.terminate("test teardown")


@pytest.fixture
def started(tmp_path: Path) -> Callable[[str], str]:
    """A fresh path a task writes when it has started."""
    return lambda name: str(tmp_path / name)


# -- options ------------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="the spawn start of POSIX systems")
def test_a_pool_imports_what_its_workers_start_needs_when_it_is_made() -> None:
    # (not in its own thread, where each file read would wait for the GIL, which a
    # call in C code next to it may hold for milliseconds: auto starts pools so)
    script = (
        "import sys\n"
        "from fermion.executors._processes import ProcessBackend\n"
        "pool = ProcessBackend(workers=1, start_method='spawn')\n"
        "print('multiprocessing.popen_spawn_posix' in sys.modules)\n"
        "pool.shutdown()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["True"], done.stderr


def test_invalid_start_method_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"start_method='thread'.*'spawn', 'forkserver'"):
        ProcessBackend(start_method="thread")


def test_unknown_options_are_named() -> None:
    with pytest.raises(TypeError, match=r"unknown option\(s\).*'chunk', 'colour'.*'start_method'"):
        ProcessBackend(colour="red", chunk=3)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"workers": 0}, ValueError, r"workers must be a positive integer or None .*, got 0"),
        ({"workers": 1.5}, TypeError, r"workers must be a positive integer .*, got 1.5 \(float\)"),
        ({"max_tasks_per_worker": 0}, ValueError, "max_tasks_per_worker must be a positive"),
        ({"max_memory_per_worker": True}, TypeError, "max_memory_per_worker must be a positive"),
        ({"initializer": 3}, TypeError, "initializer must be callable or None, got 3 .int."),
    ],
)
def test_invalid_option_values(options: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        ProcessBackend(**options)


def test_defaults() -> None:
    backend = ProcessBackend()
    assert backend.workers == default_workers() == len(os.sched_getaffinity(0))
    assert backend.start_method == "forkserver"
    assert backend.name == "processes"
    backend.shutdown()


def test_unpicklable_initializer_is_refused() -> None:
    lock = threading.Lock()
    with pytest.raises(SerializationError, match=r"initargs\[0\] \(lock\) cannot be pickled"):
        ProcessBackend(initializer=helpers.initialise, initargs=(lock,))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork with threads running
def test_fork_start_method_runs_tasks() -> None:
    backend = ProcessBackend(workers=1, start_method="fork")
    try:
        assert run(backend, helpers.square, 7) == 49
    finally:
        backend.shutdown()


# -- running functions ----------------------------------------------------------------------


def test_lambdas_closures_and_batches(make_backend: Callable[..., ProcessBackend]) -> None:
    backend = make_backend()
    offset = 10
    assert run(backend, lambda x: x + offset, 5) == 15
    task = Task(lambda x, y=0: x * y, [((i,), {"y": 2}) for i in range(1000)], batch=True)
    backend.submit(task)
    assert task.future.result(timeout=WAIT) == [(True, 2 * i) for i in range(1000)]
    assert run(backend, helpers.echo, 1, "a", k=None) == ((1, "a"), {"k": None})


def test_function_is_sent_to_each_worker_once(make_backend: Callable[..., ProcessBackend]) -> None:
    backend = make_backend(workers=1)
    counting = helpers.CountingFunction()
    tasks = [one(counting, i) for i in range(20)]
    for task in tasks:
        backend.submit(task)
    results = [task.future.result(timeout=WAIT) for task in tasks]
    assert {unpickled for _, unpickled in results} == {1}
    assert backend.statistics()["functions_sent"] == 1


def test_changed_closure_is_sent_again(make_backend: Callable[..., ProcessBackend]) -> None:
    backend = make_backend(workers=1)

    def adder(n: int) -> Callable[[int], int]:
        return lambda x: x + n

    assert [run(backend, adder(n), 1) for n in (1, 2, 2, 3)] == [2, 3, 3, 4]
    assert backend.statistics()["functions_sent"] == 3


def test_numpy_arrays_travel_out_of_band(make_backend: Callable[..., ProcessBackend]) -> None:
    backend = make_backend(workers=1)
    array = np.arange(1_000_000, dtype=np.float64).reshape(1000, 1000)

    def double_in_place(a: np.ndarray) -> np.ndarray:
        # Big arguments arrive read-only (tasks share one copy): write into a copy.
        a = a.copy() if not a.flags.writeable else a
        a *= 2
        return a

    result = run(backend, double_in_place, array)
    np.testing.assert_array_equal(result, array * 2)
    assert result.flags.writeable
    strided = run(backend, lambda a: a, array[:, ::2])  # not contiguous
    np.testing.assert_array_equal(strided, array[:, ::2])


# -- exceptions and serialisation ----------------------------------------------------------


def test_exception_carries_the_worker_traceback(
    make_backend: Callable[..., ProcessBackend],
) -> None:
    backend = make_backend()
    with pytest.raises(ValueError, match="boom") as info:
        run(backend, helpers.raise_value_error, "boom")
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "raise_value_error" in str(cause)
    assert run(backend, helpers.square, 3) == 9


def test_unpicklable_exception_still_arrives(make_backend: Callable[..., ProcessBackend]) -> None:
    backend = make_backend()
    with pytest.raises(
        RemoteError,
        match=r"UnpicklableError: bad news \(raised by the submitted call of .*raise_unpicklable in",
    ) as info:
        run(backend, helpers.raise_unpicklable, "bad news")
    assert info.value.type_name == "UnpicklableError"
    assert "raise_unpicklable" in info.value.remote_traceback
    assert isinstance(info.value.__cause__, RemoteTraceback)


@pytest.mark.parametrize(
    ("args", "kwargs", "what"),
    [
        ((1, threading.Lock()), {}, "positional argument 2"),
        ((1,), {"lock": threading.Lock()}, "keyword argument 'lock'"),
    ],
)
def test_unpicklable_argument_fails_that_task_only(
    make_backend: Callable[..., ProcessBackend], args: tuple, kwargs: dict, what: str
) -> None:
    backend = make_backend()
    task = one(helpers.echo, *args, **kwargs)
    backend.submit(task)
    pattern = rf"^the submitted call of .*echo: the {what} of type lock cannot be pickled"
    with pytest.raises(SerializationError, match=pattern) as info:
        task.future.result(timeout=WAIT)
    assert info.value.what == what and info.value.type_name == "lock"
    assert run(backend, helpers.square, 4) == 16


def test_unpicklable_result_and_function(make_backend: Callable[..., ProcessBackend]) -> None:
    backend = make_backend()
    with pytest.raises(SerializationError, match=r"the result of type lock cannot be pickled"):
        run(backend, helpers.return_lock)
    lock = threading.Lock()
    with pytest.raises(SerializationError, match=r"the function of type function cannot be"):
        run(backend, lambda: lock.locked())
    batch = Task(
        lambda i: threading.Lock() if i == 1 else i, [((i,), {}) for i in range(3)], batch=True
    )
    backend.submit(batch)
    outcomes = batch.future.result(timeout=WAIT)
    assert outcomes[0] == (True, 0) and outcomes[2] == (True, 2)
    assert outcomes[1][0] is False
    assert "item 1 of the map (" in str(outcomes[1][1])
    assert "<lambda>): the result of type lock" in str(outcomes[1][1])
    assert run(backend, helpers.square, 5) == 25


# -- crashes, timeouts, kills --------------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "args", "match"),
    [
        (helpers.exit_now, (3,), "exit code 3"),
        (helpers.kill_self, (signal.SIGKILL,), "killed by SIGKILL.*OOM killer"),
        (helpers.segfault, (), "killed by SIGSEGV.*native code"),
    ],
    ids=["os._exit", "SIGKILL", "segfault"],
)
def test_crash_fails_only_its_task(
    make_backend: Callable[..., ProcessBackend], fn: Callable[..., Any], args: tuple, match: str
) -> None:
    backend = make_backend()
    before = [one(helpers.square, i) for i in range(50)]
    crash = one(fn, *args)
    after = [one(helpers.square, i) for i in range(50)]
    for task in [*before, crash, *after]:
        backend.submit(task)
    with pytest.raises(WorkerCrashedError, match=rf"worker process \d+ died \({match}") as info:
        crash.future.result(timeout=WAIT)
    assert info.value.task == crash.describe()
    assert [t.future.result(timeout=WAIT) for t in before + after] == [i * i for i in range(50)] * 2
    assert backend.statistics()["workers_crashed"] == 1


def test_idle_worker_that_dies_is_replaced(make_backend: Callable[..., ProcessBackend]) -> None:
    backend = make_backend()
    run(backend, helpers.square, 1)
    wait_until(lambda: len(backend.statistics()["worker_pids"]) == 2, "two workers")
    victim = backend.statistics()["worker_pids"][0]
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: (
            victim not in backend.statistics()["worker_pids"]
            and len(backend.statistics()["worker_pids"]) == 2
        ),
        "the dead worker's replacement",
    )
    pids = {run(backend, helpers.pid) for _ in range(10)}
    assert victim not in pids


def test_timeout_kills_only_the_overdue_task(
    make_backend: Callable[..., ProcessBackend], started: Callable[[str], str]
) -> None:
    backend = make_backend()
    slow = one(helpers.touch_then_sleep, started("slow"), 60, timeout=0.5)
    backend.submit(slow)
    others = [one(helpers.square, i) for i in range(20)]
    for task in others:
        backend.submit(task)
    with pytest.raises(TaskTimeoutError, match=r"ran longer than its timeout of 0.5 s") as info:
        slow.future.result(timeout=WAIT)
    assert info.value.timeout == 0.5 and info.value.backend == "processes"
    assert [t.future.result(timeout=WAIT) for t in others] == [i * i for i in range(20)]
    assert run(backend, helpers.square, 6) == 36


def test_kill_running_task(
    make_backend: Callable[..., ProcessBackend], started: Callable[[str], str]
) -> None:
    backend = make_backend(workers=1)
    path = started("running")
    running = one(helpers.touch_then_sleep, path, 60)
    queued = one(helpers.square, 3)
    backend.submit(running)
    backend.submit(queued)
    assert helpers.wait_for_file(path, WAIT)
    assert backend.kill(queued) is False  # pending, not running
    assert backend.kill(running) is True
    with pytest.raises(
        TaskKilledError, match=re.escape(f"{running.describe()} was killed on request")
    ):
        running.future.result(timeout=WAIT)
    assert queued.future.result(timeout=WAIT) == 9
    assert backend.kill(queued) is False  # done
    assert backend.kill(running) is False


def test_mixed_failures_under_load(make_backend: Callable[..., ProcessBackend]) -> None:
    """Many tasks, several kinds of failure at once: each fails alone, none hangs."""
    backend = make_backend()
    tasks = []
    for i in range(300):
        if i % 60 == 7:
            tasks.append(one(helpers.exit_now, 1))
        elif i % 60 == 23:
            tasks.append(one(helpers.raise_value_error, str(i)))
        else:
            tasks.append(one(helpers.square, i))
    for task in tasks:
        backend.submit(task)
    for i, task in enumerate(tasks):
        if i % 60 == 7:
            assert isinstance(task.future.exception(timeout=WAIT), WorkerCrashedError)
        elif i % 60 == 23:
            assert isinstance(task.future.exception(timeout=WAIT), ValueError)
        else:
            assert task.future.result(timeout=WAIT) == i * i


# -- recycling and initializer ---------------------------------------------------------------


def test_max_tasks_per_worker_recycles(make_backend: Callable[..., ProcessBackend]) -> None:
    backend = make_backend(workers=1, max_tasks_per_worker=2)
    pids = [run(backend, helpers.pid) for _ in range(6)]
    assert [pids.count(p) for p in dict.fromkeys(pids)] == [2, 2, 2]


def test_max_memory_per_worker_recycles(make_backend: Callable[..., ProcessBackend]) -> None:
    backend = make_backend(workers=1, max_memory_per_worker=150 * 1024 * 1024)
    first = run(backend, helpers.pid)
    assert run(backend, helpers.pid) == first  # small: same worker
    # The task keeps 200 MB: caught while it runs (it fails) or, when it ends before a
    # sample of its RSS, after it (it succeeds and its worker retires). Replaced either way.
    try:
        assert run(backend, helpers.allocate, 200) == first
    except WorkerMemoryError as error:
        assert error.pid == first and error.limit == 150 * 1024 * 1024
    assert run(backend, helpers.pid) != first


def test_initializer_runs_in_each_worker(make_backend: Callable[..., ProcessBackend]) -> None:
    backend = make_backend(initializer=helpers.initialise, initargs=({"ready": True},))
    assert run(backend, helpers.initialised) == {"ready": True}
    assert run(backend, helpers.sigint_ignored) is True


def test_initargs_travel_with_the_worker_start(
    make_backend: Callable[..., ProcessBackend], start_method: str
) -> None:
    # As the standard pool: a multiprocessing queue, which refuses to be pickled except
    # while a process starts, reaches the initializer.
    queue = multiprocessing.get_context(start_method).Queue()
    backend = make_backend(workers=1, initializer=helpers.put_pid, initargs=(queue,))
    worker = run(backend, helpers.pid)  # workers start with the first task
    assert queue.get(timeout=WAIT) == worker


def test_failing_initializer_breaks_the_pool(make_backend: Callable[..., ProcessBackend]) -> None:
    backend = make_backend(workers=1, initializer=helpers.failing_initializer)
    with pytest.raises(InitializerError, match="RuntimeError: initializer exploded") as info:
        run(backend, helpers.square, 2)
    assert "failing_initializer" in info.value.remote_traceback
    with pytest.raises(InitializerError):
        run(backend, helpers.square, 2)


def test_the_pool_breaks_only_once_the_failed_worker_has_exited(
    make_backend: Callable[..., ProcessBackend], tmp_path: Path
) -> None:
    # As under the standard library: what the worker does on its way out (a logging
    # QueueHandler flushing its records) is done when the caller learns of the failure.
    path = tmp_path / "goodbye"
    backend = make_backend(
        workers=1,
        initializer=helpers.failing_initializer_with_a_late_goodbye,
        initargs=(str(path),),
    )
    with pytest.raises(InitializerError, match="initializer exploded"):
        run(backend, helpers.square, 2)
    assert path.read_text() == "goodbye"


# -- shutdown ---------------------------------------------------------------------------------


def test_shutdown_cancel_futures(
    make_backend: Callable[..., ProcessBackend], started: Callable[[str], str]
) -> None:
    backend = make_backend(workers=1)
    path = started("running")
    running = one(helpers.touch_then_sleep, path, 0.5)
    pending = [one(helpers.square, i) for i in range(5)]
    backend.submit(running)
    for task in pending:
        backend.submit(task)
    assert helpers.wait_for_file(path, WAIT)
    backend.shutdown(wait=True, cancel_futures=True)
    assert running.future.done() and isinstance(running.future.result(), int)
    assert all(task.future.cancelled() for task in pending)
    backend.shutdown(wait=True)  # idempotent
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        backend.submit(one(helpers.square, 1))


def test_shutdown_without_wait_finishes_pending(
    make_backend: Callable[..., ProcessBackend],
) -> None:
    backend = make_backend()
    run(backend, helpers.square, 0)
    pids = worker_pids(backend, 2)
    tasks = [one(helpers.square, i) for i in range(30)]
    for task in tasks:
        backend.submit(task)
    backend.shutdown(wait=False)
    assert [t.future.result(timeout=WAIT) for t in tasks] == [i * i for i in range(30)]
    wait_until(lambda: not any(alive(p) for p in pids), "the workers to exit")


def test_shutdown_of_unused_pool(start_method: str) -> None:
    backend = ProcessBackend(workers=2, start_method=start_method)
    backend.shutdown()
    backend.shutdown(wait=False, cancel_futures=True)


def test_unreferenced_pool_shuts_down(start_method: str) -> None:
    backend = ProcessBackend(workers=2, start_method=start_method)
    task = one(helpers.square, 9)
    backend.submit(task)
    assert task.future.result(timeout=WAIT) == 81
    pids = worker_pids(backend, 2)
    del backend
    gc.collect()
    wait_until(lambda: not any(alive(p) for p in pids), "the workers to exit")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_pool_whose_thread_failed_says_why_on_submit(
    make_backend: Callable[..., ProcessBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in the pool's own code ends its thread: tasks do not hang, and a later
    submit names the error rather than a shutdown nobody asked for."""

    def fault(self: PoolState, worker: Any) -> None:
        raise RuntimeError("injected fault")

    backend = make_backend(workers=1)
    monkeypatch.setattr(PoolState, "on_result_readable", fault)
    task = one(helpers.square, 3)
    backend.submit(task)
    with pytest.raises(CancelledError):  # it never started
        task.future.result(timeout=WAIT)
    with pytest.raises(
        RuntimeError,
        match=re.escape(
            "cannot schedule new futures: the process pool's thread stopped (internal error "
            "in the process pool: RuntimeError: injected fault); create a new Executor"
        ),
    ):
        backend.submit(one(helpers.square, 4))


def test_submit_and_kill_from_a_done_callback(make_backend: Callable[..., ProcessBackend]) -> None:
    """Callbacks run in the pool's thread: submit and kill from there must not deadlock."""
    backend = make_backend()
    chained = one(helpers.square, 2)
    first = one(helpers.square, 1)
    answers: list[bool] = []

    def callback(_: Any) -> None:
        backend.submit(chained)
        answers.append(backend.kill(first))

    first.future.add_done_callback(callback)
    backend.submit(first)
    assert chained.future.result(timeout=WAIT) == 4
    assert answers == [False]


# -- Ctrl-C, parent death, interpreter exit: a real program in a subprocess -------------------

SCRIPT = Path(__file__).with_name("process_pool_script.py")


def _marked_processes(marker: str) -> list[int]:
    found = []
    for process in psutil.process_iter(["pid"]):
        try:
            if process.environ().get("FERMION_TEST_MARKER") == marker and alive(process.pid):
                found.append(process.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _start_script(mode: str, start_method: str, tmp_path: Path) -> tuple[Any, Path, str, list[int]]:
    import subprocess
    import sys

    marker = f"{os.getpid()}-{mode}-{start_method}-{time.monotonic_ns()}"
    ready = tmp_path / "ready"
    env = {**os.environ, "FERMION_TEST_MARKER": marker}
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), mode, start_method, str(ready)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        wait_until(lambda: ready.exists() or proc.poll() is not None, "the script's workers")
    except AssertionError:
        proc.kill()
        proc.communicate(timeout=WAIT)
        raise
    if proc.poll() is not None:
        _, err = proc.communicate(timeout=WAIT)
        raise AssertionError(f"the script ended early: {err.decode()}")
    workers = [int(p) for p in ready.read_text().split()]
    return proc, ready, marker, workers


def _assert_all_gone(marker: str, workers: list[int]) -> None:
    wait_until(lambda: not any(alive(p) for p in workers), "the workers to exit", timeout=10)
    wait_until(lambda: not _marked_processes(marker), "every process of the script", timeout=15)


@pytest.mark.parametrize("mode", ["terminate", "atexit", "executor"])
def test_ctrl_c_ends_workers_and_propagates(start_method: str, tmp_path: Path, mode: str) -> None:
    proc, _, marker, workers = _start_script(mode, start_method, tmp_path)
    try:
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole process group
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=WAIT)
    assert proc.returncode != 0
    assert b"KeyboardInterrupt" in err
    assert took < 10  # the tasks would sleep for a minute
    _assert_all_gone(marker, workers)


def test_workers_exit_when_their_parent_is_killed(start_method: str, tmp_path: Path) -> None:
    proc, _, marker, workers = _start_script("wait", start_method, tmp_path)
    proc.kill()
    proc.communicate(timeout=WAIT)
    _assert_all_gone(marker, workers)


def test_interpreter_exit_finishes_a_pools_work_then_ends_its_workers(
    start_method: str, tmp_path: Path
) -> None:
    proc, _, marker, workers = _start_script("leave", start_method, tmp_path)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, err.decode()
    _assert_all_gone(marker, workers)


def test_a_task_submitted_last_runs_before_the_interpreter_exits(start_method: str) -> None:
    # As the standard library (CPython's test_interpreter_shutdown): exit waits for the
    # work submitted, it does not terminate the pool.
    import subprocess
    import sys

    script = (
        "import time\n"
        "from fermion import Executor\n"
        "if __name__ == '__main__':\n"
        f"    ex = Executor('processes', 1, start_method={start_method!r})\n"
        "    ex.submit(time.sleep, 0.5)\n"
        "    ex.submit(print, 'task ran', flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=60, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "task ran", done.stderr


def test_what_fails_to_unpickle_in_the_worker_fails_that_task_only(
    make_backend: Callable[..., ProcessBackend],
) -> None:
    backend = make_backend(workers=1)
    with pytest.raises(
        SerializationError, match=r"the arguments could not be unpickled in the worker process"
    ) as info:
        run(backend, helpers.echo, helpers.LoadsNowhere())
    assert info.value.what == "arguments" and "cannot be rebuilt here" in info.value.reason
    with pytest.raises(SerializationError, match=r"the function could not be unpickled"):
        run(backend, helpers.LoadsNowhere())
    # The worker is still the same one and still knows nothing stale.
    assert run(backend, helpers.echo, 1) == ((1,), {})
    assert run(backend, helpers.echo, 2) == ((2,), {})


def test_a_call_raising_stop_iteration_fails_alone(
    make_backend: Callable[..., ProcessBackend],
) -> None:
    # The worker runs a chunk's calls in a C loop, for which StopIteration means "no
    # more calls": that call must still fail, and the calls after it run.
    backend = make_backend(workers=1)
    task = Task(
        lambda x: next(iter(())) if x % 3 == 1 else x,
        PositionalCalls(list(range(7)), unpack=False),
        batch=True,
    )
    backend.submit(task)
    outcomes = list(task.future.result(timeout=WAIT))
    assert [value for ok, value in outcomes if ok] == [0, 2, 3, 5, 6]
    failed = [value for ok, value in outcomes if not ok]
    assert len(failed) == 2
    assert all(isinstance(e, StopIteration) for e in failed)
    assert "raised StopIteration" in str(failed[0])


def test_tasks_are_sent_in_the_order_submitted(
    make_backend: Callable[..., ProcessBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tiny tasks submitted as fast as one thread can, so that some wait in the inbox,
    # some in the queue, some are sent ahead: whichever way, they go out in order.
    sent: list[int] = []
    deliver = PoolState._deliver

    def recording_deliver(self: PoolState, worker: Any, task: Task, *args: Any, **kw: Any) -> None:
        sent.append(task.id)  # the pool's thread only
        deliver(self, worker, task, *args, **kw)

    monkeypatch.setattr(PoolState, "_deliver", recording_deliver)
    backend = make_backend(workers=1)
    for _ in range(3):
        sent.clear()
        tasks = [Task(helpers.square, [((i,), {})], batch=False) for i in range(2000)]
        for task in tasks:
            backend.submit(task)
        assert [t.future.result(timeout=WAIT) for t in tasks] == [i * i for i in range(2000)]
        assert sent == [t.id for t in tasks]


def test_many_threads_submitting_one_at_a_time(
    make_backend: Callable[..., ProcessBackend],
) -> None:
    backend = make_backend(workers=2)
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
    assert results == {n: [(n * calls + i) ** 2 for i in range(calls)] for n in range(threads)}
    assert backend.statistics()["tasks_completed"] == threads * calls
