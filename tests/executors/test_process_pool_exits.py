"""Workers that die before they are ready: the pure decision (``StartFailures``), then
the pool replacing workers killed from outside while they start."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import process_pool_helpers as helpers
import pytest

from fermion.errors import WorkerCrashedError
from fermion.executors._base import Task
from fermion.executors._processes import ProcessBackend
from fermion.executors._processes._exits import (
    OWN_FAILURES_TO_BREAK,
    START_FAILURES_TO_BREAK,
    StartFailures,
    describe_exit,
)

WAIT = 60.0
SIGKILL = -signal.SIGKILL
SIGSEGV = -signal.SIGSEGV


def _feed(failures: StartFailures, exitcodes: list[int | None]) -> list[str | None]:
    return [failures.worker_died(code) for code in exitcodes]


def test_workers_that_exit_while_starting_break_the_pool_after_a_few() -> None:
    answers = _feed(StartFailures(imports_main=True), [1] * OWN_FAILURES_TO_BREAK)
    assert answers[:-1] == [None] * (OWN_FAILURES_TO_BREAK - 1)
    message = answers[-1]
    assert message is not None
    assert message.startswith(
        f"worker processes died before they were ready, {OWN_FAILURES_TO_BREAK} times in a "
        f"row (exit code 1 {OWN_FAILURES_TO_BREAK} times); the process pool cannot run tasks."
    )
    assert "the main module, which each new worker process imports" in message
    assert "if __name__ == '__main__':" in message


def test_under_fork_the_main_module_is_not_blamed() -> None:
    message = _feed(StartFailures(imports_main=False), [1] * OWN_FAILURES_TO_BREAK)[-1]
    assert message is not None and "exit code 1" in message
    assert "main module" not in message


def test_a_crash_signal_while_starting_counts_as_the_workers_own() -> None:
    message = _feed(StartFailures(imports_main=True), [SIGSEGV] * OWN_FAILURES_TO_BREAK)[-1]
    assert message is not None
    assert f"(killed by SIGSEGV {OWN_FAILURES_TO_BREAK} times)" in message
    assert "SIGSEGV while starting comes from native code" in message
    assert "main module, which" not in message  # it did not exit: no import is blamed


def test_workers_killed_from_outside_are_replaced_for_longer() -> None:
    failures = StartFailures(imports_main=True)
    answers = _feed(failures, [SIGKILL] * START_FAILURES_TO_BREAK)
    assert answers[:-1] == [None] * (START_FAILURES_TO_BREAK - 1)
    message = answers[-1]
    assert message is not None
    assert f"(killed by SIGKILL {START_FAILURES_TO_BREAK} times)" in message
    assert "something outside the pool kills its workers as they start" in message
    assert "main module" not in message


def test_a_ready_worker_starts_the_count_again() -> None:
    failures = StartFailures(imports_main=True)
    for _ in range(5):
        assert _feed(failures, [1] * (OWN_FAILURES_TO_BREAK - 1)) == [None] * (
            OWN_FAILURES_TO_BREAK - 1
        )
        failures.worker_ready()


def test_the_message_names_everything_seen() -> None:
    failures = StartFailures(imports_main=True)
    message = _feed(failures, [SIGKILL, 1, SIGKILL, 1, 1])[-1]
    assert message is not None
    assert "5 times in a row (killed by SIGKILL 2 times, exit code 1 3 times)" in message
    assert "main module" in message and "something outside the pool" in message


def test_exits_in_words() -> None:
    assert describe_exit(SIGKILL) == "killed by SIGKILL"
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(None) == "exit status unknown"


# -- the wiring: a pool whose starting workers are killed -------------------------------------


def _kill_starting_workers(
    backend: ProcessBackend, rounds: int, workers: int, task: Task
) -> set[int]:
    """Kill each worker as it appears (they cannot be ready: their initializer waits),
    ``rounds`` times over, or until ``task`` fails (the pool broke); the pids killed."""
    killed: set[int] = set()
    deadline = time.monotonic() + WAIT
    while len(killed) < rounds * workers and not task.future.done():
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(killed)} workers started to be killed")
        for pid in backend.statistics()["worker_pids"]:
            if pid not in killed:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
        time.sleep(0.005)
    return killed


def test_workers_killed_before_they_are_ready_are_replaced(tmp_path: Path) -> None:
    go = str(tmp_path / "go")
    backend = ProcessBackend(workers=2, initializer=helpers.wait_for_file, initargs=(go, WAIT))
    try:
        task = Task(pow, [((2, 3), {})], batch=False)
        backend.submit(task)
        killed = _kill_starting_workers(backend, rounds=3, workers=2, task=task)
        Path(go).touch()
        assert task.future.result(timeout=WAIT) == 8
        assert not killed & set(backend.statistics()["worker_pids"])
        assert backend.statistics()["workers_started"] >= 8
    finally:
        backend.shutdown(wait=True)


def test_workers_killed_before_they_are_ready_break_the_pool_in_the_end(
    tmp_path: Path,
) -> None:
    go = str(tmp_path / "never")
    backend = ProcessBackend(workers=1, initializer=helpers.wait_for_file, initargs=(go, WAIT))
    try:
        task = Task(pow, [((2, 3), {})], batch=False)
        backend.submit(task)
        _kill_starting_workers(backend, rounds=START_FAILURES_TO_BREAK, workers=1, task=task)
        with pytest.raises(
            WorkerCrashedError,
            match=re.escape(
                f"worker processes died before they were ready, {START_FAILURES_TO_BREAK} "
                f"times in a row (killed by SIGKILL {START_FAILURES_TO_BREAK} times)"
            ),
        ) as info:
            task.future.result(timeout=WAIT)
        assert "main module" not in str(info.value)
        later = Task(pow, [((2, 3), {})], batch=False)
        # a broken pool refuses new work at submit, as the standard library's does
        with pytest.raises(WorkerCrashedError, match="died before they were ready"):
            backend.submit(later)
    finally:
        backend.shutdown(wait=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_tells_an_owner_that_is_exiting_from_one_that_runs() -> None:
    # (a worker whose task pipe closes sweeps its owner's shared memory only when the
    # owner is dying: a pool that shuts down closes the same pipe)
    from fermion.executors._processes._worker import _process_exiting

    assert not _process_exiting(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=60)  # reaped: gone
    assert _process_exiting(child.pid)
