"""The crash matrix: nothing a task's objects do while they are pickled or unpickled,
and nothing a done-callback raises, can break the executor.

Every step where a task's function, argument or result is pickled or unpickled, times
every way it can fail (an Exception, an OSError, which pipes raise too, SystemExit,
KeyboardInterrupt, os._exit, a segfault), times every way the task arrives (``submit``, ``map``, ``submit`` from a
done-callback, which runs in the pool's own thread): the task fails with an error that
names the step and the culprit, and the same executor then runs the next task.

The steps on the caller's side (pickling the function or arguments, unpickling the
result) run in the caller's process, in the pool's thread: an os._exit or a segfault
there ends the caller as it would in any Python program, so only the exceptions are
tried there. (loky's own crash matrix was the model for these cases.)
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import crash_helpers as helpers
import pytest
from process_pool_helpers import wait_for_file

import fermion
from fermion.errors import SerializationError, WorkerCrashedError

WAIT = 60.0  # a safety net only: every case settles in well under a second

CALLER_STEPS = ("pickle function", "pickle argument", "unpickle result")
WORKER_STEPS = ("unpickle function", "unpickle argument", "pickle result")
RAISES = ("error", "oserror", "exit", "interrupt")
CRASHES = ("os_exit", "segfault")
CASES = [(step, how) for step in CALLER_STEPS for how in RAISES] + [
    (step, how) for step in WORKER_STEPS for how in RAISES + CRASHES
]
VIAS = ("submit", "map", "callback")

_RAISED = {
    "error": "ValueError",
    "oserror": "FileNotFoundError",
    "exit": "SystemExit",
    "interrupt": "KeyboardInterrupt",
}
_MESSAGES = {
    "pickle function": "the function of type Culprit cannot be pickled to send it to a worker "
    "process ({reason})",
    "unpickle function": "the function could not be unpickled in the worker process ({reason})",
    "pickle argument": "the positional argument 1 of type Culprit cannot be pickled to send it "
    "to a worker process ({reason})",
    "unpickle argument": "the arguments could not be unpickled in the worker process ({reason})",
    "pickle result": "the result of type Culprit cannot be pickled to send it back from the "
    "worker process ({reason})",
    "unpickle result": "the result could not be unpickled in the caller ({reason})",
}


def _expected(step: str, how: str) -> tuple[type[BaseException], str]:
    """The error the task fails with, and a pattern its message must match."""
    if how == "os_exit":
        return WorkerCrashedError, rf"worker process \d+ died \(exit code {helpers.EXIT_CODE}\)"
    if how == "segfault":
        return WorkerCrashedError, r"worker process \d+ died \(killed by SIGSEGV\)"
    when = "pickled" if step.startswith("pickle") else "unpickled"
    reason = f"{_RAISED[how]}: culprit {when}"
    return SerializationError, re.escape(_MESSAGES[step].format(reason=reason))


def _task(step: str, how: str) -> tuple[Callable[..., Any], Any, list[Any]]:
    """The function, the argument of a submitted call, and the items of a map, with the
    culprit where ``step`` says (item 1 of a map)."""
    at = step.split()[0]
    if step.endswith("function"):
        return helpers.Culprit(how, at), 1, [0, 1, 2]
    if step.endswith("argument"):
        culprit = helpers.Culprit(how, at)
        return helpers.identity, culprit, [0, culprit, 2]
    return functools.partial(helpers.culprit_for_one, how, at), None, [0, 1, 2]


@pytest.fixture
def executor() -> Iterator[fermion.Executor]:
    """One worker: after a crash the next task needs the worker that replaced it."""
    with fermion.Executor("processes", workers=1) as ex:
        yield ex


def _from_a_callback(
    executor: fermion.Executor, gate: Path, fn: Callable[..., Any], arg: Any
) -> BaseException | None:
    """Submit ``fn(arg)`` from a done-callback, which runs in the pool's thread."""
    submitted: list[Any] = []
    called_back = threading.Event()

    def submit_it(_: Any) -> None:
        submitted.append((threading.current_thread(), executor.submit(fn, arg)))
        called_back.set()

    first = executor.submit(wait_for_file, str(gate), WAIT)
    first.add_done_callback(submit_it)
    gate.touch()
    assert called_back.wait(WAIT), "the done-callback never ran"
    thread, future = submitted[0]
    assert thread is not threading.main_thread()
    return future.exception(timeout=WAIT)  # type: ignore[no-any-return]


@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize(("step", "how"), CASES)
def test_a_misbehaving_culprit_fails_its_task_and_the_pool_goes_on(
    executor: fermion.Executor, step: str, how: str, via: str, tmp_path: Path
) -> None:
    fn, arg, items = _task(step, how)
    error_type, pattern = _expected(step, how)
    if via == "map":
        with pytest.raises(error_type, match=pattern) as info:
            list(executor.map(fn, items, timeout=WAIT))
        assert "of the map" in str(info.value)
    else:
        if via == "submit":
            error = executor.submit(fn, arg).exception(timeout=WAIT)
        else:
            error = _from_a_callback(executor, tmp_path / "go", fn, arg)
        assert isinstance(error, error_type), repr(error)
        assert re.search(pattern, str(error)), str(error)
        assert "the submitted call of" in str(error)
    assert executor.submit(pow, 2, 3).result(timeout=WAIT) == 8


@pytest.mark.parametrize("how", RAISES)
@pytest.mark.parametrize("backend", ["processes", "threads"])
def test_a_raising_done_callback_is_logged_and_the_pool_goes_on(
    backend: str, how: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ran_in: list[threading.Thread] = []
    after = threading.Event()

    def raising(_: Any) -> None:
        ran_in.append(threading.current_thread())
        helpers.misbehave(how, "called back")

    gate = tmp_path / "go"
    with (
        caplog.at_level(logging.ERROR, logger="concurrent.futures"),
        fermion.Executor(backend, workers=1) as ex,
    ):
        future = ex.submit(wait_for_file, str(gate), WAIT)
        future.add_done_callback(raising)
        future.add_done_callback(lambda _: after.set())  # the callbacks after it run too
        gate.touch()
        assert after.wait(WAIT), "the callback after the raising one never ran"
        assert future.result(timeout=WAIT) is True
        assert ex.submit(pow, 2, 3).result(timeout=WAIT) == 8
    assert ran_in[0] is not threading.main_thread()
    [record] = [r for r in caplog.records if r.name == "concurrent.futures"]
    assert record.getMessage().startswith("exception calling callback for <Future")
    assert record.exc_info is not None
    assert record.exc_info[0].__name__ == _RAISED[how]
    assert str(record.exc_info[1]) == "culprit called back"


class _RaisingHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        raise SystemExit("culprit handler")


def test_a_log_handler_raising_on_a_workers_record_does_not_stop_the_pool(
    executor: fermion.Executor, capsys: pytest.CaptureFixture[str]
) -> None:
    """A worker's records are replayed through the caller's handlers in the pool's
    thread: one raising SystemExit is reported there, and the task's result arrives."""
    logger = logging.getLogger(helpers.LOGGER_NAME)
    handler = _RaisingHandler()
    logger.addHandler(handler)
    try:
        assert executor.submit(helpers.log_and_return, 5).result(timeout=WAIT) == 5
    finally:
        logger.removeHandler(handler)
    assert executor.submit(pow, 2, 3).result(timeout=WAIT) == 8
    assert "SystemExit: culprit handler" in capsys.readouterr().err
