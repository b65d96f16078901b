"""Tasks sent ahead: a busy worker holds its next task while tasks are short.

A task sent ahead has not started: it must never be blamed for a crash, must time out
only from when it starts, must be killable while it waits, and must come back to the
queue when its worker retires first. Orderings are forced with files; each test checks
through ``statistics()["tasks_sent_ahead"]`` that the path it tests was taken.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import crash_helpers
import process_pool_helpers as helpers
import pytest

from fermion.errors import SerializationError, TaskKilledError, WorkerCrashedError
from fermion.executors._base import Task
from fermion.executors._processes import ProcessBackend, _state
from fermion.executors._processes._state import PREFETCH_BELOW_S

WAIT = 60.0  # safety net for every wait; tests finish far sooner


def one(fn: Callable[..., Any], *args: Any, timeout: float | None = None) -> Task:
    return Task(fn, [(args, {})], batch=False, timeout=timeout)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def sent_ahead(backend: ProcessBackend) -> int:
    return int(backend.statistics()["tasks_sent_ahead"])


def hold_ahead(backend: ProcessBackend, running: Task, waiting: Task, started: str) -> None:
    """Submit ``running`` (which writes ``started`` once it runs) and ``waiting``; return
    once ``running`` runs and ``waiting`` is held by the same worker as its next task."""
    backend.submit(running)
    backend.submit(waiting)
    assert helpers.wait_for_file(started, WAIT)
    wait_until(lambda: sent_ahead(backend) == 1, "the task to be sent ahead")


@pytest.fixture(params=["forkserver", "spawn"])
def make_backend(request: pytest.FixtureRequest) -> Iterator[Callable[..., ProcessBackend]]:
    made: list[ProcessBackend] = []

    def make(workers: int = 1, **options: Any) -> ProcessBackend:
        backend = ProcessBackend(workers=workers, start_method=request.param, **options)
        made.append(backend)
        for i in range(3):  # tasks are known to be short from here on
            task = one(helpers.square, i)
            backend.submit(task)
            assert task.future.result(timeout=WAIT) == i * i
        assert sent_ahead(backend) == 0  # one at a time: nothing to send ahead
        return backend

    yield make
    for backend in made:
        backend.terminate("test teardown")


def test_short_tasks_are_sent_ahead(make_backend: Callable[..., ProcessBackend]) -> None:
    backend = make_backend(workers=2)
    tasks = [one(helpers.square, i) for i in range(200)]
    for task in tasks:
        backend.submit(task)
    assert [t.future.result(timeout=WAIT) for t in tasks] == [i * i for i in range(200)]
    assert sent_ahead(backend) > 0


def test_long_tasks_are_not_sent_ahead(make_backend: Callable[..., ProcessBackend]) -> None:
    backend = make_backend()
    first = one(helpers.nap, PREFETCH_BELOW_S * 1.5)
    backend.submit(first)
    first.future.result(timeout=WAIT)  # the recent mean is now above the threshold
    naps = [one(helpers.nap, PREFETCH_BELOW_S * 1.5) for _ in range(3)]
    for task in naps:
        backend.submit(task)
    assert len({t.future.result(timeout=WAIT) for t in naps}) == 1
    assert sent_ahead(backend) == 0


def test_a_crash_is_not_blamed_on_the_task_sent_ahead(
    make_backend: Callable[..., ProcessBackend], tmp_path: Path
) -> None:
    backend = make_backend()
    started, go = str(tmp_path / "started"), str(tmp_path / "go")
    dying = one(helpers.touch_then_die, started, go)
    waiting = one(helpers.square, 7)
    hold_ahead(backend, dying, waiting, started)
    Path(go).touch()
    with pytest.raises(WorkerCrashedError, match="killed by SIGKILL") as info:
        dying.future.result(timeout=WAIT)
    assert info.value.task == dying.describe()
    assert waiting.future.result(timeout=WAIT) == 49  # ran on the replacement
    assert backend.statistics()["workers_crashed"] == 1


@pytest.mark.parametrize("how", ["os_exit", "segfault"])
def test_a_crash_unpickling_the_task_sent_ahead_is_blamed_on_it(
    make_backend: Callable[..., ProcessBackend], tmp_path: Path, how: str
) -> None:
    """The worker reads the task sent ahead before it runs its current one (to spot a
    "skip"), but unpickles it only in its turn: the crash is the ahead task's alone.
    The running task's argument unpickles only once the other task is sent ahead, so
    that the worker finds it in its pipe."""
    backend = make_backend()
    gate = str(tmp_path / "sent-ahead")
    running = one(helpers.echo, crash_helpers.UnpickledOnceExists(gate))
    crashing = one(helpers.echo, crash_helpers.Culprit(how, "unpickle"))
    backend.submit(running)
    backend.submit(crashing)
    wait_until(lambda: sent_ahead(backend) == 1, "the task to be sent ahead")
    Path(gate).touch()
    assert running.future.result(timeout=WAIT) == ((True,), {})  # not blamed
    seen = f"exit code {crash_helpers.EXIT_CODE}" if how == "os_exit" else "killed by SIGSEGV"
    with pytest.raises(WorkerCrashedError, match=re.escape(f"({seen}) while running")) as info:
        crashing.future.result(timeout=WAIT)
    assert info.value.task == crashing.describe()
    later = one(helpers.square, 3)
    backend.submit(later)
    assert later.future.result(timeout=WAIT) == 9  # on the replacement
    assert backend.statistics()["workers_crashed"] == 1


def test_kill_a_task_waiting_ahead(
    make_backend: Callable[..., ProcessBackend], tmp_path: Path
) -> None:
    backend = make_backend()
    started, go, ran = (str(tmp_path / name) for name in ("started", "go", "ran"))
    running = one(helpers.touch_then_wait, started, go)
    waiting = one(helpers.touch, ran)
    hold_ahead(backend, running, waiting, started)
    assert backend.kill(waiting) is True
    assert backend.kill(waiting) is False  # already killed
    with pytest.raises(
        TaskKilledError,
        match=re.escape(
            f"{waiting.describe()} was killed on request; it had not started yet, and will not run"
        ),
    ):
        waiting.future.result(timeout=WAIT)
    Path(go).touch()
    worker = running.future.result(timeout=WAIT)  # the running task is left alone
    later = one(helpers.pid)
    backend.submit(later)
    assert later.future.result(timeout=WAIT) == worker  # it skipped the task: no restart
    assert not Path(ran).exists()
    assert backend.statistics()["workers_started"] == 1


def test_timeout_counts_from_the_start_not_from_the_send(
    make_backend: Callable[..., ProcessBackend], tmp_path: Path
) -> None:
    backend = make_backend()
    started, go = str(tmp_path / "started"), str(tmp_path / "go")
    running = one(helpers.touch_then_wait, started, go)
    waiting = one(helpers.square, 5, timeout=1.0)
    hold_ahead(backend, running, waiting, started)
    time.sleep(1.5)  # longer than its timeout, all of it spent waiting behind `running`
    Path(go).touch()
    running.future.result(timeout=WAIT)
    assert waiting.future.result(timeout=WAIT) == 25


def test_no_task_ahead_past_max_tasks_per_worker(
    make_backend: Callable[..., ProcessBackend],
) -> None:
    backend = make_backend(max_tasks_per_worker=2)
    tasks = [one(helpers.pid) for _ in range(8)]
    for task in tasks:
        backend.submit(task)
    pids = [t.future.result(timeout=WAIT) for t in tasks]
    assert max(pids.count(p) for p in set(pids)) <= 2


def test_a_worker_retiring_on_memory_returns_its_task_ahead(
    make_backend: Callable[..., ProcessBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the check after each task here: no sample of RSS while a task runs.
    monkeypatch.setattr(_state, "MEMORY_SAMPLE_S", 3600.0)
    backend = make_backend(max_memory_per_worker=1)  # every worker retires after a task
    tasks = [one(helpers.pid) for _ in range(5)]
    for task in tasks:
        backend.submit(task)
    pids = [t.future.result(timeout=WAIT) for t in tasks]
    assert len(set(pids)) == 5  # each ran on a new worker, none lost
    assert sent_ahead(backend) > 0


def test_a_function_that_cannot_load_fails_each_of_its_tasks(
    make_backend: Callable[..., ProcessBackend],
) -> None:
    backend = make_backend()
    broken = [one(helpers.LoadsNowhere()) for _ in range(4)]
    fine = one(helpers.echo, 1)
    for task in [*broken, fine]:
        backend.submit(task)
    for task in broken:
        error = task.future.exception(timeout=WAIT)
        assert isinstance(error, SerializationError), error
        assert error.what == "function" and "cannot be rebuilt here" in error.reason
    assert fine.future.result(timeout=WAIT) == ((1,), {})
    assert backend.statistics()["workers_crashed"] == 0


def test_big_tasks_are_not_sent_ahead(make_backend: Callable[..., ProcessBackend]) -> None:
    """A big message sent ahead could block the pool's thread on a full pipe while the
    worker blocks on writing a big result: such tasks wait for a free worker."""
    backend = make_backend()
    big = list(range(50_000))  # ~250 KB pickled: more than a pipe holds
    tasks = [one(helpers.echo_list, big) for _ in range(6)]
    for task in tasks:
        backend.submit(task)
    for task in tasks:
        assert task.future.result(timeout=WAIT) == big + big
    assert sent_ahead(backend) == 0


def test_a_long_map_of_big_chunks_completes() -> None:
    """The deadlock above, through the Executor: big chunks in, big chunk results out."""
    import fermion

    with fermion.Executor("processes", 2) as executor:
        for _ in range(3):
            assert sum(executor.map(helpers.square, range(300_000), timeout=WAIT)) == sum(
                i * i for i in range(300_000)
            )
