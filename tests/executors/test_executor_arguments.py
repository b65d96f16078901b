"""Bad arguments fail at once, with messages that say what to pass."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, ClassVar

import executor_helpers as h
import pytest

import fermion
from fermion import Executor, WorkerCrashedError
from fermion.executors import Backend, Task, backend_names


def test_unknown_backend_lists_the_valid_names() -> None:
    with pytest.raises(
        ValueError,
        match=r"unknown backend 'nope'; choose one of 'auto', 'dask', 'processes', 'serial', 'threads'",
    ):
        Executor("nope")
    assert backend_names() == ["auto", "dask", "processes", "serial", "threads"]


def test_backend_must_be_a_name_or_a_class() -> None:
    with pytest.raises(TypeError, match="backend must be a name"):
        Executor(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("workers", "error", "match"),
    [
        (0, ValueError, "workers must be a positive integer or None .*got 0"),
        (-2, ValueError, "workers must be a positive integer or None .*got -2"),
        ("2", TypeError, r"workers must be a positive integer or None .*got '2' \(str\)"),
        (True, TypeError, r"got True \(bool\)"),
    ],
)
def test_bad_workers(workers: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        Executor("threads", workers)


def test_unknown_backend_option_is_named() -> None:
    with pytest.raises(
        TypeError,
        match="unknown option 'colour' for backend 'threads'; its options are: thread_name_prefix",
    ):
        Executor("threads", colour="blue")
    with pytest.raises(TypeError, match="unknown option 'colour' for backend 'serial'"):
        Executor("serial", colour="blue")
    with pytest.raises(TypeError, match="'colour'"):
        Executor("processes", colour="blue")


@pytest.mark.parametrize("chunksize", [0, -1, 1.5, "big", None])
def test_bad_chunksize(chunksize: Any) -> None:
    with Executor("serial") as executor:
        match = rf"chunksize must be a positive integer or 'auto', got {chunksize!r}"
        with pytest.raises(ValueError, match=match.replace("(", r"\(").replace(".", r"\.")):
            executor.map(abs, [1], chunksize=chunksize)
        with pytest.raises(ValueError, match="chunksize must be a positive integer"):
            executor.imap(abs, [1], chunksize=chunksize)
        with pytest.raises(ValueError, match="chunksize must be a positive integer"):
            fermion.map(abs, [1], backend="serial", chunksize=chunksize)


def test_bad_buffersize() -> None:
    with (
        Executor("serial") as executor,
        pytest.raises(ValueError, match="buffersize must be a positive integer or None, got 0"),
    ):
        executor.imap(abs, [1], buffersize=0)


@pytest.mark.parametrize(
    ("timeout", "error", "match"),
    [
        (0, ValueError, "task_timeout must be a positive number of seconds or None, got 0"),
        (-1.5, ValueError, "got -1.5"),
        ("1", TypeError, r"task_timeout must be a number of seconds or None, got '1' \(str\)"),
    ],
)
def test_bad_task_timeout(timeout: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        Executor("serial", task_timeout=timeout)


def test_bad_per_call_timeouts() -> None:
    with Executor("serial") as executor:
        with pytest.raises(ValueError, match="timeout must be a positive number of seconds"):
            executor.schedule(abs, (1,), timeout=0)
        with pytest.raises(TypeError, match="timeout must be a number of seconds"):
            executor.map(abs, [1], timeout="soon")  # type: ignore[arg-type]


def test_bad_progress_and_ordered() -> None:
    with pytest.raises(TypeError, match="progress must be True, False or a callable"):
        Executor("serial", progress="yes")  # type: ignore[arg-type]
    with (
        Executor("serial") as executor,
        pytest.raises(TypeError, match="ordered must be True or False"),
    ):
        executor.imap(abs, [1], ordered="yes")  # type: ignore[arg-type]


def test_function_must_be_callable() -> None:
    with Executor("serial") as executor:
        with pytest.raises(TypeError, match="the function to run must be callable, got 3"):
            executor.submit(3)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="must be callable"):
            executor.map(3, [1])  # type: ignore[arg-type]


class CrashingBackend(Backend):
    """Runs tasks at once; any chunk holding the value 13 'crashes its worker'."""

    name: ClassVar[str] = "crashing"

    def __init__(self, workers: int | None = None) -> None:
        self.batches: list[int] = []

    @property
    def workers(self) -> int:
        return 2

    def submit(self, task: Task) -> None:
        if not task.start():
            return
        self.batches.append(len(task.calls))
        if any(args == (13,) for args, _ in task.calls):
            task.fail(WorkerCrashedError("worker 1 died (SIGKILL)", pid=1, exitcode=-9))
            return
        outcomes: Sequence[tuple[bool, Any]] = [(True, task.fn(*a, **k)) for a, k in task.calls]
        task.finish(outcomes)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pass


def test_a_backend_class_can_be_passed_and_a_crashed_chunk_is_retried_per_item() -> None:
    with Executor(CrashingBackend) as executor:
        assert executor.backend_name == "crashing"
        results = list(executor.imap(h.square, range(100), chunksize=10, return_exceptions=True))
    assert isinstance(results[13], WorkerCrashedError)
    assert [r for i, r in enumerate(results) if i != 13] == [i * i for i in range(100) if i != 13]
    assert executor.backend.batches.count(1) == 10  # type: ignore[attr-defined]


def test_future_of_another_executor_cannot_be_killed() -> None:
    with Executor("serial") as executor:
        assert executor.kill(Future()) is False


@pytest.mark.parametrize("name", ["auto", "serial", "threads", "processes"])
def test_every_registered_backend_loads_and_knows_its_name(name: str) -> None:
    from fermion.executors._registry import load_backend

    cls = load_backend(name)
    assert issubclass(cls, Backend)
    assert cls.name == name


def test_the_default_backend_is_auto() -> None:
    with Executor(workers=2) as executor:
        assert executor.backend_name == "auto"
        assert list(executor.map(h.square, range(20))) == [x * x for x in range(20)]
        assert executor.submit(h.add, 2, b=3).result(timeout=30) == 5
