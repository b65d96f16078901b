"""What only the serial backend does: everything in the caller's thread, at submit."""

from __future__ import annotations

import threading
import time

import pytest

from fermion import Executor, TaskTimeoutError


def test_tasks_run_in_the_callers_thread_inside_submit() -> None:
    with Executor("serial") as executor:
        future = executor.submit(threading.get_ident)
        assert future.done()
        assert future.result() == threading.get_ident()
        assert set(executor.map(lambda _: threading.get_ident(), range(5))) == {
            threading.get_ident()
        }


def test_timeout_fails_the_task_after_it_ran_to_its_end() -> None:
    ran: list[int] = []

    def slow() -> int:
        time.sleep(0.2)
        ran.append(1)
        return 1

    with Executor("serial") as executor:
        future = executor.schedule(slow, timeout=0.05)
        assert ran == [1]  # it was not cut short
        with pytest.raises(TaskTimeoutError, match="serial backend runs tasks in the caller"):
            future.result()


def test_keyboard_interrupt_in_a_task_reaches_the_caller() -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    with Executor("serial") as executor, pytest.raises(KeyboardInterrupt):
        executor.submit(interrupted)


def test_a_long_serial_map_does_not_recurse() -> None:
    with Executor("serial") as executor:
        assert sum(executor.map(abs, range(20_000), chunksize=1)) == sum(range(20_000))
